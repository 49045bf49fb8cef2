//! `kn activations` and `kn triggers` end to end on the tiny Llama and BERT fixtures: a tiny
//! `kn discover` run over a five-facts-per-relation PARAREL excerpt that lines up with the
//! committed BINGREL excerpt (`fixtures/bingrel`); JSON keys, counts that add up, trigger
//! lists, and bad input (misaligned or missing corpus files, unknown facts) refused with code 2.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{kn, ok};

const RELATIONS: [&str; 3] = ["P36", "P47", "P176"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn refused(output: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
    stderr
}

/// PARAREL cut to the first 5 facts of the excerpt's relations, so that the BINGREL excerpt
/// lines up with it.
fn pararel_excerpt(dir: &Path) -> PathBuf {
    let source = root().join("data/pararel");
    let out = dir.join("pararel");
    std::fs::create_dir_all(out.join("patterns")).unwrap();
    let pairs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("query_pairs.json")).unwrap())
            .unwrap();
    let mut cut = serde_json::Map::new();
    for relation in RELATIONS {
        let list = pairs[relation].as_array().unwrap();
        cut.insert(
            relation.into(),
            serde_json::Value::Array(list[..5].to_vec()),
        );
        let pattern = format!("patterns/{relation}.jsonl");
        std::fs::copy(source.join(&pattern), out.join(&pattern)).unwrap();
    }
    std::fs::write(
        out.join("query_pairs.json"),
        serde_json::to_string(&cut).unwrap(),
    )
    .unwrap();
    std::fs::copy(source.join("relations.jsonl"), out.join("relations.jsonl")).unwrap();
    out
}

fn corpus() -> String {
    root().join("fixtures/bingrel").display().to_string()
}

/// A tiny discover run of `model` into `dir/run`; returns (run dir, PARAREL excerpt).
fn discover(dir: &Path, model: &str) -> (PathBuf, PathBuf) {
    let data = pararel_excerpt(dir);
    let run = dir.join("run");
    let model = root().join("fixtures").join(model).display().to_string();
    let (data_text, run_text) = (data.display().to_string(), run.display().to_string());
    ok(
        &kn(&[
            "discover",
            "--model",
            &model,
            "--relations",
            "P36,P47,P176",
            "--facts-per-relation",
            "2",
            "--correct-rank",
            "0",
            "--single-token",
            "false",
            "--steps",
            "4",
            "--data",
            &data_text,
            "--out",
            &run_text,
        ]),
        "kn discover",
    );
    (run, data)
}

