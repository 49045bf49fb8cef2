//! Invariants of integrated gradients on the tiny fixtures (proptest): results do not depend
//! on batching (of integration points, of several prompts in one pass, or of passes run
//! concurrently), the completeness gap shrinks as m grows, a zero activation gets exactly zero
//! attribution, and the cheap baselines agree with their definitions.

use kn_attribution::{
    activation_scores, gradient_x_activation, integrated_gradients, integrated_gradients_batch,
    integrated_gradients_from_clean_pass, AttributionConfig, AttributionError, IntegrationRule,
    Target,
};
use kn_model::tch::Device;
use kn_model::{load_model, AnswerPolicy, EncodedPrompt, KnowledgeModel};
use proptest::prelude::*;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

struct Fixture {
    model: Box<dyn KnowledgeModel>,
    prompts: Vec<EncodedPrompt>,
}

fn fixture(name: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name);
    let model = load_model(path.to_str().unwrap(), Device::Cpu).unwrap();
    let facts: &[(&str, &str)] = if name == "tiny-bert" {
        &[
            ("The capital of France is [MASK] .", "Paris"),
            ("[MASK] is the capital of Germany.", "Berlin"),
            ("Miles Davis plays [MASK].", "jazz"),
        ]
    } else {
        &[
            ("The capital of France is", "Paris"),
            ("Bill Gates works for", "Microsoft"),
            ("Rome is the capital of", "Italy"),
        ]
    };
    let prompts = facts
        .iter()
        .map(|(p, a)| model.encode(p, Some(a), AnswerPolicy::FirstToken).unwrap())
        .collect();
    Fixture { model, prompts }
}

/// The two tiny models, loaded once (tensors are Send but not Sync, hence the lock).
fn models() -> MutexGuard<'static, [Fixture; 2]> {
    static MODELS: OnceLock<Mutex<[Fixture; 2]>> = OnceLock::new();
    let models = MODELS.get_or_init(|| Mutex::new([fixture("tiny-bert"), fixture("tiny-llama")]));
    models
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `workers` concurrent passes where the model can share itself between threads (tiny Llama),
/// else one (tiny BERT, which refuses more: see `concurrent_passes_need_a_shareable_model`).
fn concurrent(fixture: &Fixture, workers: usize) -> usize {
    if fixture.model.as_sync().is_some() {
        workers
    } else {
        1
    }
}

