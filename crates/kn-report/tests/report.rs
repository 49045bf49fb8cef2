//! Builds reports of the committed fixture run (tests/fixtures/run, made by make_fixture.py)
//! and checks the files, the figures, the headline numbers (recomputed here from the fixture's
//! files, independently of the crate), missing sections and the errors on bad input.

use kn_report::{build_report, read_headline, ReportError, ReportFormat, ReportOptions};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const FIGURES: [&str; 7] = [
    "layers.svg",
    "heatmap.svg",
    "suppression.svg",
    "activations.svg",
    "edit.svg",
    "sweep.svg",
    "erase.svg",
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run")
}

/// A fresh copy of the fixture run in a temporary directory.
fn copy_run() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    copy_dir(&fixture(), &run);
    (tmp, run)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

/// A fact of neurons.jsonl: id, relation, set of (layer, neuron).
type Fact = (String, String, BTreeSet<(u64, u64)>);

/// The facts of neurons.jsonl.
fn facts(run: &Path) -> Vec<Fact> {
    std::fs::read_to_string(run.join("neurons.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let set = v["neurons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| (n["layer"].as_u64().unwrap(), n["neuron"].as_u64().unwrap()))
                .collect();
            (
                v["fact"].as_str().unwrap().to_string(),
                v["relation"].as_str().unwrap().to_string(),
                set,
            )
        })
        .collect()
}

