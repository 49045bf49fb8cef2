//! Where the time of one integrated-gradients attribution goes (docs/performance.md).
//!
//! ```sh
//! cargo run --release --example profile_bench -- --model default --prompts smollm2 [--threads 2] [--reps 2]
//! cargo run --release --example profile_bench -- --model bert-base --prompts bert-base
//! ```
//!
//! `--model bert-base` is the random BERT-base of the benchmarks (written if missing, see
//! `benches/support/random_bert.rs`); `--prompts` names a model's rows of
//! `benches/support/prompts.tsv`.
//!
//! For each prompt it replays what `kn_attribution::integrated_gradients` does with the
//! default settings (all layers, m = 20, left rule, probability target, the same
//! `DEFAULT_ROWS_PER_PASS` batching) through the public `KnowledgeModel` API, timing each
//! part: the clean pass, the batched forward passes up to the output head
//! (`forward_features_from_layers`), the head in closed form (`head_values_and_gradient`:
//! vocabulary projection, softmax, target and its gradient) and the backward passes. Then, on the same batches:
//! - the forward alone without autograd (`no_grad`), i.e. what keeping the graph costs;
//! - "head only": every row started at the last layer (one down projection, the final norm,
//!   the vocabulary projection, the target, and their backward), i.e. the output-side cost
//!   that every row pays once, whatever its layer;
//!
//! and the real `integrated_gradients` call, to check that the replay matches it. Times are
//! the median over `--reps` runs of each prompt, summed over the prompts, per prompt.

use kn_attribution::{
    head_values_and_gradient, integrated_gradients, AttributionConfig, Target,
    DEFAULT_ROWS_PER_PASS,
};
use kn_model::tch::{self, Device, Kind, Tensor};
use kn_model::{load_model, AnswerPolicy, CleanPass, EncodedPrompt, KnowledgeModel};
use std::time::Instant;

#[path = "../benches/support/random_bert.rs"]
mod random_bert;

const STEPS: usize = 20;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The output head in closed form, as `integrated_gradients` takes it: the probability target
/// of every row and its gradient with respect to the head's input features.
fn head(model: &dyn KnowledgeModel, features: &Tensor, prompt: &EncodedPrompt) -> (Tensor, Tensor) {
    let (weight, bias) = model.output_projection();
    head_values_and_gradient(
        features,
        &weight,
        bias.as_ref(),
        prompt,
        Target::Probability,
    )
}

#[derive(Default, Clone, Copy)]
struct Parts {
    clean: f64,
    forward: f64,
    target: f64,
    backward: f64,
    forward_no_grad: f64,
    head_forward: f64,
    head_backward: f64,
    library: f64,
    rows: usize,
    passes: usize,
}

fn seconds<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed().as_secs_f64())
}

/// The batches `integrated_gradients` makes: (alphas of the chunk) for all layers at once.
fn chunks(num_layers: usize) -> Vec<Vec<f64>> {
    let alphas: Vec<f64> = (0..STEPS).map(|k| k as f64 / STEPS as f64).collect();
    let layers_per_pass = num_layers.min(DEFAULT_ROWS_PER_PASS).max(1);
    assert_eq!(
        layers_per_pass, num_layers,
        "this replay assumes all layers fit in one pass"
    );
    let points_per_pass = (DEFAULT_ROWS_PER_PASS / layers_per_pass).clamp(1, STEPS);
    alphas
        .chunks(points_per_pass)
        .map(<[f64]>::to_vec)
        .collect()
}

fn starts_for(
    clean: &CleanPass,
    layers: &[usize],
    alphas: &[f64],
    grad: bool,
) -> Vec<(usize, Tensor)> {
    let alphas: Vec<f32> = alphas.iter().map(|&a| a as f32).collect();
    let alphas = Tensor::from_slice(&alphas).unsqueeze(1);
    layers
        .iter()
        .map(|&l| {
            let scaled = (&alphas * clean.activations.get(l as i64).unsqueeze(0)).detach();
            (
                l,
                if grad {
                    scaled.set_requires_grad(true)
                } else {
                    scaled
                },
            )
        })
        .collect()
}

fn profile_prompt(model: &dyn KnowledgeModel, prompt: &EncodedPrompt) -> Parts {
    let num_layers = model.info().num_layers;
    let layers: Vec<usize> = (0..num_layers).collect();
    let mut parts = Parts::default();
    let (clean, t) = seconds(|| model.clean_pass(prompt).expect("clean pass"));
    parts.clean = t;
    for alphas in chunks(num_layers) {
        // The attribution pass, as integrated_gradients runs it.
        let starts = starts_for(&clean, &layers, &alphas, true);
        let (features, t) = seconds(|| {
            model
                .forward_features_from_layers(&clean, &starts)
                .expect("forward")
        });
        parts.forward += t;
        let ((_, gradient), t) = seconds(|| head(model, &features, prompt));
        parts.target += t;
        let inputs: Vec<&Tensor> = starts.iter().map(|(_, t)| t).collect();
        let (gradients, t) = seconds(|| {
            Tensor::run_backward(
                &[(&features * &gradient).sum(Kind::Float)],
                &inputs,
                false,
                false,
            )
        });
        parts.backward += t;
        assert_eq!(gradients.len(), num_layers);
        parts.rows += alphas.len() * num_layers;
        parts.passes += 1;
        drop((features, gradient, gradients, starts));

        // The same forward without autograd.
        let starts = starts_for(&clean, &layers, &alphas, false);
        let (_, t) = seconds(|| {
            tch::no_grad(|| {
                model
                    .forward_features_from_layers(&clean, &starts)
                    .expect("forward")
            })
        });
        parts.forward_no_grad += t;

        // Head only: the same number of rows, all started at the last layer.
        let last = num_layers - 1;
        let rows = (alphas.len() * num_layers) as i64;
        let act = clean
            .activations
            .get(last as i64)
            .unsqueeze(0)
            .repeat([rows, 1])
            .detach()
            .set_requires_grad(true);
        let ((features, gradient), t) = seconds(|| {
            let features = model
                .forward_features_from_layers(&clean, &[(last, act.shallow_clone())])
                .expect("forward");
            let (_, gradient) = head(model, &features, prompt);
            (features, gradient)
        });
        parts.head_forward += t;
        let (_, t) = seconds(|| {
            Tensor::run_backward(
                &[(&features * &gradient).sum(Kind::Float)],
                &[&act],
                false,
                false,
            )
        });
        parts.head_backward += t;
    }
    let (_, t) = seconds(|| {
        integrated_gradients(model, prompt, &AttributionConfig::default()).expect("attribution")
    });
    parts.library = t;
    parts
}