fn max_abs_difference(a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn batching_does_not_change_results(m in 0usize..2, p in 0usize..3, steps in 1usize..12, batch in 1usize..40, r in 0usize..5, workers in 1usize..4) {
        let models = models();
        let fixture = &models[m];
        let rule = IntegrationRule::ALL[r];
        prop_assume!(!(rule == IntegrationRule::Trapezoid && steps < 2));
        let all_at_once = AttributionConfig { steps, rule, batch_size: 0, concurrent_passes: 1, ..AttributionConfig::default() };
        let batched = AttributionConfig { batch_size: batch, concurrent_passes: concurrent(fixture, workers), ..all_at_once.clone() };
        let a = integrated_gradients(fixture.model.as_ref(), &fixture.prompts[p], &all_at_once).unwrap();
        let b = integrated_gradients(fixture.model.as_ref(), &fixture.prompts[p], &batched).unwrap();
        prop_assert!(max_abs_difference(&a.scores, &b.scores) <= 1e-5 * a.max_abs().max(1e-6));
    }

    #[test]
    fn prompts_batched_together_equal_prompts_alone(m in 0usize..2, steps in 1usize..8, batch in 1usize..200, log in proptest::bool::ANY, workers in 1usize..4) {
        let models = models();
        let fixture = &models[m];
        let target = if log { Target::LogProbability } else { Target::Probability };
        let alone = AttributionConfig { steps, target, concurrent_passes: 1, ..AttributionConfig::default() };
        let together = AttributionConfig { batch_size: batch, concurrent_passes: concurrent(fixture, workers), ..alone.clone() };
        let batched = integrated_gradients_batch(fixture.model.as_ref(), &fixture.prompts, &together).unwrap();
        prop_assert_eq!(batched.len(), fixture.prompts.len());
        for (prompt, b) in fixture.prompts.iter().zip(&batched) {
            let a = integrated_gradients(fixture.model.as_ref(), prompt, &alone).unwrap();
            prop_assert!(max_abs_difference(&a.scores, &b.scores) <= 1e-5 * a.max_abs().max(1e-6), "{:?}", prompt.text);
            prop_assert!((a.clean_prob - b.clean_prob).abs() < 1e-7);
            // The target with a layer zeroed can be a small probability (1e-4): its relative
            // error is the absolute error of its log, which float32 logits of size ~10 summed in
            // another blocking move by up to ~1e-5 (seen: 1.05e-5); hence 1e-4 relative.
            for (x, y) in a.completeness.iter().zip(&b.completeness) {
                prop_assert!((x.target_at_zero - y.target_at_zero).abs() <= 1e-4 * x.target_at_zero.abs().max(1e-6), "{} vs {}", x.target_at_zero, y.target_at_zero);
            }
        }
    }

    #[test]
    fn zero_activations_get_zero_attribution(m in 0usize..2, p in 0usize..3, seed in 0u64..1000) {
        let models = models();
        let fixture = &models[m];
        let clean = fixture.model.clean_pass(&fixture.prompts[p]).unwrap();
        let width = fixture.model.info().ffn_width as i64;
        let zeroed: Vec<i64> = (0..5).map(|k| ((seed * 7919 + k * 104729) % width as u64) as i64).collect();
        let layer = (seed % fixture.model.info().num_layers as u64) as i64;
        let _ = clean.activations.get(layer).index_fill_(0, &kn_model::tch::Tensor::from_slice(&zeroed), 0.0);
        let config = AttributionConfig { steps: 6, ..AttributionConfig::default() };
        let attribution = integrated_gradients_from_clean_pass(fixture.model.as_ref(), &clean, &config).unwrap();
        for neuron in zeroed {
            prop_assert_eq!(attribution.scores[[layer as usize, neuron as usize]], 0.0);
        }
    }
}

#[test]
fn completeness_gap_shrinks_as_m_grows() {
    for fixture in models().iter() {
        for prompt in &fixture.prompts {
            let gap = |steps: usize| {
                let config = AttributionConfig {
                    steps,
                    rule: IntegrationRule::Left,
                    ..AttributionConfig::default()
                };
                let attribution =
                    integrated_gradients(fixture.model.as_ref(), prompt, &config).unwrap();
                attribution
                    .completeness
                    .iter()
                    .map(|c| c.gap.abs())
                    .sum::<f64>()
            };
            let (coarse, fine) = (gap(4), gap(64));
            assert!(
                fine < coarse,
                "{}: gap {fine:e} at m=64 is not below {coarse:e} at m=4",
                prompt.text
            );
            // Gauss-Legendre converges much faster than the Riemann rules on these smooth paths
            // (the tiny random models make the paths sharp: Riemann needs hundreds of points).
            let config = AttributionConfig {
                steps: 64,
                rule: IntegrationRule::GaussLegendre,
                ..AttributionConfig::default()
            };
            let attribution =
                integrated_gradients(fixture.model.as_ref(), prompt, &config).unwrap();
            for check in &attribution.completeness {
                let scale = check.target_at_one.abs().max(check.target_at_zero.abs());
                assert!(
                    check.gap.abs() <= 1e-3 * scale + 1e-7,
                    "{}: layer {} gap {:e}",
                    prompt.text,
                    check.layer,
                    check.gap
                );
            }
        }
    }
}