#[test]
fn the_full_report_is_written_self_contained_and_headline_numbers_match_the_inputs() {
    let (tmp, run) = copy_run();
    let out = tmp.path().join("out");
    let options = ReportOptions {
        out_dir: Some(out.clone()),
        ..ReportOptions::default()
    };
    let report = build_report(&run, &options).unwrap();

    // Files.
    let html_path = report.html.clone().unwrap();
    let md_path = report.markdown.clone().unwrap();
    assert_eq!(html_path, out.join("report.html"));
    assert_eq!(md_path, out.join("report.md"));
    assert!(
        report.sections_missing.is_empty(),
        "{:?}",
        report.sections_missing
    );
    let expected_figures: Vec<PathBuf> = FIGURES
        .iter()
        .map(|f| out.join("figures").join(f))
        .collect();
    assert_eq!(report.figures, expected_figures);
    for figure in &report.figures {
        let svg = std::fs::read_to_string(figure).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{}",
            figure.display()
        );
    }
    let html = std::fs::read_to_string(&html_path).unwrap();
    let md = std::fs::read_to_string(&md_path).unwrap();
    // One inline <svg> per figure; nothing external.
    assert_eq!(html.matches("<svg").count(), FIGURES.len());
    assert_eq!(html.matches("</svg>").count(), FIGURES.len());
    assert!(!html.contains("http"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("src="));
    assert!(!html.contains("<link"));
    for file in FIGURES {
        assert!(
            md.contains(&format!("](figures/{file})")),
            "report.md lacks {file}"
        );
    }
    // No temporary file left behind.
    for dir in [out.clone(), out.join("figures")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "left over: {name}");
        }
    }
    // The heatmap shows the first fact with a scores file, titled subject -> object.
    assert!(html.contains("P27:220: Madan Lal -&gt; India"));

    // Headline, recomputed from the fixture files.
    let h = &report.headline;
    let facts = facts(&run);
    assert_eq!(h.facts, facts.len());
    assert_eq!(h.facts, 6);
    let relations: BTreeSet<&str> = facts.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(h.relations, relations.len());
    let total: usize = facts.iter().map(|f| f.2.len()).sum();
    assert!(close(
        Some(h.neurons_per_fact),
        total as f64 / facts.len() as f64
    ));
    assert_eq!(
        h.facts_without_neurons,
        facts.iter().filter(|f| f.2.is_empty()).count()
    );
    // Sharing by brute force over all pairs.
    let (mut intra, mut inter) = ((0usize, 0usize), (0usize, 0usize));
    for (i, a) in facts.iter().enumerate() {
        for b in &facts[i + 1..] {
            let shared = a.2.intersection(&b.2).count();
            let bucket = if a.1 == b.1 { &mut intra } else { &mut inter };
            bucket.0 += 1;
            bucket.1 += shared;
        }
    }
    assert!(close(
        h.intra_relation_shared,
        intra.1 as f64 / intra.0 as f64
    ));
    assert!(close(
        h.inter_relation_shared,
        inter.1 as f64 / inter.0 as f64
    ));
    // ... and as the fixture's stats.json (computed by make_fixture.py) says.
    let stats = json(&run.join("stats.json"));
    let summary = &stats["summary"];
    assert!(close(
        Some(h.neurons_per_fact),
        summary["neurons_per_fact"]["mean"].as_f64().unwrap()
    ));
    assert!(close(
        h.intra_relation_shared,
        summary["sharing"]["intra"]["mean"].as_f64().unwrap()
    ));
    assert!(close(
        h.inter_relation_shared,
        summary["sharing"]["inter"]["mean"].as_f64().unwrap()
    ));
    // Layers 20-29: the top 10% is layer 29.
    let config = json(&run.join("config.json"));
    let layers: Vec<u64> = config["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap())
        .collect();
    let top = *layers.iter().max().unwrap();
    assert_eq!(h.top_layers, vec![top as usize]);
    let in_top = facts
        .iter()
        .flat_map(|f| f.2.iter())
        .filter(|n| n.0 == top)
        .count();
    assert!(close(h.top_layers_share, in_top as f64 / total as f64));
    let mut per_layer = std::collections::BTreeMap::new();
    for n in facts.iter().flat_map(|f| f.2.iter()) {
        *per_layer.entry(n.0).or_insert(0usize) += 1;
    }
    let most = per_layer.values().max().unwrap();
    let peak = per_layer
        .iter()
        .find(|(_, c)| *c == most)
        .map(|(l, _)| *l as usize);
    assert_eq!(h.peak_layer, peak);
    // Suppression: own and random neurons, all facts, the ratio of means.
    let s = json(&run.join("suppression.json"));
    let c = &s["overall"]["conditions"];
    assert!(close(
        h.suppress_change_pct,
        c["own"]["suppress"]["change_pct"].as_f64().unwrap()
    ));
    assert!(close(
        h.amplify_change_pct,
        c["own"]["amplify"]["change_pct"].as_f64().unwrap()
    ));
    assert!(close(
        h.random_suppress_change_pct,
        c["random"]["suppress"]["change_pct"].as_f64().unwrap()
    ));
    assert!(close(
        h.random_amplify_change_pct,
        c["random"]["amplify"]["change_pct"].as_f64().unwrap()
    ));
    // Activations.
    let a = json(&run.join("activations.json"));
    let overall = &a["overall"];
    let k = h.activation_knowledge.unwrap();
    assert!(close(
        k.t1,
        overall["knowledge"]["t1"]["mean"].as_f64().unwrap()
    ));
    assert!(close(
        k.t2,
        overall["knowledge"]["t2"]["mean"].as_f64().unwrap()
    ));
    assert!(close(
        k.t3,
        overall["knowledge"]["t3"]["mean"].as_f64().unwrap()
    ));
    assert!(close(
        h.activation_random.unwrap().t1,
        overall["random"]["t1"]["mean"].as_f64().unwrap()
    ));
    let aligned = h.activation_aligned_knowledge.unwrap();
    assert!(close(
        aligned.t1,
        overall["aligned"]["knowledge"]["t1"]["mean"]
            .as_f64()
            .unwrap()
    ));
    // Editing.
    let e = json(&run.join("edit.json"));
    let agg = &e["aggregate"];
    assert_eq!(h.edit_facts, agg["facts"].as_u64().map(|n| n as usize));
    assert!(close(
        h.edit_success_rate,
        agg["after"]["success_rate"].as_f64().unwrap()
    ));
    assert!(close(
        h.edit_success_rate_before,
        agg["before"]["success_rate"].as_f64().unwrap()
    ));
    assert!(close(
        h.edit_success_rate_random,
        agg["random_control"]["success_rate"].as_f64().unwrap()
    ));
    // The update sweep: a row per setting (its damage and success), the layer table.
    let sweep = json(&run.join("edit-sweep.json"));
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    for point in sweep["points"].as_array().unwrap() {
        let c = &point["config"];
        let row = format!(
            "| {} | {} | {} | {} | {} |",
            c["lambda_add"].as_f64().unwrap(),
            if c["scale_by_norm"] == true {
                "norm"
            } else {
                "none"
            },
            c["shared_threshold"].as_f64().unwrap(),
            point["aggregate"]["facts"],
            pct(point["aggregate"]["after"]["success_rate"]
                .as_f64()
                .unwrap()),
        );
        assert!(md.contains(&row), "no sweep row {row}");
        let kept = point["aggregate"]["checks"]["locality"]["other_relations"]
            .as_f64()
            .unwrap();
        assert!(md.contains(&pct(1.0 - kept)));
    }
    for layer in sweep["damage_by_layer"].as_array().unwrap() {
        let row = format!(
            "| {} | {} | {} | {} |",
            layer["layer"], layer["facts"], layer["neurons"], layer["cross_relation_neurons"]
        );
        assert!(md.contains(&row), "no layer row {row}");
    }
    // Erasure.
    let r = json(&run.join("erase-P36.json"));
    assert_eq!(h.erasures.len(), 1);
    let erasure = &h.erasures[0];
    assert_eq!(
        (erasure.file.as_str(), erasure.relation.as_str()),
        ("erase-P36.json", "P36")
    );
    let erased = &r["summary"]["erased_relation"];
    assert!(close(
        erasure.accuracy_before,
        erased["accuracy_before"].as_f64().unwrap()
    ));
    assert!(close(
        erasure.accuracy_after,
        erased["accuracy_after"].as_f64().unwrap()
    ));
    assert!(close(
        erasure.random_accuracy,
        erased["random_accuracy"].as_f64().unwrap()
    ));
    let others = &r["summary"]["other_relations"];
    assert!(close(
        erasure.other_accuracy_after,
        others["accuracy_after"].as_f64().unwrap()
    ));

    // The headline prints as a few lines and serializes.
    let text = h.to_string();
    assert!(text.lines().count() <= 8, "{text}");
    assert!(text.contains("6 facts of 2 relations"));
    let value = serde_json::to_value(h).unwrap();
    assert_eq!(value["facts"], 6);
    // read_headline gives the same without writing.
    assert_eq!(&read_headline(&run).unwrap(), h);

    // Rebuilding gives the same bytes (deterministic, and replaces files in place).
    let again = build_report(&run, &options).unwrap();
    assert_eq!(again.headline, report.headline);
    assert_eq!(std::fs::read_to_string(&html_path).unwrap(), html);
}

