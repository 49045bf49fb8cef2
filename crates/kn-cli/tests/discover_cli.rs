//! `kn discover` end to end on the tiny Llama: output files and keys, resuming (also after a
//! torn last line), refusal of a different configuration, shards covering the facts once, and
//! bad input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{fixture, kn, kn_command, tiny_discover_args};

fn discover(out: &Path, extra: &[&str]) -> Output {
    kn(&tiny_discover_args(out, extra))
}

fn facts(dir: &Path) -> Vec<String> {
    common::fact_ids(dir)
}

fn ok(output: &Output) {
    common::ok(output, "kn discover");
}

#[test]
fn a_run_writes_its_files_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("run");
    ok(&discover(&out, &[]));
    for file in [
        "config.json",
        "neurons.jsonl",
        "relations.json",
        "stats.json",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let first = facts(&out);
    assert_eq!(first.len(), 6);
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(out.join("neurons.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    for key in [
        "fact", "relation", "subject", "object", "prompts", "neurons", "seconds",
    ] {
        assert!(line.get(key).is_some(), "neurons.jsonl lacks {key}");
    }
    assert!(line["prompts"][0]["prob"].is_f64() && line["prompts"][0]["coarse"].is_array());
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["summary"]["facts"], 6);
    let relations: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("relations.json")).unwrap())
            .unwrap();
    assert!(relations.get("P36").is_some() && relations.get("P1376").is_some());

    // A second run resumes: nothing is redone.
    let before = std::fs::read_to_string(out.join("neurons.jsonl")).unwrap();
    ok(&discover(&out, &[]));
    assert_eq!(
        std::fs::read_to_string(out.join("neurons.jsonl")).unwrap(),
        before
    );

    // An interrupted write leaves a torn line: it is dropped and that fact redone.
    let mut lines: Vec<&str> = before.lines().collect();
    let last = lines.pop().unwrap().to_string();
    let torn = format!("{}\n{}", lines.join("\n"), &last[..last.len() / 2]);
    std::fs::write(out.join("neurons.jsonl"), torn).unwrap();
    ok(&discover(&out, &[]));
    let after = facts(&out);
    assert_eq!(
        after.iter().collect::<BTreeSet<_>>(),
        first.iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(after.len(), 6);
}

#[test]
fn a_different_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    ok(&discover(&out, &[]));
    let before = std::fs::read_to_string(out.join("neurons.jsonl")).unwrap();
    let output = discover(&out, &["--threshold", "0.3"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("different configuration"));
    assert_eq!(
        std::fs::read_to_string(out.join("neurons.jsonl")).unwrap(),
        before,
        "results were touched"
    );
}