#[test]
fn rows_started_together_equal_rows_started_alone() {
    for fixture in models().iter() {
        let model = fixture.model.as_ref();
        let clean = model.clean_pass(&fixture.prompts[0]).unwrap();
        let layers = [2usize, 0, 1, 0];
        let starts: Vec<(usize, kn_model::tch::Tensor)> = layers
            .iter()
            .enumerate()
            .map(|(k, &l)| {
                (
                    l,
                    clean.activations.get(l as i64).unsqueeze(0) * (0.25 * k as f64 + 0.1),
                )
            })
            .collect();
        let together = model.forward_from_layers(&clean, &starts).unwrap();
        for (k, (layer, activations)) in starts.iter().enumerate() {
            let alone = model
                .forward_from_layer(&clean, *layer, activations)
                .unwrap();
            let difference = (together.get(k as i64) - alone.get(0))
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                difference < 1e-4,
                "row {k} (layer {layer}) differs by {difference}"
            );
        }
        // Unchanged activations reproduce the clean logits.
        let same = model
            .forward_from_layer(&clean, 1, &clean.activations.get(1).unsqueeze(0))
            .unwrap();
        let difference = (same.get(0) - &clean.target_logits)
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            difference < 1e-4,
            "clean logits not reproduced: {difference}"
        );
    }
}

#[test]
fn baselines_follow_their_definitions() {
    for fixture in models().iter() {
        let model = fixture.model.as_ref();
        let prompt = &fixture.prompts[1];
        let clean = model.clean_pass(prompt).unwrap();
        let activations = activation_scores(model, prompt, None).unwrap();
        let expected = Vec::<f32>::try_from(clean.activations.flatten(0, -1)).unwrap();
        let got: Vec<f32> = activations.iter().copied().collect();
        assert!(got.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-5));
        // Gradient x activation equals a one-point right-Riemann IG (alpha = 1, weight 1).
        let gxa = gradient_x_activation(model, prompt, None, Target::Probability).unwrap();
        let config = AttributionConfig {
            steps: 1,
            rule: IntegrationRule::Right,
            ..AttributionConfig::default()
        };
        let ig = integrated_gradients(model, prompt, &config).unwrap();
        assert!(max_abs_difference(&gxa, &ig.scores) <= 1e-4 * ig.max_abs().max(1e-9));
    }
}

#[test]
fn bad_settings_are_typed_errors() {
    let models = models();
    let fixture = &models[1];
    let model = fixture.model.as_ref();
    let prompt = &fixture.prompts[0];
    let run = |config: AttributionConfig| integrated_gradients(model, prompt, &config);
    assert!(matches!(
        run(AttributionConfig {
            steps: 0,
            ..Default::default()
        }),
        Err(AttributionError::InvalidConfig(_))
    ));
    assert!(matches!(
        run(AttributionConfig {
            layers: Some(vec![3]),
            ..Default::default()
        }),
        Err(AttributionError::Model(
            kn_model::ModelError::LayerOutOfRange { layer: 3, .. }
        ))
    ));
    assert!(matches!(
        run(AttributionConfig {
            layers: Some(vec![]),
            ..Default::default()
        }),
        Err(AttributionError::InvalidConfig(_))
    ));
    assert!(matches!(
        run(AttributionConfig {
            layers: Some(vec![1, 1]),
            ..Default::default()
        }),
        Err(AttributionError::InvalidConfig(_))
    ));
    let no_answer = model
        .encode("The capital of France is", None, AnswerPolicy::FirstToken)
        .unwrap();
    assert!(matches!(
        integrated_gradients(model, &no_answer, &AttributionConfig::default()),
        Err(AttributionError::NoAnswer(_))
    ));
}

