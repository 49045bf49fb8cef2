//! The README's library example: attribute "The capital of France is" -> "Paris" on the
//! default model and print the top knowledge-neuron candidates.
//!
//! Run: `cargo run --release --example attribute_one_fact`

use kn_attribution::{integrated_gradients, AttributionConfig};
use kn_model::{load_model, tch::Device, AnswerPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = load_model("default", Device::Cpu)?;
    let prompt = model.encode(
        "The capital of France is",
        Some("Paris"),
        AnswerPolicy::FirstToken,
    )?;
    let attribution = integrated_gradients(model.as_ref(), &prompt, &AttributionConfig::default())?;
    println!("p(Paris) = {:.4}", attribution.clean_prob);
    for neuron in attribution.top(5) {
        println!(
            "layer {} neuron {}: {:.4}",
            neuron.layer, neuron.neuron, neuron.score
        );
    }
    Ok(())
}
