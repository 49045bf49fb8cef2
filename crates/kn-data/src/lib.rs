//! PARAREL and BINGREL datasets and user fact files, for the Knowledge Neurons experiments.
//!
//! Pure Rust, no model code. What it offers:
//! - [`Pararel::load`]: the 34 PARAREL relations, 27,738 facts and 318 templates the paper uses
//!   (a copy ships in `data/pararel`, see [`Pararel::bundled_dir`]);
//! - [`UserFacts::load`]: the user's own facts from JSON Lines, with templates or ready prompts;
//! - [`Dataset::prompts`]: the prompts of a fact for masked or causal LMs ([`PromptStyle`]);
//! - [`FactSelection`] / [`FactFilter`]: relation lists, minimum prompt counts, seeded sampling
//!   per relation, sharding, and a `retain` hook for model-dependent filters (used by kn-cli);
//! - [`Bingrel::load_relation`]: the BINGREL sentence bags, checked for alignment with the facts;
//! - [`probe`]: the T1/T2/T3 probe sentences of the activation experiment.
//!
//! Facts are identified everywhere by [`FactId`], written `RELATION:INDEX` (`P36:12`).
//! All randomness is seeded and platform-independent ([`seed`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bingrel;
pub mod dataset;
pub mod error;
pub mod fact;
pub mod probe;
pub mod seed;
pub mod select;
pub mod user;

pub use bingrel::{Bingrel, FactBags, RelationBags};
pub use dataset::{Dataset, Pararel};
pub use error::{DataError, Result};
pub use fact::{
    compare_relations, Fact, FactId, Prompt, PromptStyle, Relation, RelationType, Template,
};
pub use probe::{fact_probes, FactProbes, Probe, ProbeCounts, ProbeSet, SentencePool, TailMatch};
pub use select::{FactFilter, FactSelection, Shard};
pub use user::UserFacts;

/// Loads facts from what a user gives as `--data`: a PARAREL directory ([`Pararel::load`]) or
/// a user fact file in JSON Lines ([`UserFacts::load`]).
pub fn load_facts(path: &std::path::Path) -> Result<Dataset> {
    if path.is_dir() {
        Pararel::load(path)
    } else if path.is_file() {
        UserFacts::load(path)
    } else {
        Err(DataError::NotFound {
            path: path.to_path_buf(),
        })
    }
}