#[test]
fn whole_answer_policy_scores_every_token() {
    let models = models();
    let fixture = &models[1];
    let model = fixture.model.as_ref();
    let prompt = model
        .encode(
            "Bill Gates works for",
            Some("Microsoft"),
            AnswerPolicy::WholeAnswer,
        )
        .unwrap();
    assert!(
        prompt.targets.len() > 1,
        "the tiny vocabulary splits Microsoft"
    );
    let config = AttributionConfig {
        steps: 8,
        target: Target::LogProbability,
        ..AttributionConfig::default()
    };
    let attribution = integrated_gradients(model, &prompt, &config).unwrap();
    // The clean target is the sum of the tokens' teacher-forced log-probabilities.
    let output = model.clean_pass(&prompt).unwrap();
    let log_probs = output
        .target_logits
        .log_softmax(-1, kn_model::tch::Kind::Float);
    let expected: f64 = prompt
        .targets
        .iter()
        .enumerate()
        .map(|(i, &(_, id))| log_probs.double_value(&[i as i64, id]))
        .sum();
    assert!((attribution.clean_target - expected).abs() < 1e-4);
    assert!(attribution.scores.iter().all(|s| s.is_finite()));
}

#[test]
fn clean_rank_counts_the_predictions_above_the_answer() {
    for fixture in models().iter() {
        let model = fixture.model.as_ref();
        for prompt in &fixture.prompts {
            let config = AttributionConfig {
                steps: 2,
                layers: Some(vec![0]),
                ..AttributionConfig::default()
            };
            let attribution = integrated_gradients(model, prompt, &config).unwrap();
            let logits = model
                .forward(std::slice::from_ref(prompt), &[], false)
                .unwrap()
                .logits;
            let probs = logits.get(0).softmax(-1, kn_model::tch::Kind::Float);
            let p = probs.double_value(&[prompt.targets[0].1]);
            let above = probs.gt(p).sum(kn_model::tch::Kind::Int64).int64_value(&[]) as usize;
            assert_eq!(attribution.clean_rank, above + 1, "{:?}", prompt.text);
        }
    }
}

/// Asking for concurrent passes on a model that cannot be shared between threads (the BERT
/// implementation does not offer `as_sync`) is a typed error; letting the model choose runs its
/// passes one after another.
#[test]
fn concurrent_passes_need_a_shareable_model() {
    let models = models();
    let bert = &models[0];
    assert!(bert.model.as_sync().is_none());
    let config = |concurrent_passes| AttributionConfig {
        steps: 2,
        concurrent_passes,
        ..AttributionConfig::default()
    };
    let asked = integrated_gradients(bert.model.as_ref(), &bert.prompts[0], &config(2));
    assert!(
        matches!(&asked, Err(AttributionError::InvalidConfig(m)) if m.contains("shared between threads")),
        "{asked:?}"
    );
    assert!(integrated_gradients(bert.model.as_ref(), &bert.prompts[0], &config(0)).is_ok());
    // The Llama implementation can, and chooses two passes on two or more threads.
    let llama = &models[1];
    assert!(llama.model.as_sync().is_some());
    assert!(integrated_gradients(llama.model.as_ref(), &llama.prompts[0], &config(3)).is_ok());
}

/// A memory budget that holds a single row per pass cuts the passes to one row each (the
/// decoder states its bytes per row) and leaves the results as they are.
#[test]
fn a_tiny_memory_budget_cuts_the_passes_not_the_results() {
    let fixtures = models();
    let fixture = &fixtures[1];
    let model = fixture.model.as_ref();
    let per_row = model
        .bytes_per_row_hint()
        .expect("the decoder states its bytes per row");
    assert_eq!(kn_attribution::rows_within(per_row * 3 + 1, per_row), 3);
    assert_eq!(kn_attribution::rows_within(1, per_row), 1);
    let prompt = &fixture.prompts[0];
    let unbounded = AttributionConfig {
        steps: 5,
        memory_budget: u64::MAX,
        ..AttributionConfig::default()
    };
    let one_row = AttributionConfig {
        memory_budget: 1,
        ..unbounded.clone()
    };
    let a = integrated_gradients(model, prompt, &unbounded).unwrap();
    let b = integrated_gradients(model, prompt, &one_row).unwrap();
    let scale = a.scores.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!(max_abs_difference(&a.scores, &b.scores) <= 1e-5 * scale);
}
