//! The `kn` binary as users script it: JSON keys that are contracts, exit codes (2 for bad
//! input), results on stdout and errors on stderr. Runs on the tiny fixtures.

use std::process::Output;

mod common;
use common::{fixture, kn};

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "kn failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

#[test]
fn predict_prints_the_documented_json() {
    let llama = fixture("tiny-llama.gguf");
    let output = kn(&[
        "predict",
        "--model",
        llama.as_str(),
        "--prompt",
        "The capital of France is",
        "--top-k",
        "5",
        "--json",
    ]);
    let value = json(&output);
    assert_eq!(value["prompt"], "The capital of France is");
    assert_eq!(value["tokens"].as_array().unwrap().len(), 5);
    let top = value["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    assert!(top[0]["token"].is_string() && top[0]["id"].is_i64() && top[0]["prob"].is_f64());
    assert!(top
        .windows(2)
        .all(|w| w[0]["prob"].as_f64() >= w[1]["prob"].as_f64()));

    let bert = fixture("tiny-bert");
    let value = json(&kn(&[
        "predict",
        "--model",
        bert.as_str(),
        "--prompt",
        "The capital of France is [MASK] .",
        "--json",
    ]));
    assert_eq!(value["top"][0]["token"], "Low");
}

/// `--dtype bf16` loads the weights in bfloat16: the same top prediction as float32 with a
/// probability near (not equal to) it, and attribution runs.
#[test]
fn bf16_predicts_near_float32_and_attributes() {
    let llama = fixture("tiny-llama");
    let predict = |dtype: &str| {
        json(&kn(&[
            "predict",
            "--model",
            llama.as_str(),
            "--prompt",
            "The capital of France is",
            "--dtype",
            dtype,
            "--json",
        ]))
    };
    let (wide, narrow) = (predict("f32"), predict("bf16"));
    assert_eq!(wide["top"][0]["id"], narrow["top"][0]["id"]);
    let (p, q) = (
        wide["top"][0]["prob"].as_f64().unwrap(),
        narrow["top"][0]["prob"].as_f64().unwrap(),
    );
    assert!(p != q && (p - q).abs() <= 0.05 * p, "{p} vs {q}");
    let value = json(&kn(&[
        "attribute",
        "--model",
        llama.as_str(),
        "--prompt",
        "The capital of France is",
        "--answer",
        "Paris",
        "--dtype",
        "bf16",
        "--json",
    ]));
    assert!(
        value["top"].as_array().is_some_and(|top| !top.is_empty()),
        "{value}"
    );
}

/// `--method atp` end to end: the top neuron and its score are the Python reference's
/// (`fixtures/golden/atp_tiny.json`), the JSON names the method and the counterfactual; the
/// other methods run; a missing or misplaced `--counterfactual` is bad input.
#[test]
fn attribution_methods_run_from_the_command_line() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("golden/atp_tiny.json")).unwrap())
            .unwrap();
    let case = &golden["cases"][0];
    assert_eq!(case["model"], "fixtures/tiny-llama");
    let (mut best, mut at) = (f64::MIN, (0, 0));
    for (layer, row) in case["atp"].as_array().unwrap().iter().enumerate() {
        for (neuron, value) in row.as_array().unwrap().iter().enumerate() {
            if value.as_f64().unwrap() > best {
                (best, at) = (value.as_f64().unwrap(), (layer, neuron));
            }
        }
    }
    let llama = fixture("tiny-llama");
    let base = [
        "attribute",
        "--model",
        llama.as_str(),
        "--prompt",
        case["prompt"].as_str().unwrap(),
        "--answer",
        case["answer"].as_str().unwrap(),
        "--json",
    ];
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        kn(&args)
    };
    let value = json(&with(&[
        "--method",
        "atp",
        "--counterfactual",
        case["counterfactual"].as_str().unwrap(),
    ]));
    assert_eq!(value["method"], "atp");
    assert_eq!(value["counterfactual"], case["counterfactual"]);
    assert_eq!(value["target"], "log-probability");
    let top = &value["top"][0];
    assert_eq!(
        (
            top["layer"].as_u64().unwrap() as usize,
            top["neuron"].as_u64().unwrap() as usize
        ),
        at
    );
    let scale = case["max_abs_atp"].as_f64().unwrap();
    assert!((top["score"].as_f64().unwrap() - best).abs() <= 1e-4 * scale);
    for method in ["activation", "grad-x-act", "logprob-increase", "ig"] {
        let value = json(&with(&["--method", method]));
        assert_eq!(value["method"], method);
        assert!(!value["top"].as_array().unwrap().is_empty());
    }
    for extra in [
        &["--method", "atp"][..],
        &["--method", "ig", "--counterfactual", "x"][..],
        &["--method", "nope"][..],
    ] {
        assert_eq!(with(extra).status.code(), Some(2), "{extra:?}");
    }
}

