//! Attribution benchmarks: prompts per second of full integrated-gradients attribution (all
//! layers, m = 20, the paper's settings) and the time of one clean forward pass, for
//! - `smollm2`: SmolLM2-135M-Instruct (`load_model("default")`; skipped when not fetched),
//! - `bert-base`: a BERT-base-sized model with random weights (written on first use by
//!   `benches/support/random_bert.rs` into the model cache and reused),
//! - `gemma-3-270m`: Gemma-3-270M (`load_model("gemma-3-270m")`; skipped when not fetched),
//! - `tiny-bert`, `tiny-llama`: the test fixtures,
//! - `family-<name>`: the tiny models of every decoder architecture (`fixtures/family/`).
//!
//! ```sh
//! cargo bench --bench attribution                      # everything, a few minutes
//! cargo bench --bench attribution -- 'attribution/smollm2'
//! KN_BENCH_MODELS=tiny-bert,tiny-llama cargo bench --bench attribution   # load only these
//! KN_BENCH_THREADS=1 cargo bench --bench attribution   # libtorch threads (default 2)
//! ```
//!
//! Throughput is reported in elements per second, an element being one prompt (attribution)
//! or one forward pass. Each iteration attributes the next prompt of the model's list in
//! `benches/support/prompts.tsv` (cycling), so the figure is the mean over those prompts.
//! The large models use flat sampling with the minimum of 10 samples so that the whole suite
//! stays within a few minutes.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use kn_attribution::{integrated_gradients, AttributionConfig};
use kn_model::tch::{self, Device};
use kn_model::{load_model, AnswerPolicy, EncodedPrompt, KnowledgeModel};
use std::path::PathBuf;
use std::time::Duration;

#[path = "support/random_bert.rs"]
mod random_bert;

/// One model with its encoded prompts and how long to measure it.
struct Case {
    name: &'static str,
    model: Box<dyn KnowledgeModel>,
    prompts: Vec<EncodedPrompt>,
    /// Measurement time of the attribution benchmark (flat sampling, 10 samples).
    attribution_time: Duration,
    heavy: bool,
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
        .display()
        .to_string()
}

fn wanted(name: &str) -> bool {
    match std::env::var("KN_BENCH_MODELS") {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|m| m.trim() == name),
        _ => true,
    }
}

fn load_case(
    name: &'static str,
    spec: &str,
    attribution_time: Duration,
    heavy: bool,
) -> Option<Case> {
    if !wanted(name) {
        return None;
    }
    let model = match load_model(spec, Device::Cpu) {
        Ok(model) => model,
        Err(e) => {
            eprintln!("bench {name}: skipped, the model does not load: {e}");
            return None;
        }
    };
    let prompts: Vec<EncodedPrompt> = random_bert::prompts(name)
        .into_iter()
        .map(|(prompt, answer)| {
            model
                .encode(prompt, Some(answer), AnswerPolicy::FirstToken)
                .unwrap_or_else(|e| {
                    panic!("bench {name}: cannot encode {prompt:?} / {answer:?}: {e}")
                })
        })
        .collect();
    assert!(
        !prompts.is_empty(),
        "no prompts for {name} in benches/support/prompts.tsv"
    );
    let lengths: Vec<usize> = prompts.iter().map(|p| p.token_ids.len()).collect();
    let info = model.info();
    eprintln!(
        "bench {name}: {} layers x {} neurons, vocabulary {}; {} prompts of {lengths:?} tokens",
        info.num_layers,
        info.ffn_width,
        info.vocab_size,
        prompts.len()
    );
    Some(Case {
        name,
        model,
        prompts,
        attribution_time,
        heavy,
    })
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(load_case(
        "smollm2",
        "default",
        Duration::from_secs(20),
        true,
    ));
    if wanted("bert-base") {
        let dir = random_bert::default_dir();
        let started = std::time::Instant::now();
        match random_bert::ensure(&dir) {
            Ok(true) => eprintln!(
                "bench bert-base: wrote {} in {:.1} s",
                dir.display(),
                started.elapsed().as_secs_f64()
            ),
            Ok(false) => {}
            Err(e) => eprintln!("bench bert-base: cannot write the random model: {e}"),
        }
        cases.extend(load_case(
            "bert-base",
            &dir.display().to_string(),
            Duration::from_secs(30),
            true,
        ));
    }
    cases.extend(load_case(
        "tiny-bert",
        &fixture("tiny-bert"),
        Duration::from_secs(3),
        false,
    ));
    cases.extend(load_case(
        "tiny-llama",
        &fixture("tiny-llama"),
        Duration::from_secs(3),
        false,
    ));
    cases.extend(load_case(
        "gemma-3-270m",
        "gemma-3-270m",
        Duration::from_secs(30),
        true,
    ));
    for (name, dir) in [
        ("family-llama3", "family/tiny-llama3"),
        ("family-mistral", "family/tiny-mistral"),
        ("family-qwen2", "family/tiny-qwen2"),
        ("family-qwen3", "family/tiny-qwen3"),
        ("family-gemma3", "family/tiny-gemma3"),
        ("family-phi3", "family/tiny-phi3"),
        ("family-gpt2", "family/tiny-gpt2"),
        ("family-gpt-neo", "family/tiny-gpt-neo"),
        ("family-gpt-neox", "family/tiny-gpt-neox"),
    ] {
        cases.extend(load_case(
            name,
            &fixture(dir),
            Duration::from_secs(2),
            false,
        ));
    }
    cases
}

