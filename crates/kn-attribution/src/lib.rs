//! Knowledge attribution: which FFN neurons of a transformer express a fact.
//!
//! The main entry point is [`integrated_gradients`], the paper's method (Dai et al., ACL 2022):
//! integrated gradients over the FFN intermediate neurons, of the probability of the correct
//! answer at the answer position, with a zero baseline. [`activation_scores`] and
//! [`gradient_x_activation`] are the cheap scores it is usually compared with.
//!
//! Everything works through [`kn_model::KnowledgeModel`], so any architecture that implements
//! it can be attributed. Multi-token answers: by default only the first token is scored (the
//! paper's single-token objects); encode the prompt with
//! [`kn_model::AnswerPolicy::WholeAnswer`] (causal models) to score the sum of the answer
//! tokens' teacher-forced log-probabilities (or its exponential, the joint probability).
//!
//! ```no_run
//! use kn_attribution::{integrated_gradients, AttributionConfig};
//! use kn_model::{load_model, AnswerPolicy, tch::Device};
//!
//! let model = load_model("default", Device::Cpu)?;
//! let prompt = model.encode("The capital of France is", Some("Paris"), AnswerPolicy::FirstToken)?;
//! let attribution = integrated_gradients(model.as_ref(), &prompt, &AttributionConfig::default())?;
//! for neuron in attribution.top(5) {
//!     println!("layer {} neuron {}: {:.4}", neuron.layer, neuron.neuron, neuron.score);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod baselines;
mod error;
mod head;
mod integrated_gradients;
mod logprob_increase;
mod methods;
mod output;
mod passes;
mod reference;
mod rules;

pub use baselines::{
    activation_scores, answer_gradients, attribution_patching, gradient_x_activation,
};
pub use error::{AttributionError, Result};
pub use head::{head_values_and_gradient, HEAD_VOCAB_BLOCK};
pub use integrated_gradients::{
    integrated_gradients, integrated_gradients_batch, integrated_gradients_from_clean_pass,
    top_neurons, Attribution, AttributionConfig, LayerCompleteness, ScoredNeuron, Target,
    DEFAULT_ROWS_PER_PASS,
};
pub use logprob_increase::logprob_increase;
pub use methods::{attribute_with, method_scores, Method};
pub use output::{npy_bytes, save_scores, write_atomically, SaveError};
pub use passes::rows_within;
pub use reference::integrated_gradients_reference;
pub use rules::IntegrationRule;
