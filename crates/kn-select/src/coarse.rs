//! Coarse selection: the neurons of one prompt whose attribution passes a threshold (paper §3.2,
//! step 2).
//!
//! [`CoarseRule::Relative`] with `ratio = 0.2` is the paper's rule ("attribution score greater
//! than t x the maximum"). The rules, with `s` a neuron's score and every comparison done in
//! `f64`:
//! - `Relative { ratio }`: `s > ratio * max`; nothing if `max <= 0` (no positive attribution).
//!   Invariant to multiplying all scores by a positive constant. (The authors' code keeps
//!   `s >= ratio * max`; the two differ only on exact ties.)
//! - `Absolute { threshold }`: `s > threshold`.
//! - `TopK { k }`: the `k` highest scores (whatever their sign); ties broken towards the lower
//!   (layer, index).
//! - `Percentile { percentile }`: `s >` the `percentile`-th percentile of all scores of the
//!   matrix, linearly interpolated between order statistics (NumPy's default method).
//!
//! The result is sorted by neuron and has no duplicates.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SelectError};
use crate::neuron::{Neuron, ScoreMatrix};

/// The paper's relative threshold, `t = 0.2`.
pub const PAPER_RATIO: f32 = 0.2;

/// How a prompt's coarse neurons are chosen (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum CoarseRule {
    /// Score strictly above `ratio` x the matrix maximum (`ratio` finite, `>= 0`).
    Relative {
        /// The fraction `t` of the maximum (paper: 0.2).
        ratio: f32,
    },
    /// Score strictly above a fixed value (finite).
    Absolute {
        /// The threshold.
        threshold: f32,
    },
    /// The `k` highest scores.
    TopK {
        /// How many neurons to keep.
        k: usize,
    },
    /// Score strictly above a percentile of the matrix's scores (`0 <= percentile <= 100`).
    Percentile {
        /// The percentile, in percent.
        percentile: f64,
    },
}

impl Default for CoarseRule {
    /// The paper's rule: `Relative { ratio: 0.2 }`.
    fn default() -> Self {
        Self::Relative { ratio: PAPER_RATIO }
    }
}