fn threads() -> i32 {
    std::env::var("KN_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(2)
}

fn benches(c: &mut Criterion) {
    tch::set_num_threads(threads());
    // As the kn binary does (kn_model::retain_freed_memory).
    kn_model::retain_freed_memory();
    eprintln!("bench: libtorch {} threads", tch::get_num_threads());
    let cases = cases();
    // The paper's settings: all layers, m = 20, left Riemann sum, probability target.
    let config = AttributionConfig::default();

    let mut group = c.benchmark_group("attribution");
    group.throughput(Throughput::Elements(1));
    for case in &cases {
        if case.heavy {
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(10)
                .warm_up_time(Duration::from_millis(500));
        } else {
            group
                .sampling_mode(SamplingMode::Auto)
                .sample_size(20)
                .warm_up_time(Duration::from_secs(1));
        }
        group.measurement_time(case.attribution_time);
        group.bench_function(case.name, |b| {
            let mut next = 0;
            b.iter(|| {
                let prompt = &case.prompts[next % case.prompts.len()];
                next += 1;
                integrated_gradients(case.model.as_ref(), prompt, &config).expect("attribution")
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("forward");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for case in &cases {
        let prompt = std::slice::from_ref(&case.prompts[0]);
        group.bench_function(format!("{}/clean", case.name), |b| {
            b.iter(|| case.model.forward(prompt, &[], false).expect("forward"))
        });
        group.bench_function(format!("{}/clean_pass_with_cache", case.name), |b| {
            b.iter(|| case.model.clean_pass(&prompt[0]).expect("clean pass"))
        });
        // As a lone prompt's clean pass runs in attribution: one libtorch thread (few-row
        // products computed by kn_kernels::matmul), alone and with the idle core's helper.
        kn_model::set_threads(1);
        group.bench_function(format!("{}/clean_pass_one_thread", case.name), |b| {
            b.iter(|| case.model.clean_pass(&prompt[0]).expect("clean pass"))
        });
        kn_kernels::matmul::with_product_helper(|| {
            group.bench_function(format!("{}/clean_pass_one_thread_helped", case.name), |b| {
                b.iter(|| case.model.clean_pass(&prompt[0]).expect("clean pass"))
            })
        });
        kn_model::set_threads(threads() as usize);
    }
    group.finish();
}

criterion_group! {
    name = attribution;
    config = Criterion::default().configure_from_args();
    targets = benches
}
criterion_main!(attribution);
