//! The knowledge-neuron pipeline as a library: the steps `kn` runs, for the CLI, the examples
//! and anyone's own crate.
//!
//! - [`discovery`]: which facts to run ([`select_facts`]) and the paper's per-fact
//!   attribute -> coarse -> refine step ([`discover_fact`]);
//! - [`output_dir`]: a discovery's output directory being written, resumable
//!   ([`OutputDir`]), and its summaries;
//! - [`run_dir`]: a finished run read back for the experiments ([`RunDir`]), its facts
//!   re-encoded ([`encode_facts`]), seeded orders and prompt caps;
//! - [`suppression`]: the suppression/amplification experiment on a run's facts;
//! - [`editing`]: fact updates on a run's facts, one or a seeded sample, with the paper's
//!   metrics and the weights restored bit for bit;
//! - [`merge`]: the shards of a sharded discovery merged into one run, every check first;
//! - [`erasure`]: a relation erased through its most frequent neurons, measured, restored;
//! - [`probe`]: a run, PARAREL and the BINGREL corpus loaded and lined up for the activation
//!   and trigger experiments;
//! - [`outputs`]: output files and run directories checked and locked before any work.
//!
//! Every step returns [`RunError`], whose kind says whether the input was wrong, something
//! failed inside, or the run was stopped. Progress goes to a callback; nothing here prints.
#![warn(missing_docs)]

pub mod attribute;
pub mod discover_request;
pub mod discovery;
pub mod editing;
pub mod erasure;
pub mod error;
pub mod merge;
pub mod options;
pub mod output_dir;
pub mod outputs;
pub mod predict;
pub mod probe;
pub mod run_dir;
pub mod suppression;
pub mod sweep;
pub mod text;

pub use discovery::{
    answer_ranks, counterfactual_prompts, discover_fact, discover_facts, parse_shard, prompt_style,
    select_facts, FactSelection, FactSteps,
};
pub use error::RunError;

/// What a long pipeline step tells its caller as it goes (the CLI prints them on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Where the step is.
    Progress(String),
    /// Something the caller should know: a setting raised, an item skipped.
    Warning(String),
}
pub use output_dir::{read_selection, refine_config, write_summaries, OutputDir, SELECTION_FILE};
pub use outputs::{check_output_file, lock_run_of, prepare_outputs, prepare_run_dir};
pub use run_dir::{
    cap_prompts, change_pct, encode_fact, encode_facts, encode_run, mean, record_neurons,
    relation_frequencies, seeded_order, RunDir, RunSummary,
};