#[test]
fn the_default_output_is_dir_report_and_formats_are_honoured() {
    let (_tmp, run) = copy_run();
    let html_only = ReportOptions {
        format: ReportFormat::Html,
        ..ReportOptions::default()
    };
    let report = build_report(&run, &html_only).unwrap();
    assert_eq!(report.html, Some(run.join("report/report.html")));
    assert_eq!(report.markdown, None);
    assert!(report.figures.is_empty());
    assert!(!run.join("report/report.md").exists());
    assert!(!run.join("report/figures").exists());

    let md_only = ReportOptions {
        format: "md".parse().unwrap(),
        out_dir: Some(run.join("md")),
        ..ReportOptions::default()
    };
    let report = build_report(&run, &md_only).unwrap();
    assert_eq!(report.html, None);
    assert!(run.join("md/report.md").is_file());
    assert_eq!(report.figures.len(), FIGURES.len());
    assert!(!run.join("md/report.html").exists());
    assert!("pdf".parse::<ReportFormat>().is_err());
}

#[test]
fn missing_inputs_are_listed_and_noted_not_errors() {
    let (tmp, run) = copy_run();
    for file in [
        "stats.json",
        "relations.json",
        "suppression.json",
        "activations.json",
        "edit.json",
        "edit-sweep.json",
        "erase-P36.json",
    ] {
        std::fs::remove_file(run.join(file)).unwrap();
    }
    std::fs::remove_dir_all(run.join("scores")).unwrap();
    let options = ReportOptions {
        out_dir: Some(tmp.path().join("out")),
        ..ReportOptions::default()
    };
    let report = build_report(&run, &options).unwrap();
    assert_eq!(
        report.sections_missing,
        vec![
            "stats",
            "relations",
            "heatmap",
            "suppression",
            "activations",
            "edit",
            "sweep",
            "erase"
        ]
    );
    let h = &report.headline;
    assert_eq!(h.facts, 6);
    assert!(h.suppress_change_pct.is_none() && h.random_amplify_change_pct.is_none());
    assert!(h.activation_knowledge.is_none());
    assert!(h.edit_success_rate.is_none() && h.edit_facts.is_none());
    assert!(h.erasures.is_empty());
    // Discovery numbers do not depend on stats.json.
    let full = read_headline(&fixture()).unwrap();
    assert_eq!(h.neurons_per_fact, full.neurons_per_fact);
    assert_eq!(h.intra_relation_shared, full.intra_relation_shared);
    let html = std::fs::read_to_string(report.html.unwrap()).unwrap();
    for command in [
        "kn suppress",
        "kn activations",
        "kn edit",
        "kn erase",
        "scores/",
    ] {
        assert!(html.contains(command), "no note naming {command}");
    }
    // Only the layer figure remains.
    assert_eq!(html.matches("<svg").count(), 1);
    assert_eq!(
        report.figures,
        vec![tmp.path().join("out/figures/layers.svg")]
    );
    let text = h.to_string();
    assert!(text.contains("not run (kn suppress)"));
}