fn records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("neurons.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn activations(model: &str, run: &Path, corpus: &str, out: &Path, extra: &[&str]) -> Output {
    let model = root().join("fixtures").join(model).display().to_string();
    let neurons = run.join("neurons.jsonl").display().to_string();
    let out = out.display().to_string();
    let mut args = vec![
        "activations",
        "--model",
        model.as_str(),
        "--neurons",
        &neurons,
        "--corpus",
        corpus,
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    kn(&args)
}

fn triggers(model: &str, run: &Path, corpus: &str, fact: &str, extra: &[&str]) -> Output {
    let model = root().join("fixtures").join(model).display().to_string();
    let neurons = run.join("neurons.jsonl").display().to_string();
    let mut args = vec![
        "triggers",
        "--model",
        model.as_str(),
        "--neurons",
        &neurons,
        "--corpus",
        corpus,
        "--fact",
        fact,
    ];
    args.extend_from_slice(extra);
    kn(&args)
}

const SUMMARY_KEYS: [&str; 3] = ["n", "mean", "se"];
const COUNT_KEYS: [&str; 7] = [
    "sentences",
    "evaluated",
    "target_missing",
    "no_context",
    "too_long",
    "unencodable",
    "fact_skipped",
];

/// Checks the keys of activations.json and that its counts add up; returns it.
fn check_report(out: &Path, facts_in_run: usize) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("activations.json")).unwrap())
            .unwrap();
    for key in [
        "run",
        "corpus",
        "data",
        "model",
        "config",
        "overall",
        "mean_of_relations",
        "relations",
        "facts",
    ] {
        assert!(report.get(key).is_some(), "activations.json lacks {key}");
    }
    let group_ok = |group: &serde_json::Value| {
        for part in ["knowledge", "random"] {
            for kind in ["t1", "t2", "t3"] {
                for key in SUMMARY_KEYS {
                    assert!(
                        group[part][kind].get(key).is_some(),
                        "{part}.{kind} lacks {key}"
                    );
                }
                assert_eq!(group[part][kind]["n"], group["facts"]);
            }
        }
        for pair in ["t1_minus_t2", "t1_minus_t3", "t2_minus_t3"] {
            assert_eq!(group["knowledge_paired"][pair]["n"], group["facts"]);
        }
        for kind in ["t1", "t2", "t3"] {
            let c = &group["sentences"][kind];
            let n = |k: &str| {
                c[k].as_u64()
                    .unwrap_or_else(|| panic!("sentences.{kind} lacks {k}"))
            };
            let parts: u64 = COUNT_KEYS[1..].iter().map(|k| n(k)).sum();
            assert_eq!(n("sentences"), parts, "{kind}: {c}");
        }
        if group["facts"].as_u64().unwrap() > 0 {
            // Discover records carry their prompts: every evaluated fact has sign-aligned values.
            let aligned = &group["aligned"];
            assert_eq!(aligned["facts"], group["facts"]);
            for key in [
                "knowledge_on_prompts",
                "random_on_prompts",
                "knowledge_prompts",
                "random_prompts",
            ] {
                assert!(aligned[key].get("mean").is_some(), "aligned lacks {key}");
            }
            for kind in ["t1", "t2", "t3"] {
                assert_eq!(aligned["knowledge"][kind]["n"], group["facts"]);
                assert_eq!(aligned["random"][kind]["n"], group["facts"]);
            }
        }
        let skipped: u64 = group["skipped"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        group["facts"].as_u64().unwrap() + skipped
    };
    let overall = group_ok(&report["overall"]);
    assert_eq!(
        overall as usize, facts_in_run,
        "evaluated + skipped facts = facts of the run"
    );
    let mut by_relation = 0;
    for group in report["relations"].as_object().unwrap().values() {
        by_relation += group_ok(group);
    }
    assert_eq!(by_relation, overall);
    assert_eq!(
        report["facts"].as_array().unwrap().len() as u64,
        report["overall"]["facts"].as_u64().unwrap()
    );
    for fact in report["facts"].as_array().unwrap() {
        for key in [
            "fact",
            "relation",
            "neurons",
            "random_neurons",
            "knowledge",
            "random",
            "sentences",
        ] {
            assert!(fact.get(key).is_some(), "fact lacks {key}");
        }
        assert_eq!(
            fact["neurons"].as_array().unwrap().len(),
            fact["random_neurons"].as_array().unwrap().len()
        );
    }
    report
}

/// A fact of the run with knowledge neurons and head+tail sentences in the excerpt.
fn rankable_fact(run: &Path) -> Option<String> {
    records(run)
        .iter()
        .filter(|r| !r["neurons"].as_array().unwrap().is_empty() && r["fact"] != "P47:3")
        .map(|r| r["fact"].as_str().unwrap().to_string())
        .next()
}

