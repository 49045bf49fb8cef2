//! Gradient x activation, attribution patching and the log-probability increase against the
//! plain Python reference (`scripts/reference/atp_reference.py`: hooks, one forward and
//! backward per layer, the answer's log-probability; the increase read through the final norm
//! and the head as Yu & Ananiadou's code does): every score within 1e-4 of the case's largest,
//! same token ids; the increase refused where it is not defined.

use kn_attribution::{attribution_patching, gradient_x_activation, logprob_increase, Target};
use kn_model::tch::Device;
use kn_model::{load_model, AnswerPolicy};
use ndarray::Array2;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn ids(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

/// The largest difference between `got` and the golden rows, relative to `largest`.
fn worst(got: &Array2<f32>, want: &Value, largest: f64) -> f64 {
    let mut worst = 0f64;
    for (row, expected) in want.as_array().unwrap().iter().enumerate() {
        for (neuron, value) in expected.as_array().unwrap().iter().enumerate() {
            let difference = f64::from(got[[row, neuron]]) - value.as_f64().unwrap();
            worst = worst.max(difference.abs());
        }
    }
    worst / largest
}

#[test]
fn gradient_methods_match_the_python_reference() {
    let path = repo("fixtures/golden/atp_tiny.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = format!("{} {}", case["model"], case["prompt"]);
        let model = load_model(
            repo(case["model"].as_str().unwrap()).to_str().unwrap(),
            Device::Cpu,
        )
        .unwrap();
        let clean = model
            .encode(
                case["prompt"].as_str().unwrap(),
                Some(case["answer"].as_str().unwrap()),
                AnswerPolicy::FirstToken,
            )
            .unwrap();
        let counterfactual = model
            .encode(
                case["counterfactual"].as_str().unwrap(),
                None,
                AnswerPolicy::FirstToken,
            )
            .unwrap();
        assert_eq!(clean.token_ids, ids(&case["input_ids"]), "{name}: ids");
        assert_eq!(
            counterfactual.token_ids,
            ids(&case["counterfactual_ids"]),
            "{name}: counterfactual ids"
        );
        assert_eq!(clean.targets[0].1, case["answer_id"].as_i64().unwrap());
        let gxa =
            gradient_x_activation(model.as_ref(), &clean, None, Target::LogProbability).unwrap();
        let error = worst(
            &gxa,
            &case["grad_x_act"],
            case["max_abs_grad_x_act"].as_f64().unwrap(),
        );
        assert!(
            error <= 1e-4,
            "{name}: grad x act off by {error:e} of the largest"
        );
        let atp = attribution_patching(model.as_ref(), &clean, &counterfactual, None).unwrap();
        let error = worst(&atp, &case["atp"], case["max_abs_atp"].as_f64().unwrap());
        assert!(error <= 1e-4, "{name}: AtP off by {error:e} of the largest");
        let increase = logprob_increase(model.as_ref(), &clean, None);
        match case["logprob_increase"].is_null() {
            true => {
                let error = increase.err().expect("refused");
                assert!(
                    error.to_string().contains("logprob-increase"),
                    "{name}: {error}"
                );
            }
            false => {
                let largest = case["max_abs_logprob_increase"].as_f64().unwrap();
                let error = worst(&increase.unwrap(), &case["logprob_increase"], largest);
                assert!(error <= 1e-4, "{name}: logprob-increase off by {error:e}");
            }
        }
        // The counterfactual matters: against the clean prompt itself every score is zero.
        let itself = attribution_patching(model.as_ref(), &clean, &clean, None).unwrap();
        assert!(itself.iter().all(|&s| s == 0.0), "{name}");
    }
}