#[test]
fn malformed_files_give_typed_errors_naming_them() {
    let (tmp, run) = copy_run();
    let options = ReportOptions {
        out_dir: Some(tmp.path().join("out")),
        ..ReportOptions::default()
    };
    // A truncated suppression.json.
    let text = std::fs::read_to_string(run.join("suppression.json")).unwrap();
    std::fs::write(run.join("suppression.json"), &text[..text.len() / 2]).unwrap();
    let error = build_report(&run, &options).unwrap_err();
    match &error {
        ReportError::Json { path, .. } => assert_eq!(path, &run.join("suppression.json")),
        other => panic!("expected a JSON error, got {other:?}"),
    }
    assert!(error.to_string().contains("suppression.json"), "{error}");
    assert_eq!(error.path(), Some(run.join("suppression.json").as_path()));
    // Valid JSON of the wrong layout is refused too.
    std::fs::write(run.join("suppression.json"), "[1, 2, 3]").unwrap();
    assert!(matches!(
        build_report(&run, &options),
        Err(ReportError::Json { .. })
    ));
    // A renamed field is an error naming the file, not a "-" in the report.
    std::fs::write(
        run.join("suppression.json"),
        text.replace("\"change_pct\"", "\"change_percent\""),
    )
    .unwrap();
    let error = build_report(&run, &options).unwrap_err();
    assert!(
        matches!(&error, ReportError::Json { path, .. } if path == &run.join("suppression.json")),
        "{error:?}"
    );
    assert!(error.to_string().contains("change_pct"), "{error}");
    std::fs::copy(
        fixture().join("suppression.json"),
        run.join("suppression.json"),
    )
    .unwrap();

    // A broken scores file.
    let scores = run.join("scores/P27_220.npy");
    let bytes = std::fs::read(&scores).unwrap();
    std::fs::write(&scores, &bytes[..bytes.len() - 4]).unwrap();
    let error = build_report(&run, &options).unwrap_err();
    assert!(matches!(error, ReportError::Npy { .. }), "{error:?}");
    assert!(error.to_string().contains("P27_220.npy"));
    std::fs::write(&scores, &bytes).unwrap();

    // A bad line of neurons.jsonl names the file and the line.
    let neurons = std::fs::read_to_string(run.join("neurons.jsonl")).unwrap();
    std::fs::write(
        run.join("neurons.jsonl"),
        format!("{{\"fact\": 1}}\n{neurons}"),
    )
    .unwrap();
    let error = build_report(&run, &options).unwrap_err();
    assert!(
        matches!(error, ReportError::JsonLine { line: 1, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("neurons.jsonl line 1"));
    std::fs::write(run.join("neurons.jsonl"), neurons).unwrap();

    // Required files.
    std::fs::remove_file(run.join("config.json")).unwrap();
    let error = build_report(&run, &options).unwrap_err();
    assert!(matches!(error, ReportError::Missing { .. }));
    assert!(error.to_string().contains("config.json"));
}

#[test]
fn heatmap_options_choose_and_check_the_fact() {
    let (tmp, run) = copy_run();
    let with = |fact: Option<&str>, top_k: usize| ReportOptions {
        out_dir: Some(tmp.path().join("out")),
        fact: fact.map(str::to_string),
        top_k,
        ..ReportOptions::default()
    };
    let report = build_report(&run, &with(Some("P27:220"), 5)).unwrap();
    let html = std::fs::read_to_string(report.html.unwrap()).unwrap();
    assert!(html.contains("top 5 by score"));
    assert!(matches!(
        build_report(&run, &with(Some("P99:1"), 20)),
        Err(ReportError::UnknownFact { .. })
    ));
    let error = build_report(&run, &with(Some("P27:46"), 20)).unwrap_err();
    assert!(matches!(error, ReportError::NoScores { .. }));
    assert!(error.to_string().contains("P27_46.npy"));
    assert!(matches!(
        build_report(&run, &with(None, 0)),
        Err(ReportError::Option(_))
    ));
}