fn median_parts(mut runs: Vec<Parts>) -> Parts {
    // Median of each field on its own.
    let n = runs.len();
    let pick = |runs: &mut Vec<Parts>, f: fn(&Parts) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[n / 2]
    };
    Parts {
        clean: pick(&mut runs, |p| p.clean),
        forward: pick(&mut runs, |p| p.forward),
        target: pick(&mut runs, |p| p.target),
        backward: pick(&mut runs, |p| p.backward),
        forward_no_grad: pick(&mut runs, |p| p.forward_no_grad),
        head_forward: pick(&mut runs, |p| p.head_forward),
        head_backward: pick(&mut runs, |p| p.head_backward),
        library: pick(&mut runs, |p| p.library),
        rows: runs[0].rows,
        passes: runs[0].passes,
    }
}

fn main() {
    let threads: i32 = arg("--threads").and_then(|t| t.parse().ok()).unwrap_or(2);
    let reps: usize = arg("--reps")
        .and_then(|t| t.parse().ok())
        .unwrap_or(2)
        .max(1);
    let spec = arg("--model").unwrap_or_else(|| "default".into());
    let prompt_set = arg("--prompts").unwrap_or_else(|| {
        if spec == "bert-base" {
            "bert-base".into()
        } else {
            "smollm2".into()
        }
    });
    tch::set_num_threads(threads);
    // As the kn binary does (kn_model::retain_freed_memory).
    kn_model::retain_freed_memory();
    let spec = if spec == "bert-base" {
        let dir = random_bert::default_dir();
        random_bert::ensure(&dir).expect("random BERT-base");
        dir.display().to_string()
    } else {
        spec
    };
    let model = load_model(&spec, Device::Cpu).expect("model");
    let info = model.info().clone();
    println!(
        "profile_bench: {} ({} layers, FFN {}, hidden {}, vocabulary {}), {} threads, m = {STEPS}, median of {reps} runs per prompt",
        spec, info.num_layers, info.ffn_width, info.hidden_size, info.vocab_size, tch::get_num_threads()
    );
    let prompts: Vec<EncodedPrompt> = random_bert::prompts(&prompt_set)
        .into_iter()
        .map(|(p, a)| {
            model
                .encode(p, Some(a), AnswerPolicy::FirstToken)
                .expect("encode")
        })
        .collect();
    // Warm-up (first-call allocations, oneDNN/MKL initialisation).
    let _ = profile_prompt(model.as_ref(), &prompts[0]);
    let mut total = Parts::default();
    println!(
        "{:<44} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "prompt",
        "tokens",
        "clean",
        "forward",
        "head",
        "backward",
        "fwd nograd",
        "head fwd",
        "head bwd",
        "library"
    );
    for prompt in &prompts {
        let runs: Vec<Parts> = (0..reps)
            .map(|_| profile_prompt(model.as_ref(), prompt))
            .collect();
        let p = median_parts(runs);
        println!(
            "{:<44} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            prompt.text,
            prompt.token_ids.len(),
            p.clean,
            p.forward,
            p.target,
            p.backward,
            p.forward_no_grad,
            p.head_forward,
            p.head_backward,
            p.library
        );
        total.clean += p.clean;
        total.forward += p.forward;
        total.target += p.target;
        total.backward += p.backward;
        total.forward_no_grad += p.forward_no_grad;
        total.head_forward += p.head_forward;
        total.head_backward += p.head_backward;
        total.library += p.library;
        total.rows = p.rows;
        total.passes = p.passes;
    }
    let n = prompts.len() as f64;
    let replay = (total.clean + total.forward + total.target + total.backward) / n;
    println!(
        "\nmean seconds per prompt ({} rows in {} passes per prompt):",
        total.rows, total.passes
    );
    println!(
        "  clean pass                         {:>8.3}",
        total.clean / n
    );
    println!(
        "  forward to the head (with graph)   {:>8.3}",
        total.forward / n
    );
    println!(
        "  head in closed form (value + grad) {:>8.3}",
        total.target / n
    );
    println!(
        "  backward                           {:>8.3}",
        total.backward / n
    );
    println!(
        "  = replay total                     {:>8.3}   (integrated_gradients itself: {:.3})",
        replay,
        total.library / n
    );
    println!(
        "  forward to the head without graph  {:>8.3}",
        total.forward_no_grad / n
    );
    println!(
        "  head only (all rows at the last layer): forward+target {:.3}, backward {:.3}, total {:.3} = {:.0}% of the replay",
        total.head_forward / n,
        total.head_backward / n,
        (total.head_forward + total.head_backward) / n,
        100.0 * (total.head_forward + total.head_backward) / n / replay
    );
}
