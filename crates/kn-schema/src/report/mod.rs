//! The reports of a run directory's experiments, as the `kn` commands write them and
//! `kn report` reads them: discovery statistics ([`discovery`]), suppression and amplification
//! ([`suppression`]), the activation probe ([`activations`], with [`stats`]), fact updates
//! ([`edit`]) and relation erasure ([`erase`]). Each file's type is its `*File` or `*Output`
//! type; the computing crates (kn-select, kn-edit, kn-probe, kn-run) fill them and re-export
//! them, so one definition serves writer and reader alike.

pub mod activations;
pub mod discovery;
pub mod edit;
pub mod erase;
pub mod stats;
pub mod suppression;

use serde::{Deserialize, Serialize};

/// The discovery run an experiment's report was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The neurons.jsonl read.
    pub neurons: String,
    /// Facts in it.
    pub facts: usize,
    /// Their relations.
    pub relations: Vec<String>,
    /// The model the run was made with.
    pub model_source: String,
    /// Its fingerprint (equal to the loaded model's).
    pub fingerprint: String,
    /// The version of kn that wrote this output ("" in reports of versions that did not
    /// record it).
    #[serde(default)]
    pub kn_version: String,
}

/// `100 * (after / before - 1)`; `None` when `before` is not positive or either is not finite.
pub fn change_pct(before: f64, after: f64) -> Option<f64> {
    (before > 0.0 && before.is_finite() && after.is_finite())
        .then(|| 100.0 * (after / before - 1.0))
}

/// The mean of the present values (`None` when none are).
pub fn mean(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}