impl CoarseRule {
    /// Checks the rule's parameter ([`SelectError::InvalidRule`]).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Relative { ratio } if !(ratio.is_finite() && ratio >= 0.0) => {
                Err(SelectError::InvalidRule(format!(
                    "relative ratio must be finite and >= 0, got {ratio}"
                )))
            }
            Self::Absolute { threshold } if !threshold.is_finite() => {
                Err(SelectError::InvalidRule(format!(
                    "absolute threshold must be finite, got {threshold}"
                )))
            }
            Self::Percentile { percentile } if !(0.0..=100.0).contains(&percentile) => {
                Err(SelectError::InvalidRule(format!(
                    "percentile must be within [0, 100], got {percentile}"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The coarse neurons of one prompt, sorted.
pub fn coarse_select(scores: &ScoreMatrix, rule: &CoarseRule) -> Result<Vec<Neuron>> {
    rule.validate()?;
    let above = |threshold: f64| -> Vec<Neuron> {
        scores
            .iter()
            .filter(|&(_, s)| f64::from(s) > threshold)
            .map(|(n, _)| n)
            .collect()
    };
    let mut chosen = match *rule {
        CoarseRule::Relative { ratio } => {
            let max = f64::from(scores.max());
            if max <= 0.0 {
                Vec::new()
            } else {
                above(f64::from(ratio) * max)
            }
        }
        CoarseRule::Absolute { threshold } => above(f64::from(threshold)),
        CoarseRule::TopK { k } => {
            let mut all: Vec<(Neuron, f32)> = scores.iter().collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
            all.into_iter().map(|(n, _)| n).collect()
        }
        CoarseRule::Percentile { percentile } => above(percentile_of(scores.data(), percentile)),
    };
    chosen.sort_unstable();
    Ok(chosen)
}

/// Coarse selection of many prompts in parallel (same order as `matrices`).
pub fn coarse_select_all(matrices: &[ScoreMatrix], rule: &CoarseRule) -> Result<Vec<Vec<Neuron>>> {
    rule.validate()?;
    matrices
        .par_iter()
        .map(|m| coarse_select(m, rule))
        .collect()
}

/// The `q`-th percentile (0..=100) of `values` with linear interpolation; `-inf` if empty.
pub fn percentile_of(values: &[f32], q: f64) -> f64 {
    let mut sorted: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
    if sorted.is_empty() {
        return f64::NEG_INFINITY;
    }
    sorted.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let (Some(&a), Some(&b)) = (sorted.get(lower), sorted.get(upper)) else {
        return f64::NEG_INFINITY;
    };
    a + (b - a) * (position - lower as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(data: &[f32]) -> ScoreMatrix {
        ScoreMatrix::new(vec![0, 1], data.len() / 2, data.to_vec()).unwrap()
    }

    #[test]
    fn relative_threshold_is_strict() {
        let s = m(&[1.0, 0.2, 0.21, -3.0, 0.0, 0.5]);
        let got = coarse_select(&s, &CoarseRule::default()).unwrap();
        assert_eq!(
            got,
            [Neuron::new(0, 0), Neuron::new(0, 2), Neuron::new(1, 2)]
        );
        // No positive score: nothing.
        assert!(coarse_select(&m(&[-1.0, -0.5]), &CoarseRule::default())
            .unwrap()
            .is_empty());
        assert!(coarse_select(&m(&[0.0, 0.0]), &CoarseRule::default())
            .unwrap()
            .is_empty());
        // Ratio 0: every positive score.
        assert_eq!(
            coarse_select(&s, &CoarseRule::Relative { ratio: 0.0 })
                .unwrap()
                .len(),
            4
        );
        assert!(coarse_select(&s, &CoarseRule::Relative { ratio: 1.0 })
            .unwrap()
            .is_empty());
    }

    #[test]
    fn absolute_top_k_and_percentile() {
        let s = m(&[1.0, 0.2, 0.21, -3.0, 0.0, 0.5]);
        assert_eq!(
            coarse_select(&s, &CoarseRule::Absolute { threshold: 0.2 })
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            coarse_select(&s, &CoarseRule::Absolute { threshold: -10.0 })
                .unwrap()
                .len(),
            6
        );
        assert_eq!(
            coarse_select(&s, &CoarseRule::TopK { k: 2 }).unwrap(),
            [Neuron::new(0, 0), Neuron::new(1, 2)]
        );
        assert!(coarse_select(&s, &CoarseRule::TopK { k: 0 })
            .unwrap()
            .is_empty());
        assert_eq!(
            coarse_select(&s, &CoarseRule::TopK { k: 99 })
                .unwrap()
                .len(),
            6
        );
        // Ties go to the lower neuron.
        let ties = m(&[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(
            coarse_select(&ties, &CoarseRule::TopK { k: 1 }).unwrap(),
            [Neuron::new(0, 0)]
        );
        // 50th percentile of 6 values = mean of the 3rd and 4th smallest (0.2, 0.21).
        assert_eq!(
            coarse_select(&s, &CoarseRule::Percentile { percentile: 50.0 })
                .unwrap()
                .len(),
            3
        );
        assert!(
            coarse_select(&s, &CoarseRule::Percentile { percentile: 100.0 })
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            coarse_select(&s, &CoarseRule::Percentile { percentile: 0.0 })
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn percentile_matches_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_of(&v, 0.0), 1.0);
        assert_eq!(percentile_of(&v, 100.0), 4.0);
        assert!((percentile_of(&v, 50.0) - 2.5).abs() < 1e-12);
        assert!((percentile_of(&v, 90.0) - 3.7).abs() < 1e-12); // np.percentile([1,2,3,4], 90) == 3.7
        assert_eq!(percentile_of(&[], 50.0), f64::NEG_INFINITY);
    }

    #[test]
    fn invalid_rules() {
        let s = m(&[1.0, 2.0]);
        for rule in [
            CoarseRule::Relative { ratio: -0.1 },
            CoarseRule::Relative { ratio: f32::NAN },
            CoarseRule::Absolute {
                threshold: f32::INFINITY,
            },
            CoarseRule::Percentile { percentile: 100.5 },
            CoarseRule::Percentile {
                percentile: f64::NAN,
            },
        ] {
            assert!(
                matches!(coarse_select(&s, &rule), Err(SelectError::InvalidRule(_))),
                "{rule:?}"
            );
        }
    }

    #[test]
    fn many_in_parallel_and_serde() {
        let ms = vec![m(&[1.0, 0.0]), m(&[0.0, 1.0])];
        let all = coarse_select_all(&ms, &CoarseRule::default()).unwrap();
        assert_eq!(all, vec![vec![Neuron::new(0, 0)], vec![Neuron::new(1, 0)]]);
        let json = serde_json::to_string(&CoarseRule::default()).unwrap();
        assert_eq!(json, r#"{"rule":"relative","ratio":0.2}"#);
        assert_eq!(
            serde_json::from_str::<CoarseRule>(r#"{"rule":"top_k","k":5}"#).unwrap(),
            CoarseRule::TopK { k: 5 }
        );
    }
}