#[test]
fn attribute_prints_the_documented_json_and_saves_the_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scores.npy");
    let llama = fixture("tiny-llama");
    let value = json(&kn(&[
        "attribute",
        "--model",
        llama.as_str(),
        "--prompt",
        "The capital of France is",
        "--answer",
        "Paris",
        "--steps",
        "20",
        "--layers",
        "0-2",
        "--top",
        "20",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(value["prob"].as_f64().unwrap() > 0.0);
    assert!(value["seconds"].as_f64().unwrap() >= 0.0);
    let top = value["top"].as_array().unwrap();
    assert_eq!(top.len(), 20);
    assert!(top[0]["layer"].is_u64() && top[0]["neuron"].is_u64() && top[0]["score"].is_f64());
    assert!(top
        .windows(2)
        .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()));
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY"));
    assert!(String::from_utf8_lossy(&bytes[..128]).contains("(3, 96)"));
}

/// Two prompts and their answers, as `kn attribute` arguments.
const TWO_PROMPTS: [&str; 8] = [
    "--prompt",
    "The capital of France is",
    "--prompt",
    "Bill Gates works for",
    "--answer",
    "Paris",
    "--answer",
    "Microsoft",
];

#[test]
fn several_prompts_are_attributed_as_one_batch_one_json_line_each() {
    let llama = fixture("tiny-llama");
    let model = llama.as_str();
    let base = [
        "attribute",
        "--model",
        model,
        "--steps",
        "6",
        "--top",
        "5",
        "--json",
    ];
    let batch = kn(&[&base[..], &TWO_PROMPTS[..]].concat());
    assert!(
        batch.status.success(),
        "{}",
        String::from_utf8_lossy(&batch.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&batch.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (line, (prompt, answer)) in lines.iter().zip([
        ("The capital of France is", "Paris"),
        ("Bill Gates works for", "Microsoft"),
    ]) {
        assert_eq!(line["prompt"], prompt);
        assert_eq!(line["answer"], answer);
        assert_eq!(line["batch"]["prompts"], 2);
        let alone = json(&kn(
            &[&base[..], &["--prompt", prompt, "--answer", answer]].concat()
        ));
        assert!(alone.get("batch").is_none());
        let (a, b) = (&alone["top"][0], &line["top"][0]);
        assert_eq!((&a["layer"], &a["neuron"]), (&b["layer"], &b["neuron"]));
        assert!(
            (a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs()
                <= 1e-5 * a["score"].as_f64().unwrap().abs()
        );
    }
}

#[test]
fn separately_attributes_each_prompt_alone_with_its_own_time() {
    let llama = fixture("tiny-llama");
    let base = [
        "attribute",
        "--model",
        llama.as_str(),
        "--steps",
        "6",
        "--top",
        "5",
        "--json",
    ];
    let args = [&base[..], &TWO_PROMPTS[..]].concat();
    let separately = kn(&[&args[..], &["--separately"][..]].concat());
    assert!(
        separately.status.success(),
        "{}",
        String::from_utf8_lossy(&separately.stderr)
    );
    let parse = |output: &Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let lines = parse(&separately);
    let batched = parse(&kn(&args));
    assert_eq!(lines.len(), 2);
    for (line, batch_line) in lines.iter().zip(&batched) {
        assert_eq!(line["prompt"], batch_line["prompt"]);
        // Each prompt's own time, no batch timing.
        assert!(line.get("batch").is_none());
        assert!(line["seconds"].as_f64().unwrap() > 0.0);
        assert!(batch_line.get("batch").is_some());
        for (a, b) in line["top"]
            .as_array()
            .unwrap()
            .iter()
            .zip(batch_line["top"].as_array().unwrap())
        {
            assert_eq!((&a["layer"], &a["neuron"]), (&b["layer"], &b["neuron"]));
        }
    }
    assert_ne!(lines[0]["top"], lines[1]["top"]);
}

#[test]
fn bad_input_exits_with_code_2_and_a_message() {
    let llama = fixture("tiny-llama");
    let model = llama.as_str();
    let bert_dir = fixture("tiny-bert");
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "predict",
            "--model",
            "/nonexistent/model.gguf",
            "--prompt",
            "x",
        ],
        vec!["predict", "--model", model, "--prompt", ""],
        vec![
            "predict", "--model", model, "--prompt", "x", "--device", "tpu",
        ],
        vec![
            "predict", "--model", model, "--prompt", "x", "--dtype", "f64",
        ],
        vec![
            "predict",
            "--model",
            bert_dir.as_str(),
            "--prompt",
            "x [MASK]",
            "--dtype",
            "bf16",
        ],
        vec![
            "attribute",
            "--model",
            model,
            "--prompt",
            "The capital of France is",
            "--answer",
            "Paris",
            "--steps",
            "0",
        ],
        vec![
            "attribute",
            "--model",
            model,
            "--prompt",
            "The capital of France is",
            "--answer",
            "Paris",
            "--layers",
            "0-7",
        ],
        vec![
            "attribute",
            "--model",
            model,
            "--prompt",
            "The capital of France is",
            "--answer",
            "Paris",
            "--rule",
            "simpson",
        ],
        vec![
            "attribute",
            "--model",
            model,
            "--prompt",
            "The capital of France is",
            "--answer",
            "Paris",
            "--out",
            "x.csv",
        ],
        vec![
            "attribute",
            "--model",
            model,
            "--prompt",
            "",
            "--answer",
            "Paris",
        ],
        // Several prompts: one answer for all or one each; --out takes one prompt.
        vec![
            "attribute",
            "--model",
            model,
            "--prompt",
            "a",
            "--prompt",
            "b",
            "--prompt",
            "c",
            "--answer",
            "x",
            "--answer",
            "y",
        ],
        vec![
            "attribute",
            "--model",
            model,
            "--prompt",
            "a",
            "--prompt",
            "b",
            "--answer",
            "x",
            "--out",
            "x.npy",
        ],
    ];
    for args in cases {
        let output = kn(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("error"),
            "{args:?}"
        );
        assert!(
            output.stdout.is_empty(),
            "{args:?}: results on stdout despite the error"
        );
    }
    let bert = fixture("tiny-bert");
    let output = kn(&[
        "attribute",
        "--model",
        bert.as_str(),
        "--prompt",
        "The capital of France is [MASK] .",
        "--answer",
        "iPhone",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not in the vocabulary"));
}

#[test]
fn unknown_subcommands_and_options_are_usage_errors() {
    assert_eq!(kn(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(kn(&["predict", "--no-such-option"]).status.code(), Some(2));
    let help = kn(&["attribute", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--steps",
        "--layers",
        "--top",
        "--out",
        "--model",
        "--device",
        "--threads",
        "[default: 20]",
    ] {
        assert!(text.contains(option), "attribute --help lacks {option}");
    }
}
