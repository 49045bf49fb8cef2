//! The files of a knowledge-neurons run directory, in a crate that does not link libtorch: the
//! record types and their validated readers, the neuron identifier, the one atomic writer, the
//! one `.npy` reader and writer, the run-directory lock, capped reads of small files and the
//! rules for identifiers from data.
//!
//! Everything here is pure Rust, so readers of run files (reports, the fuzz targets, other
//! tools) need neither a model nor libtorch.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Prompts or sentences per forward pass unless told otherwise (experiments record theirs).
pub const DEFAULT_BATCH_SIZE: usize = 16;

pub mod atomic;
pub mod complete;
pub mod error;
pub mod files;
pub mod ids;
pub mod lock;
pub mod model;
pub mod neuron;
pub mod npy;
pub mod report;
pub mod run;

pub use atomic::{write_atomically, write_json_atomically};
pub use complete::from_json_complete;
pub use error::{Result, SchemaError};
pub use files::{read_capped, read_capped_text, CONFIG_FILE_LIMIT};
pub use ids::{check_relation_id, parse_fact_id};
pub use lock::{Access, RunLock};
pub use model::{Dtype, ModelDifference, ModelInfo, ModelKind};
pub use neuron::Neuron;
pub use run::{
    check_facts_known, parse_neurons, FactRecord, ModelRecord, NeuronsFile, PromptRecord,
    RunConfig, ScoredNeuron, TornTail,
};
