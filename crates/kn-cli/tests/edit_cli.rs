//! `kn suppress`, `kn edit` and `kn erase` on a tiny discover run (tiny Llama fixture, 2 facts
//! of P36 and P1376): the JSON keys users script against, weights restored after every edit,
//! and exit code 2 on bad input (unknown fact or relation, multi-token answer, another model
//! than the run's, malformed neurons.jsonl).
//!
//! The tiny model knows nothing, so the run disables the correctness filter and uses a low
//! refinement share to get knowledge neurons at all; the numbers themselves are meaningless.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{fixture, kn};
use std::sync::OnceLock;

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "kn failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

/// A discover run of `relations` (facts per relation as given) made in the target's temporary
/// folder under `name`.
fn discover_run(name: &str, relations: &str, facts: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let model = fixture("tiny-llama");
    let out = dir.display().to_string();
    let output = kn(&[
        "discover",
        "--model",
        &model,
        "--relations",
        relations,
        "--facts-per-relation",
        facts,
        "--correct-rank",
        "0",
        "--steps",
        "4",
        "--share",
        "0.3",
        "--threshold",
        "0.1",
        "--out",
        &out,
    ]);
    assert!(
        output.status.success(),
        "kn discover failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

/// The shared discover run (made once per test binary).
fn run_dir() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| discover_run("edit_cli-run", "P36,P1376", "2"))
}

fn neurons_file() -> String {
    run_dir().join("neurons.jsonl").display().to_string()
}

fn records() -> Vec<Value> {
    records_of(run_dir())
}

