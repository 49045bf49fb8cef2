//! Do knowledge neurons fire when their fact is expressed? The activation experiment and the
//! trigger sentences of Dai et al., "Knowledge Neurons in Pretrained Transformers" (ACL 2022,
//! Figure 5 and Table 4), for any model behind [`kn_model::KnowledgeModel`].
//!
//! - [`Corpus::load`]: the BINGREL bags of some relations, checked to line up with PARAREL's
//!   facts (a file with a different number of bags is an error, not a guess).
//! - [`activation_experiment`]: per fact, the mean activation of its knowledge neurons at the
//!   hidden position of T1 (head+tail, tail hidden), T2 (head only, a random non-head word
//!   hidden) and T3 (random sentences of other facts) probe sentences; per relation and overall
//!   with counts and standard errors, beside a seeded random-neuron control of the same layers.
//!   Everything skipped (empty bags, tails not found, sentences longer than the context) is
//!   counted in the [`ActivationReport`].
//! - [`trigger_sentences`]: a fact's head+tail sentences ranked by the summed activation of its
//!   knowledge neurons, with and without the tail.
//!
//! Forward passes are batched, sorted by length and run without gradients.
//!
//! # Usage
//!
//! ```no_run
//! use kn_data::{Pararel, FactId};
//! use kn_model::{load_model, tch::Device};
//! use kn_probe::{activation_experiment, ActivationConfig, Corpus, KnowledgeFact, Neuron};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = load_model("default", Device::Cpu)?;
//! let dataset = Pararel::load_bundled()?;
//! let corpus = Corpus::load(std::path::Path::new("/data/bingrel"), &dataset, &["P36".to_string()])?;
//! let fact = dataset.fact(&FactId::new("P36", 0)).ok_or("no such fact")?.clone();
//! let facts = vec![KnowledgeFact { fact, neurons: vec![Neuron::new(20, 311), Neuron::new(22, 1023)], prompts: vec![] }];
//! let report = activation_experiment(model.as_ref(), &facts, &corpus, &ActivationConfig::default(), &mut |_, _| {})?;
//! println!("T1 {:?} T2 {:?} T3 {:?}", report.overall.knowledge.t1.mean, report.overall.knowledge.t2.mean,
//!          report.overall.knowledge.t3.mean);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod activations;
mod corpus;
mod error;
mod stats;
mod triggers;

pub use activations::{
    activation_experiment, prompt_style, truncate_bags, ActivationConfig, ActivationReport,
    ActivationsFile, AlignedGroup, FactActivation, FactSkips, GroupReport, RelationMeans,
    SentenceCounts, SignAligned, DEFAULT_BATCH_SIZE,
};
pub use corpus::{Corpus, KnowledgeFact};
pub use error::{ProbeError, Result};
pub use kn_schema::Neuron;
pub use stats::{Paired, SentenceKind, Summary, Triple};
pub use triggers::{trigger_sentences, TriggerConfig, TriggerReport, TriggerSentence};