#[test]
fn llama_activations_triggers_and_bad_corpora() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = discover(dir.path(), "tiny-llama");
    let facts = records(&run).len();
    assert_eq!(facts, 6);

    let out = dir.path().join("act");
    let output = activations("tiny-llama", &run, &corpus(), &out, &["--seed", "1"]);
    ok(&output, "kn activations");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "T1 head+tail",
        "overall",
        "knowledge aligned",
        "random aligned",
        "own prompts",
        "paired differences",
        "skipped facts",
        "mean of",
    ] {
        assert!(stdout.contains(needle), "table lacks {needle:?}:\n{stdout}");
    }
    let report = check_report(&out, facts);
    assert_eq!(report["config"]["seed"], 1);
    assert_eq!(report["run"]["facts"], 6);

    // --sentences-per-fact caps T1 and T2 (and so T3).
    let capped = dir.path().join("capped");
    ok(
        &activations(
            "tiny-llama",
            &run,
            &corpus(),
            &capped,
            &["--sentences-per-fact", "1", "--json"],
        ),
        "capped",
    );
    let report = check_report(&capped, facts);
    for fact in report["facts"].as_array().unwrap() {
        for kind in ["t1", "t2", "t3"] {
            assert!(fact["sentences"][kind].as_u64().unwrap() <= 1);
        }
    }

    // Triggers of a fact with neurons and sentences: text and JSON.
    let fact = rankable_fact(&run).expect("the tiny run has a fact with knowledge neurons");
    let text = triggers("tiny-llama", &run, &corpus(), &fact, &["--top", "2"]);
    ok(&text, "kn triggers");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("top sentences with the tail:") && text.contains("with the tail hidden"),
        "{text}"
    );
    let json = triggers(
        "tiny-llama",
        &run,
        &corpus(),
        &fact,
        &["--top", "2", "--json"],
    );
    ok(&json, "kn triggers --json");
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["fact"], fact.as_str());
    for list in ["with_tail", "without_tail"] {
        let list = json[list].as_array().unwrap();
        assert!(!list.is_empty() && list.len() <= 2);
        let scores: Vec<f64> = list.iter().map(|s| s["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    }
    let aligned = triggers(
        "tiny-llama",
        &run,
        &corpus(),
        &fact,
        &["--aligned", "--json"],
    );
    ok(&aligned, "kn triggers --aligned");
    let aligned: serde_json::Value = serde_json::from_slice(&aligned.stdout).unwrap();
    assert_eq!(
        aligned["signs"].as_array().unwrap().len(),
        aligned["neurons"].as_array().unwrap().len()
    );
    assert!(json["signs"].as_array().unwrap().is_empty());
    assert!(refused(
        &triggers("tiny-llama", &run, &corpus(), "P36:999", &[]),
        "unknown fact"
    )
    .contains("P36:999"));

    // A corpus with a bag dropped no longer lines up with the facts.
    let bad = dir.path().join("misaligned");
    std::fs::create_dir_all(&bad).unwrap();
    for relation in RELATIONS {
        let name = format!("final_distant_allbags_{relation}_new.json");
        std::fs::copy(root().join("fixtures/bingrel").join(&name), bad.join(&name)).unwrap();
    }
    let p36 = bad.join("final_distant_allbags_P36_new.json");
    let mut bags: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&p36).unwrap()).unwrap();
    bags.remove(0);
    std::fs::write(&p36, serde_json::to_string(&bags).unwrap()).unwrap();
    let bad_text = bad.display().to_string();
    let stderr = refused(
        &activations("tiny-llama", &run, &bad_text, &dir.path().join("x"), &[]),
        "misaligned corpus",
    );
    assert!(stderr.contains("P36"), "{stderr}");
    assert!(!dir.path().join("x/activations.json").exists());

    // A missing relation file.
    std::fs::remove_file(bad.join("final_distant_allbags_P47_new.json")).unwrap();
    std::fs::copy(
        root().join("fixtures/bingrel/final_distant_allbags_P36_new.json"),
        &p36,
    )
    .unwrap();
    let stderr = refused(
        &activations("tiny-llama", &run, &bad_text, &dir.path().join("y"), &[]),
        "missing file",
    );
    assert!(
        stderr.contains("final_distant_allbags_P47_new.json"),
        "{stderr}"
    );
    // ... and no corpus at all.
    refused(
        &activations(
            "tiny-llama",
            &run,
            "/nonexistent/bingrel",
            &dir.path().join("z"),
            &[],
        ),
        "no corpus",
    );
    // Without --data, the bundled PARAREL (703 P36 facts) does not line up with the excerpt either.
    refused(
        &activations(
            "tiny-llama",
            &run,
            &corpus(),
            &dir.path().join("w"),
            &["--data", &root().join("data/pararel").display().to_string()],
        ),
        "full PARAREL against the excerpt",
    );
}

#[test]
fn bert_masked_form() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = discover(dir.path(), "tiny-bert");
    let out = dir.path().join("act");
    ok(
        &activations("tiny-bert", &run, &corpus(), &out, &[]),
        "kn activations (BERT)",
    );
    let report = check_report(&out, records(&run).len());
    assert_eq!(report["model"]["kind"], "masked");
    if let Some(fact) = rankable_fact(&run) {
        let json = triggers("tiny-bert", &run, &corpus(), &fact, &["--json"]);
        ok(&json, "kn triggers (BERT)");
        let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        for s in json["without_tail"].as_array().unwrap() {
            assert!(s["text"].as_str().unwrap().contains("[MASK]"));
        }
        for s in json["with_tail"].as_array().unwrap() {
            assert!(!s["text"].as_str().unwrap().contains("[MASK]"));
        }
    }
    // Another model than the run's is refused.
    let other = activations(
        "tiny-llama",
        &run,
        &corpus(),
        &dir.path().join("other"),
        &[],
    );
    refused(&other, "another model");
}