#[test]
fn shards_cover_every_fact_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    ok(&discover(&whole, &[]));
    let mut union = Vec::new();
    for i in 0..3 {
        let shard = dir.path().join(format!("shard{i}"));
        ok(&discover(&shard, &["--shard", &format!("{i}/3")]));
        union.extend(facts(&shard));
    }
    let unique: BTreeSet<&String> = union.iter().collect();
    assert_eq!(
        unique.len(),
        union.len(),
        "a fact was processed by two shards"
    );
    assert_eq!(unique, facts(&whole).iter().collect::<BTreeSet<_>>());

    // kn merge reproduces the unsharded run: same facts in the same order, same neurons.
    let merged = dir.path().join("merged");
    let shards: Vec<String> = (0..3)
        .map(|i| dir.path().join(format!("shard{i}")).display().to_string())
        .collect();
    let mut args = vec![
        "merge".to_string(),
        "--out".to_string(),
        merged.display().to_string(),
    ];
    args.extend(shards.iter().rev().cloned());
    ok(&kn_command().args(&args).output().unwrap());
    assert_eq!(facts(&merged), facts(&whole));
    let neurons = |dir: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("neurons.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["neurons"].clone())
            .collect()
    };
    assert_eq!(neurons(&merged), neurons(&whole));
    let stats = |dir: &Path| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(dir.join("stats.json")).unwrap(),
        )
        .unwrap()["summary"]
            .clone()
    };
    assert_eq!(stats(&merged), stats(&whole));

    // An unfinished shard (its last fact not written) is refused, naming the shard.
    let unfinished = dir.path().join("unfinished");
    std::fs::create_dir_all(&unfinished).unwrap();
    for file in ["config.json", "selection.json"] {
        std::fs::copy(Path::new(&shards[1]).join(file), unfinished.join(file)).unwrap();
    }
    let text = std::fs::read_to_string(Path::new(&shards[1]).join("neurons.jsonl")).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    std::fs::write(
        unfinished.join("neurons.jsonl"),
        format!("{}\n", kept[..kept.len() - 1].join("\n")),
    )
    .unwrap();
    let output = kn_command()
        .args([
            "merge",
            "--out",
            &dir.path().join("m4").display().to_string(),
            &shards[0],
            &unfinished.display().to_string(),
            &shards[2],
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unfinished"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Missing or repeated shards are refused.
    let output = kn_command()
        .args([
            "merge",
            "--out",
            &dir.path().join("m2").display().to_string(),
            &shards[0],
            &shards[1],
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing"));
    let output = kn_command()
        .args([
            "merge",
            "--out",
            &dir.path().join("m3").display().to_string(),
            &shards[0],
            &shards[0],
            &shards[1],
            &shards[2],
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn bad_input_is_refused_with_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let model = fixture("tiny-llama");
    let out_text = out.display().to_string();
    for args in [
        vec![
            "discover",
            "--model",
            model.as_str(),
            "--relations",
            "P9999",
            "--out",
            out_text.as_str(),
        ],
        vec![
            "discover",
            "--model",
            model.as_str(),
            "--relations",
            "P36",
            "--shard",
            "3/3",
            "--out",
            out_text.as_str(),
        ],
        vec![
            "discover",
            "--model",
            model.as_str(),
            "--relations",
            "P36",
            "--steps",
            "0",
            "--out",
            out_text.as_str(),
        ],
        vec![
            "discover",
            "--model",
            model.as_str(),
            "--relations",
            "P36",
            "--share",
            "1.5",
            "--out",
            out_text.as_str(),
        ],
        vec![
            "discover",
            "--model",
            model.as_str(),
            "--relations",
            "P36",
            "--data",
            "/nonexistent",
            "--out",
            out_text.as_str(),
        ],
    ] {
        let output = kn_command().args(&args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(!out.join("neurons.jsonl").exists());
}

/// `--method` chooses the coarse step's scores: recorded in config.json, the same facts as
/// with integrated gradients but other coarse neurons, a resume with another method refused.
#[test]
fn the_coarse_step_takes_any_method() {
    let dir = tempfile::tempdir().unwrap();
    let ig = dir.path().join("ig");
    ok(&discover(&ig, &[]));
    let coarse = |run: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(run.join("neurons.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["prompts"].clone())
            .collect()
    };
    for method in ["grad-x-act", "activation", "logprob-increase"] {
        let run = dir.path().join(method);
        ok(&discover(&run, &["--method", method]));
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["method"], method);
        assert_eq!(facts(&run), facts(&ig), "{method}");
        assert_ne!(
            coarse(&run),
            coarse(&ig),
            "{method}: the same coarse neurons as ig"
        );
        let resumed = discover(&run, &["--method", "ig"]);
        assert_eq!(resumed.status.code(), Some(2), "{method}");
        assert!(String::from_utf8_lossy(&resumed.stderr).contains("method"));
    }
}

/// `--method atp`: each prompt's counterfactual is the same template with the subject of
/// another fact of the relation (one counterpart per fact, the same in a shard), and the coarse
/// neurons are those of `kn attribute --method atp` on that pair.
#[test]
fn atp_discovery_patches_in_another_fact_of_the_relation() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("atp");
    ok(&discover(&run, &["--method", "atp"]));
    let ig = dir.path().join("ig");
    ok(&discover(&ig, &[]));
    assert_eq!(facts(&run), facts(&ig));
    let lines = |run: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(run.join("neurons.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let records = lines(&run);
    for record in &records {
        let subject = record["subject"].as_str().unwrap();
        let mut counterparts = BTreeSet::new();
        for prompt in record["prompts"].as_array().unwrap() {
            let text = prompt["text"].as_str().unwrap();
            let other = prompt["counterfactual"].as_str().unwrap();
            // The same template around another subject.
            let at = text.find(subject).unwrap();
            let (before, after) = (&text[..at], &text[at + subject.len()..]);
            assert!(
                other.starts_with(before) && other.ends_with(after),
                "{text} / {other}"
            );
            let swapped = &other[before.len()..other.len() - after.len()];
            assert_ne!(swapped, subject);
            counterparts.insert(swapped.to_string());
        }
        assert_eq!(
            counterparts.len(),
            1,
            "one counterpart per fact: {counterparts:?}"
        );
    }
    // The coarse neurons of a prompt are kn attribute's atp scores, negated (the drop of the
    // answer's log-probability when the counterfactual is patched in), above 0.2 x their
    // maximum.
    let record = &records[0];
    let prompt = &record["prompts"][0];
    let matrix = dir.path().join("scores.json");
    let attribute = kn(&[
        "attribute",
        "--model",
        &common::fixture("tiny-llama"),
        "--method",
        "atp",
        "--prompt",
        prompt["text"].as_str().unwrap(),
        "--answer",
        record["object"].as_str().unwrap(),
        "--counterfactual",
        prompt["counterfactual"].as_str().unwrap(),
        "--out",
        matrix.to_str().unwrap(),
    ]);
    common::ok(&attribute, "kn attribute");
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&matrix).unwrap()).unwrap();
    let layers: Vec<u64> = scores["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap())
        .collect();
    let rows: Vec<Vec<f64>> = scores["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| -v.as_f64().unwrap())
                .collect()
        })
        .collect();
    let max = rows.iter().flatten().fold(f64::MIN, |m, &v| m.max(v));
    let mut expected: Vec<(u64, u64)> = Vec::new();
    for (layer, row) in layers.iter().zip(&rows) {
        for (i, &v) in row.iter().enumerate() {
            if v > 0.2 * max {
                expected.push((*layer, i as u64));
            }
        }
    }
    let coarse: Vec<(u64, u64)> = prompt["coarse"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n[0].as_u64().unwrap(), n[1].as_u64().unwrap()))
        .collect();
    assert!(!coarse.is_empty());
    assert_eq!(coarse, expected);
    // A shard scores its facts against the same counterparts as the whole run.
    let shard = dir.path().join("shard");
    ok(&discover(&shard, &["--method", "atp", "--shard", "1/2"]));
    for line in lines(&shard) {
        let whole = records.iter().find(|r| r["fact"] == line["fact"]).unwrap();
        assert_eq!(line["prompts"], whole["prompts"], "{}", line["fact"]);
    }
}
