//! How far half-precision attribution is from float32 (`--dtype`, docs/performance.md).
//!
//! ```sh
//! cargo run --release --example dtype_agreement -- --model default --prompts smollm2 \
//!     [--dtypes bf16,f16] [--out docs/bench/dtype-agreement-smollm2.json]
//! cargo run --release --example dtype_agreement -- --model gemma-3-270m --prompts gemma-3-270m
//! ```
//!
//! Loads the model in float32 and in each of `--dtypes`, attributes every prompt of
//! `benches/support/prompts.tsv`'s `--prompts` rows with the default settings (all layers,
//! m = 20, probability target) and reports, per dtype and prompt, against float32: the overlap
//! of the top-20 neurons, the largest score error relative to the largest float32 score, the
//! answer's clean probability, and seconds per attribution (after one warm-up).

use kn_attribution::{integrated_gradients, Attribution, AttributionConfig};
use kn_model::tch;
use kn_model::{load_model_as, AnswerPolicy, Dtype, EncodedPrompt};
use serde_json::json;
use std::collections::HashSet;
use std::time::Instant;

#[path = "../benches/support/random_bert.rs"]
mod random_bert;

mod common;
use common::option;

const TOP: usize = 20;

/// Attributions of every prompt with the model loaded in `dtype`, and seconds per prompt.
fn attribute_all(
    spec: &str,
    dtype: Dtype,
    prompts: &[(&str, &str)],
) -> (Vec<Attribution>, Vec<f64>) {
    let model = load_model_as(spec, tch::Device::Cpu, dtype).expect("model");
    let encoded: Vec<EncodedPrompt> = prompts
        .iter()
        .map(|(p, a)| {
            model
                .encode(p, Some(a), AnswerPolicy::FirstToken)
                .expect("encode")
        })
        .collect();
    let config = AttributionConfig::default();
    // Warm-up (first-call allocations, oneDNN initialisation).
    integrated_gradients(model.as_ref(), &encoded[0], &config).expect("attribution");
    encoded
        .iter()
        .map(|prompt| {
            let started = Instant::now();
            let attribution =
                integrated_gradients(model.as_ref(), prompt, &config).expect("attribution");
            (attribution, started.elapsed().as_secs_f64())
        })
        .unzip()
}

/// Overlap of the two attributions' top-[`TOP`] neurons (0 to 1) and the largest score error
/// relative to the reference's largest absolute score.
fn agreement(reference: &Attribution, other: &Attribution) -> (f64, f64) {
    let top = |a: &Attribution| -> HashSet<(usize, usize)> {
        a.top(TOP).iter().map(|n| (n.layer, n.neuron)).collect()
    };
    let overlap = top(reference).intersection(&top(other)).count() as f64 / TOP as f64;
    let largest = f64::from(reference.max_abs()).max(f64::MIN_POSITIVE);
    let error = reference
        .scores
        .iter()
        .zip(other.scores.iter())
        .fold(0f64, |m, (a, b)| m.max(f64::from((a - b).abs())));
    (overlap, error / largest)
}

fn main() {
    let spec = option("model", "default");
    let prompt_set = option("prompts", "smollm2");
    let dtypes: Vec<Dtype> = option("dtypes", "bf16,f16")
        .split(',')
        .map(|d| d.parse().expect("--dtypes: f32, bf16, f16"))
        .collect();
    tch::set_num_threads(2);
    kn_model::retain_freed_memory();
    let prompts = random_bert::prompts(&prompt_set);
    assert!(!prompts.is_empty(), "no prompts named {prompt_set}");
    let (reference, reference_seconds) = attribute_all(&spec, Dtype::F32, &prompts);
    let mut rows = Vec::new();
    println!(
        "{:<5} {:<44} {:>8} {:>10} {:>9} {:>9} {:>8} {:>8}",
        "dtype", "prompt", "top-20", "max rel", "p f32", "p dtype", "s f32", "s dtype"
    );
    for dtype in dtypes {
        let (attributions, seconds) = attribute_all(&spec, dtype, &prompts);
        for (i, (prompt, _)) in prompts.iter().enumerate() {
            let (overlap, error) = agreement(&reference[i], &attributions[i]);
            println!(
                "{:<5} {:<44} {:>8.2} {:>10.2e} {:>9.4} {:>9.4} {:>8.2} {:>8.2}",
                dtype.name(),
                prompt,
                overlap,
                error,
                reference[i].clean_prob,
                attributions[i].clean_prob,
                reference_seconds[i],
                seconds[i]
            );
            rows.push(json!({
                "dtype": dtype.name(),
                "prompt": prompt,
                "top20_overlap": overlap,
                "max_error_relative_to_largest": error,
                "clean_prob_f32": reference[i].clean_prob,
                "clean_prob": attributions[i].clean_prob,
                "seconds_f32": reference_seconds[i],
                "seconds": seconds[i],
            }));
        }
    }
    let out = option("out", "");
    if !out.is_empty() {
        let report = json!({
            "model": spec,
            "prompts": prompt_set,
            "steps": AttributionConfig::default().steps,
            "threads": tch::get_num_threads(),
            "rows": rows,
        });
        std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json"))
            .expect("write --out");
        println!("wrote {out}");
    }
}
