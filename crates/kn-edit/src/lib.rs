//! Interventions on knowledge neurons and knowledge editing (Dai et al., "Knowledge Neurons in
//! Pretrained Transformers", ACL 2022), for any model behind [`kn_model::KnowledgeModel`].
//!
//! - **Interventions on activations** ([`intervene`]): suppress ([`SUPPRESS`], `Scale(0)`),
//!   amplify ([`AMPLIFY`], `Scale(2)`) or scale/set by any amount the activations of a
//!   [`NeuronSet`] at the answer position, and see each prompt's answer probability and rank
//!   before and after (one clean and one edited batched pass per batch).
//! - **The paper's suppression/amplification experiment**
//!   ([`suppress_amplify_experiment`]): per fact, own neurons against other-relation facts,
//!   random neurons and an optional activation-chosen baseline; per relation and overall, as
//!   the paper reports it (mean change / mean original probability) and as the mean of
//!   per-prompt relative changes. Serializable to JSON ([`ExperimentReport`]).
//! - **Weight edits**: updating a fact ([`update_fact`], `v ← v − λ1·e(t) + λ2·e(t′)`) and
//!   erasing a relation ([`erase_relation`]), with the paper's metrics ([`evaluate_update`],
//!   [`evaluate_erasure`]) and random-neuron controls. Every edit returns an [`EditHandle`]
//!   that restores the previous weights bit for bit and can be saved as a small safetensors
//!   [`Patch`]; [`apply_patch`] refuses patches made for another model. Failed edits leave the
//!   weights untouched: everything is checked before the first write.
//!
//! Random choices are seeded and platform-independent ([`derive_seed`]).
//!
//! # Usage
//!
//! ```no_run
//! use kn_edit::{
//!     apply_patch, intervene, update_fact, EncodedFact, InterventionConfig, NeuronFrequencies,
//!     NeuronSet, Patch, UpdateConfig, AMPLIFY, SUPPRESS,
//! };
//! use kn_model::{load_model, tch::Device, AnswerPolicy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut model = load_model("default", Device::Cpu)?;
//! let prompt = model.encode("The capital of France is", Some("Paris"), AnswerPolicy::FirstToken)?;
//! let neurons = NeuronSet::for_model([(20, 311), (22, 1023)], model.info())?;
//!
//! // Suppress and amplify the neurons' activations.
//! let config = InterventionConfig::default();
//! for op in [SUPPRESS, AMPLIFY] {
//!     for effect in intervene(model.as_ref(), std::slice::from_ref(&prompt), &neurons, op, &config)? {
//!         println!("{}: p {:.4} -> {:.4}", effect.prompt, effect.prob_before, effect.prob_after);
//!     }
//! }
//!
//! // Update the fact to a new answer, save the edit, undo it, re-apply it from the file.
//! let fact = EncodedFact {
//!     id: "P36:0".into(),
//!     relation: "P36".into(),
//!     prompts: vec![prompt],
//!     neurons,
//!     activation_baseline: None,
//! };
//! let frequencies = NeuronFrequencies::default(); // relation-level counts, normally from all facts
//! let outcome = update_fact(model.as_mut(), &fact, "Rome", &frequencies, &UpdateConfig::default())?;
//! outcome.handle.save(std::path::Path::new("paris-to-rome.patch"))?;
//! outcome.handle.restore(model.as_mut())?;
//! let handle = apply_patch(model.as_mut(), &Patch::load(std::path::Path::new("paris-to-rome.patch"))?)?;
//! handle.restore(model.as_mut())?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod baseline;
mod erase;
mod error;
mod experiment;
mod intervene;
mod neurons;
mod patch;
mod scoring;
mod seed;
mod update;

pub use baseline::{activation_baseline, add_activation_baselines, mean_activations};
pub use erase::{
    erase_neurons, erase_relation, erasure_token, evaluate_erasure, EraseConfig, EraseOutcome,
    ErasureChecks, ErasureEvaluation, ErasureMetrics, ErasurePrompts, ErasureValue,
    CAUSAL_UNKNOWN_TOKENS, MASKED_UNKNOWN_TOKENS,
};
pub use error::{EditError, Result};
pub use experiment::{
    suppress_amplify_experiment, ChangeSummary, ConditionTable, EncodedFact, ExperimentConfig,
    ExperimentReport, FactReport, GroupReport, OpEffects,
};
pub use intervene::{
    intervene, InterventionConfig, PromptEffect, AMPLIFY, DEFAULT_BATCH_SIZE, SUPPRESS,
};
pub use neurons::{NeuronFrequencies, NeuronSet};
pub use patch::{
    apply_patch, check_model, edit_value_slots, verify_restored, EditHandle, Patch, PATCH_FORMAT,
    PATCH_METADATA_KEY, PATCH_VERSION,
};
pub use scoring::{answer_quality, AnswerQuality};
pub use seed::derive_seed;
pub use update::{
    evaluate_update, fact_answer_token, new_answer_token, update_fact, update_tokens, CheckPrompts,
    EditChecks, EvaluationConfig, Locality, UpdateConfig, UpdateEvaluation, UpdateMetrics,
    UpdateOutcome,
};
