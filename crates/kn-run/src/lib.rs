//! The knowledge-neuron pipeline as a library: the steps `kn` runs, for the CLI, the examples
//! and anyone's own crate.
//!
//! - [`discovery`]: which facts to run ([`select_facts`]) and the paper's per-fact
//!   attribute -> coarse -> refine step ([`discover_fact`]);
//! - [`output_dir`]: a discovery's output directory being written, resumable
//!   ([`OutputDir`]), and its summaries;
//! - [`run_dir`]: a finished run read back for the experiments ([`RunDir`]), its facts
//!   re-encoded ([`encode_facts`]), seeded orders and prompt caps;
//! - [`outputs`]: output files and run directories checked and locked before any work.
//!
//! Every step returns [`RunError`], whose kind says whether the input was wrong, something
//! failed inside, or the run was stopped. Progress goes to a callback; nothing here prints.
#![warn(missing_docs)]

pub mod discovery;
pub mod error;
pub mod output_dir;
pub mod outputs;
pub mod run_dir;

pub use discovery::{
    answer_ranks, discover_fact, parse_shard, prompt_style, select_facts, FactSelection,
};
pub use error::RunError;
pub use output_dir::{read_selection, write_summaries, OutputDir, SELECTION_FILE};
pub use outputs::{check_output_file, lock_run_of, prepare_run_dir};
pub use run_dir::{
    cap_prompts, change_pct, encode_fact, encode_facts, mean, record_neurons, relation_frequencies,
    seeded_order, RunDir, RunSummary,
};