fn records_of(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("neurons.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A P36 fact with knowledge neurons, and a single-token answer of the other relation.
fn fact_and_new_answer() -> (String, String, String) {
    let records = records();
    let fact = records
        .iter()
        .find(|r| r["relation"] == "P36" && !r["neurons"].as_array().unwrap().is_empty())
        .expect("a P36 fact with neurons");
    let other = records
        .iter()
        .find(|r| r["relation"] == "P1376" && r["object"] != fact["object"])
        .expect("a P1376 fact");
    (
        fact["fact"].as_str().unwrap().to_string(),
        fact["prompts"][0]["text"].as_str().unwrap().to_string(),
        other["object"].as_str().unwrap().to_string(),
    )
}

fn predict(prompt: &str) -> Vec<u8> {
    let output = kn(&[
        "predict",
        "--model",
        &fixture("tiny-llama"),
        "--prompt",
        prompt,
        "--top-k",
        "10",
        "--json",
    ]);
    assert!(output.status.success());
    output.stdout
}

#[test]
fn suppress_writes_the_report_and_the_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report.json");
    let chart = tmp.path().join("suppression.svg");
    let value = json(&kn(&[
        "suppress",
        "--model",
        &fixture("tiny-llama"),
        "--neurons",
        &neurons_file(),
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--chart",
        chart.to_str().unwrap(),
        "--json",
    ]));
    for key in [
        "run",
        "architecture",
        "fingerprint",
        "config",
        "overall",
        "relations",
        "facts",
        "activation_baseline_layers",
    ] {
        assert!(value.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(value["run"]["facts"], 4);
    assert_eq!(value["config"]["seed"], 3);
    for relation in ["P36", "P1376"] {
        let group = &value["relations"][relation];
        assert!(group["facts"].as_u64().unwrap() >= 1, "{relation}");
        for condition in ["own", "random", "other_relations", "activation_baseline"] {
            for op in ["suppress", "amplify"] {
                let summary = &group["conditions"][condition][op];
                for key in [
                    "change_pct",
                    "mean_relative_change_pct",
                    "mean_prob_before",
                    "mean_prob_after",
                    "prompts",
                ] {
                    assert!(
                        summary.get(key).is_some(),
                        "{relation} {condition} {op} lacks {key}"
                    );
                }
            }
        }
    }
    let own = &value["overall"]["conditions"]["own"]["suppress"];
    assert!(own["prompts"].as_u64().unwrap() > 0 && own["change_pct"].is_f64());
    assert!(
        value["overall"]["conditions"]["activation_baseline"]["suppress"]["prompts"]
            .as_u64()
            .unwrap()
            > 0
    );
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written, value, "--out holds the report printed with --json");
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("P36") && svg.contains("P1376"));

    // Without --json: a table per relation on stdout.
    let output = kn(&[
        "suppress",
        "--model",
        &fixture("tiny-llama"),
        "--neurons",
        &neurons_file(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    for word in [
        "P36",
        "P1376",
        "all",
        "suppress",
        "amplify",
        "random neurons",
        "activation baseline",
    ] {
        assert!(table.contains(word), "table lacks {word}: {table}");
    }
}

#[test]
fn edit_reports_the_metrics_saves_the_patch_and_restores_the_weights() {
    let (fact, prompt, answer) = fact_and_new_answer();
    let tmp = tempfile::tempdir().unwrap();
    let patch = tmp.path().join("edit.safetensors");
    let before = predict(&prompt);
    let value = json(&kn(&[
        "edit",
        "--model",
        &fixture("tiny-llama"),
        "--neurons",
        &neurons_file(),
        "--fact",
        &fact,
        "--new-answer",
        &answer,
        "--patch-out",
        patch.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        predict(&prompt),
        before,
        "predictions changed after kn edit"
    );
    assert_eq!(value["fact"], fact.as_str());
    assert_eq!(value["new_answer"], answer.as_str());
    assert_eq!(value["weights_restored"], true);
    for moment in ["before", "after", "random_control"] {
        for key in [
            "success_rate",
            "change_rate",
            "top5_rate",
            "mrr",
            "mean_old_prob",
            "mean_new_prob",
        ] {
            assert!(value[moment][key].is_f64(), "{moment} lacks {key}");
        }
        assert!(
            value[moment]["same_relation"]["perplexity"].is_f64(),
            "{moment}: same-relation perplexity"
        );
        assert!(
            value[moment]["other_relations"]["perplexity"].is_f64(),
            "{moment}: other-relation perplexity"
        );
    }
    for key in [
        "same_relation",
        "other_relations",
        "random_same_relation",
        "random_other_relations",
    ] {
        assert!(
            value["perplexity_change_pct"][key].is_f64(),
            "perplexity_change_pct lacks {key}"
        );
    }
    // The edit checks: reliability is the located prompts' success; P36 is not symmetric.
    let checks = &value["checks"];
    assert_eq!(checks["reliability"], value["after"]["success_rate"]);
    for key in ["same_relation", "other_relations"] {
        let locality = checks["locality"][key].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&locality),
            "locality {key}: {locality}"
        );
    }
    assert!(checks["symmetry"].is_null() && checks["symmetry_prompts"] == 0);
    assert!(!value["neurons"].as_array().unwrap().is_empty());
    assert!(value["shared_threshold_used"].as_f64().unwrap() >= 0.1);
    assert_eq!(value["config"]["lambda_add"], 8.0);
    let saved = kn_edit::Patch::load(&patch).expect("a kn-edit patch");
    let edited: Vec<(usize, usize)> = serde_json::from_value(value["neurons"].clone()).unwrap();
    assert_eq!(saved.neurons, edited);

    // A seeded sample of facts, aggregated.
    let value = json(&kn(&[
        "edit",
        "--model",
        &fixture("tiny-llama"),
        "--neurons",
        &neurons_file(),
        "--facts",
        "2",
        "--json",
    ]));
    for key in ["run", "requested", "aggregate", "facts", "skipped", "seed"] {
        assert!(value.get(key).is_some(), "sample output lacks {key}");
    }
    let aggregate = &value["aggregate"];
    let updated = aggregate["facts"].as_u64().unwrap();
    assert_eq!(updated as usize, value["facts"].as_array().unwrap().len());
    assert!((1..=2).contains(&updated), "{value}");
    for key in ["success_rate", "change_rate", "top5_rate", "mrr"] {
        assert!(
            aggregate["after"][key].is_f64() && aggregate["random_control"][key].is_f64(),
            "aggregate lacks {key}"
        );
    }
    assert!(value["facts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["weights_restored"] == true));
    assert_eq!(
        predict(&prompt),
        before,
        "predictions changed after kn edit --facts"
    );

    // Half of each fact's prompts held out: located on the rest, generality measured on them.
    let value = json(&kn(&[
        "edit",
        "--model",
        &fixture("tiny-llama"),
        "--neurons",
        &neurons_file(),
        "--facts",
        "2",
        "--holdout",
        "0.5",
        "--json",
    ]));
    let facts = value["facts"].as_array().unwrap();
    assert!(!facts.is_empty(), "{value}");
    for fact in facts {
        let run_prompts = records()
            .iter()
            .find(|r| r["fact"] == fact["fact"])
            .map(|r| r["prompts"].as_array().unwrap().len())
            .unwrap();
        let located = fact["after"]["prompts"].as_u64().unwrap() as usize;
        assert_eq!(located, run_prompts - run_prompts / 2, "{fact}");
        let checks = &fact["checks"];
        assert!(checks["generality_prompts"].as_u64().unwrap() as usize >= run_prompts / 2);
        assert!(checks["generality"].is_f64(), "{checks}");
    }
    assert!(value["aggregate"]["checks"]["reliability"].is_f64());
}

#[test]
fn erase_reports_both_groups_and_restores_the_weights() {
    let (_, prompt, _) = fact_and_new_answer();
    let before = predict(&prompt);
    let value = json(&kn(&[
        "erase",
        "--model",
        &fixture("tiny-llama"),
        "--neurons",
        &neurons_file(),
        "--relation",
        "P36",
        "--top",
        "5",
        "--json",
    ]));
    assert_eq!(
        predict(&prompt),
        before,
        "predictions changed after kn erase"
    );
    assert_eq!(value["relation"], "P36");
    assert_eq!(value["weights_restored"], true);
    assert!(value["neurons"].as_array().unwrap().len() <= 5);
    assert_eq!(value["token_text"], "<|endoftext|>");
    for moment in ["before", "after", "random_control"] {
        assert!(
            value[moment]["erased_relation"]["perplexity"].is_f64(),
            "{moment}"
        );
        assert!(
            value[moment]["other_relations"]["accuracy"].is_f64(),
            "{moment}"
        );
    }
    for group in ["erased_relation", "other_relations"] {
        for key in [
            "accuracy_before",
            "accuracy_after",
            "perplexity_before",
            "perplexity_after",
            "perplexity_change_pct",
            "random_perplexity_change_pct",
        ] {
            assert!(
                value["summary"][group][key].is_f64(),
                "summary.{group} lacks {key}"
            );
        }
    }
    // The erasure checks: forgetting shares over the prompts answered before, locality on the
    // other relation; the held-out prompts are P36's facts and paraphrases the run did not use.
    let checks = &value["checks"];
    let located = value["before"]["erased_relation"]["prompts"]
        .as_u64()
        .unwrap();
    let answered = checks["reliability_prompts"].as_u64().unwrap();
    assert!(answered <= located, "{checks}");
    assert_eq!(checks["reliability"].is_null(), answered == 0, "{checks}");
    assert_eq!(checks["held_out_prompts"], 200, "{checks}");
    assert!(checks["generality_prompts"].as_u64().unwrap() <= 200);
    assert!(checks["locality"]["same_relation"].is_null());
    let locality = checks["locality"]["other_relations"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&locality), "{checks}");
    assert!(value["random_checks"]["locality"]["other_relations"].is_f64());
    let zero = json(&kn(&[
        "erase",
        "--model",
        &fixture("tiny-llama"),
        "--neurons",
        &neurons_file(),
        "--relation",
        "P1376",
        "--value",
        "zero",
        "--random-control",
        "false",
        "--max-held-out",
        "7",
        "--json",
    ]));
    assert!(zero["token"].is_null() && zero["random_control"].is_null());
    assert!(zero["random_checks"].is_null());
    assert_eq!(zero["checks"]["held_out_prompts"], 7);
}

/// `kn edit --facts 2` on the shared run with `extra` options, as JSON.
fn edit_sample(extra: &[&str]) -> Value {
    let model = fixture("tiny-llama");
    let neurons = neurons_file();
    let mut args = vec![
        "edit",
        "--model",
        &model,
        "--neurons",
        &neurons,
        "--facts",
        "2",
        "--json",
    ];
    args.extend_from_slice(extra);
    json(&kn(&args))
}

#[test]
fn sweep_repeats_the_sample_under_each_setting_and_splits_the_damage_by_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    for file in ["config.json", "neurons.jsonl"] {
        std::fs::copy(run_dir().join(file), run.join(file)).unwrap();
    }
    let out = run.join("edit-sweep.json");
    let sweep = edit_sample(&["--sweep", "1,8", "--out", out.to_str().unwrap()]);
    let points = sweep["points"].as_array().unwrap();
    // λ2 fastest, then norm scaling, then the exclusion (0.1 as given, then none).
    let settings: Vec<(f64, bool, f64)> = points
        .iter()
        .map(|p| {
            let c = &p["config"];
            (
                c["lambda_add"].as_f64().unwrap(),
                c["scale_by_norm"].as_bool().unwrap(),
                c["shared_threshold"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        settings,
        vec![
            (1.0, false, 0.1),
            (8.0, false, 0.1),
            (1.0, true, 0.1),
            (8.0, true, 0.1),
            (1.0, false, 1.0),
            (8.0, false, 1.0),
            (1.0, true, 1.0),
            (8.0, true, 1.0),
        ]
    );
    // A point is the plain sample under its setting: the same facts, the same numbers.
    let plain = edit_sample(&[]);
    assert_eq!(points[1]["aggregate"], plain["aggregate"]);
    let norm = edit_sample(&["--lambda-add", "1", "--scale-by-norm"]);
    assert_eq!(points[2]["aggregate"], norm["aggregate"]);
    // The damage by layer: every edited neuron of the given update in exactly one layer, and
    // the cross-relation ones are knowledge neurons of another relation's fact.
    let records = records();
    let mut expected: std::collections::BTreeMap<u64, (u64, u64, u64)> = Default::default();
    for fact in plain["facts"].as_array().unwrap() {
        let relation = fact["relation"].as_str().unwrap();
        let mut layers = std::collections::BTreeSet::new();
        for neuron in fact["neurons"].as_array().unwrap() {
            let (layer, index) = (neuron[0].as_u64().unwrap(), neuron[1].as_u64().unwrap());
            let cross = records.iter().any(|r| {
                r["relation"] != relation
                    && r["neurons"].as_array().unwrap().iter().any(|n| {
                        n["layer"].as_u64() == Some(layer) && n["neuron"].as_u64() == Some(index)
                    })
            });
            let entry = expected.entry(layer).or_default();
            entry.1 += 1;
            entry.2 += u64::from(cross);
            layers.insert(layer);
        }
        for layer in layers {
            expected.get_mut(&layer).unwrap().0 += 1;
        }
    }
    let by_layer: std::collections::BTreeMap<u64, (u64, u64, u64)> = sweep["damage_by_layer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let n = |key: &str| l[key].as_u64().unwrap();
            (
                n("layer"),
                (n("facts"), n("neurons"), n("cross_relation_neurons")),
            )
        })
        .collect();
    assert_eq!(by_layer, expected);
    // The file is the JSON printed, and the report draws the curve from it.
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written["points"], sweep["points"]);
    let report = kn(&["report", run.to_str().unwrap(), "--format", "markdown"]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let markdown = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(markdown.contains("Update sweep (kn edit --sweep)"));
    assert!(markdown.contains("figures/sweep.svg"));
    assert!(run.join("report/figures/sweep.svg").is_file());
}

/// The top-1 token of `prompt` as text (`kn predict`).
fn top1_text(prompt: &str) -> String {
    let value = json(&kn(&[
        "predict",
        "--model",
        &fixture("tiny-llama"),
        "--prompt",
        prompt,
        "--json",
    ]));
    value["top"][0]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no top-1 token: {value}"))
        .to_string()
}

/// The first token of `answer` after `prompt`, as text (`kn attribute`'s answer tokens).
fn first_answer_token(prompt: &str, answer: &str) -> String {
    let value = json(&kn(&[
        "attribute",
        "--model",
        &fixture("tiny-llama"),
        "--prompt",
        prompt,
        "--answer",
        answer,
        "--steps",
        "1",
        "--json",
    ]));
    value["answer_tokens"][0].as_str().unwrap().to_string()
}

#[test]
fn symmetry_is_measured_on_the_reversed_fact_of_a_symmetric_relation() {
    // P47 "shares border with": after X -> Y', the reversed fact is "Y' shares border with X".
    let run = discover_run("edit_cli-symmetric", "P47", "3");
    let neurons = run.join("neurons.jsonl").display().to_string();
    let value = json(&kn(&[
        "edit",
        "--model",
        &fixture("tiny-llama"),
        "--neurons",
        &neurons,
        "--facts",
        "3",
        "--json",
    ]));
    let facts = value["facts"].as_array().unwrap();
    assert!(!facts.is_empty(), "no P47 fact edited: {value}");
    let records = records_of(&run);
    for edit in facts {
        let id = edit["fact"].as_str().unwrap();
        let record = records.iter().find(|r| r["fact"] == id).unwrap();
        let subject = edit["subject"].as_str().unwrap();
        let new_answer = edit["new_answer"].as_str().unwrap();
        // The reversed prompts are the relation's templates with the new answer as subject:
        // the fact's own prompts with the subject swapped.
        let reversed: Vec<String> = record["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap().replacen(subject, new_answer, 1))
            .collect();
        let checks = &edit["checks"];
        assert_eq!(
            checks["symmetry_prompts"].as_u64().unwrap() as usize,
            reversed.len(),
            "{id}: {checks}"
        );
        // Before the edit: the share of reversed prompts whose top-1 token is the subject's.
        let holds = reversed
            .iter()
            .filter(|p| top1_text(p) == first_answer_token(p, subject))
            .count() as f64
            / reversed.len() as f64;
        let before = checks["symmetry_before"].as_f64().unwrap();
        assert!((before - holds).abs() < 1e-12, "{id}: {before} vs {holds}");
        let after = checks["symmetry"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&after), "{id}: {checks}");
    }
    assert!(value["aggregate"]["checks"]["symmetry"].is_f64(), "{value}");
}

#[test]
fn bad_input_exits_with_code_2() {
    let (fact, _, answer) = fact_and_new_answer();
    let model = fixture("tiny-llama");
    let neurons = neurons_file();
    let tmp = tempfile::tempdir().unwrap();
    // A copy of the run with a malformed line, and one without config.json.
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(run_dir().join("config.json"), broken.join("config.json")).unwrap();
    let mut text = std::fs::read_to_string(run_dir().join("neurons.jsonl")).unwrap();
    text.push_str("{\"fact\": \"P36:1\", \"relation\": oops}\n");
    std::fs::write(broken.join("neurons.jsonl"), text).unwrap();
    let broken = broken.join("neurons.jsonl").display().to_string();
    let lonely = tmp.path().join("lonely.jsonl");
    std::fs::copy(run_dir().join("neurons.jsonl"), &lonely).unwrap();
    let lonely = lonely.display().to_string();
    let other_model = fixture("tiny-llama.gguf");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--facts",
                "1",
                "--holdout",
                "1",
            ],
            "--holdout must be in [0, 1)",
        ),
        (
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--facts",
                "1",
                "--sweep",
                "1,NaN",
            ],
            "--sweep must be a finite number",
        ),
        (
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--facts",
                "1",
                "--lambda-add",
                "nan",
            ],
            "--lambda-add must be a finite number",
        ),
        (
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--facts",
                "1",
                "--shared-threshold=-0.5",
            ],
            "--shared-threshold must be a finite number >= 0",
        ),
        (
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--fact",
                "P36:999999",
                "--new-answer",
                &answer,
            ],
            "not in",
        ),
        (
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--fact",
                &fact,
                "--new-answer",
                "Copenhagen",
            ],
            "tokens",
        ),
        (
            vec![
                "edit",
                "--model",
                &other_model,
                "--neurons",
                &neurons,
                "--fact",
                &fact,
                "--new-answer",
                &answer,
            ],
            "another model",
        ),
        (
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &broken,
                "--fact",
                &fact,
                "--new-answer",
                &answer,
            ],
            "line 5",
        ),
        (
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--facts",
                "0",
            ],
            "at least 1",
        ),
        (
            vec!["edit", "--model", &model, "--neurons", &neurons],
            "required",
        ),
        (
            vec!["suppress", "--model", &model, "--neurons", &broken],
            "line 5",
        ),
        (
            vec!["suppress", "--model", &model, "--neurons", &lonely],
            "config.json",
        ),
        (
            vec![
                "suppress",
                "--model",
                &model,
                "--neurons",
                "/nonexistent/neurons.jsonl",
            ],
            "cannot read",
        ),
        (
            vec!["suppress", "--model", &other_model, "--neurons", &neurons],
            "another model",
        ),
        (
            vec![
                "suppress",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--relations",
                "P19",
            ],
            "no facts",
        ),
        (
            vec![
                "erase",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--relation",
                "P19",
            ],
            "no facts",
        ),
        (
            vec![
                "erase",
                "--model",
                &other_model,
                "--neurons",
                &neurons,
                "--relation",
                "P36",
            ],
            "another model",
        ),
        (
            vec![
                "erase",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--relation",
                "P36",
                "--value",
                "id:x",
            ],
            "token id",
        ),
        (
            vec![
                "erase",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--relation",
                "P36",
                "--value",
                "no-such-token",
            ],
            "vocabulary",
        ),
        (
            vec![
                "erase",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--relation",
                "P36",
                "--top",
                "0",
            ],
            "--top",
        ),
    ];
    for (args, message) in cases {
        let output = kn(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{args:?}: results on stdout despite the error"
        );
    }
}
