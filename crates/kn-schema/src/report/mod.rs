//! The reports of a run directory's experiments, as the `kn` commands write them and
//! `kn report` reads them: discovery statistics ([`discovery`]), suppression and amplification
//! ([`suppression`]), the activation probe ([`activations`], with [`stats`]), fact updates
//! ([`edit`]), the update rule's settings against success and damage ([`sweep`]) and relation
//! erasure ([`erase`]). Each file's type is its `*File` or `*Output`
//! type; the computing crates (kn-select, kn-edit, kn-probe, kn-run) fill them and re-export
//! them, so one definition serves writer and reader alike.

pub mod activations;
pub mod discovery;
pub mod edit;
pub mod erase;
pub mod stats;
pub mod suppression;
pub mod sweep;

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

/// The median of the present values (the mean of the middle two for an even count; `None`
/// when none are).
pub fn median(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut present: Vec<f64> = values.into_iter().flatten().collect();
    present.sort_by(f64::total_cmp);
    let n = present.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(present[n / 2]),
        _ => Some((present[n / 2 - 1] + present[n / 2]) / 2.0),
    }
}

/// The mean of the present values (`None` when none are).
pub fn mean(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_skip_absent_values() {
        assert_eq!(mean([Some(1.0), None, Some(3.0)]), Some(2.0));
        assert_eq!(median([Some(5.0), None, Some(1.0), Some(2.0)]), Some(2.0));
        assert_eq!(
            median([Some(4.0), Some(1.0), Some(2.0), Some(1e9)]),
            Some(3.0)
        );
        assert_eq!(median([None]), None);
        assert_eq!(change_pct(2.0, 3.0), Some(50.0));
        assert_eq!(change_pct(0.0, 3.0), None);
    }

    #[test]
    fn perplexity_changes_summarize_field_by_field() {
        use edit::PerplexityChange;
        let change = |same: f64, other: Option<f64>| PerplexityChange {
            same_relation: Some(same),
            other_relations: other,
            random_same_relation: None,
            random_other_relations: None,
        };
        let changes = [
            change(1.0, Some(10.0)),
            change(3.0, None),
            change(1e6, Some(20.0)),
        ];
        let medians = PerplexityChange::over(changes.iter(), median);
        assert_eq!(medians.same_relation, Some(3.0));
        assert_eq!(medians.other_relations, Some(15.0));
        assert_eq!(medians.random_same_relation, None);
        let means = PerplexityChange::over(changes.iter(), mean);
        assert_eq!(means.other_relations, Some(15.0));
    }
}
