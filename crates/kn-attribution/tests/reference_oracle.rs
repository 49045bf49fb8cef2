//! The fast path of integrated gradients (batched passes, the closed-form output head, the
//! hand-written backward pass where it applies, concurrent passes) against the plain reference
//! implementation (`integrated_gradients_reference`: one point at a time through autograd and
//! the full head), on a masked LM, a plain Llama, a Llama-like model the hand-written pass
//! covers (Gemma-3: sandwich norms, windows, two RoPE tables) and one it does not (GPT-2).

use kn_attribution::{
    integrated_gradients, integrated_gradients_reference, AttributionConfig, Target,
};
use kn_model::tch::Device;
use kn_model::{load_model, AnswerPolicy};
use std::path::Path;

#[test]
fn the_fast_path_equals_the_reference_implementation() {
    for (fixture, prompt, answer) in [
        ("tiny-bert", "The capital of France is [MASK] .", "Paris"),
        (
            "tiny-llama",
            "The official language of the Netherlands is",
            "Dutch",
        ),
        (
            "family/tiny-gemma3",
            "The official language of the Netherlands is",
            "Dutch",
        ),
        ("family/tiny-gpt2", "The capital of France is", "Paris"),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures")
            .join(fixture);
        let model = load_model(path.to_str().unwrap(), Device::Cpu).unwrap();
        let prompt = model
            .encode(prompt, Some(answer), AnswerPolicy::FirstToken)
            .unwrap();
        let layers = model.info().num_layers;
        for target in [Target::Probability, Target::LogProbability] {
            let config = AttributionConfig {
                steps: 6,
                target,
                ..AttributionConfig::default()
            };
            let fast = integrated_gradients(model.as_ref(), &prompt, &config).unwrap();
            let largest = fast.scores.iter().fold(0f32, |m, s| m.max(s.abs()));
            assert!(largest > 0.0, "{fixture}: all scores zero");
            for layer in 0..layers {
                let reference =
                    integrated_gradients_reference(model.as_ref(), &prompt, layer, 6, target)
                        .unwrap();
                let worst = fast
                    .scores
                    .row(layer)
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 1e-5 * largest,
                    "{fixture} {target:?} layer {layer}: off by {worst} of {largest}"
                );
            }
        }
    }
}
