//! Means with standard errors, and the T1/T2/T3 triple every result is reported over.

use serde::{Deserialize, Serialize};

/// The mean of some values with its standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many values.
    pub n: usize,
    /// Their mean (`None` for no value).
    pub mean: Option<f64>,
    /// Standard error of the mean: sample standard deviation (n - 1) / sqrt(n); `None` for
    /// fewer than two values.
    pub se: Option<f64>,
}

impl Summary {
    /// Summarizes `values` (non-finite values are ignored).
    pub fn of(values: &[f64]) -> Self {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let n = finite.len();
        if n == 0 {
            return Self::default();
        }
        let mean = finite.iter().sum::<f64>() / n as f64;
        let se = (n > 1).then(|| {
            let var = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        });
        Self {
            n,
            mean: Some(mean),
            se,
        }
    }
}

/// One value per sentence kind: T1 (head+tail, tail hidden), T2 (head only, a random non-head
/// word hidden), T3 (random sentences of other facts, a random word hidden).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triple<T> {
    /// Head+tail sentences, tail hidden.
    pub t1: T,
    /// Head-only sentences, a random non-head word hidden.
    pub t2: T,
    /// Random sentences of other facts, a random word hidden.
    pub t3: T,
}

impl<T> Triple<T> {
    /// The three values, T1 first.
    pub fn as_array(&self) -> [&T; 3] {
        [&self.t1, &self.t2, &self.t3]
    }

    /// The value of `kind`.
    pub fn get(&self, kind: SentenceKind) -> &T {
        match kind {
            SentenceKind::T1 => &self.t1,
            SentenceKind::T2 => &self.t2,
            SentenceKind::T3 => &self.t3,
        }
    }

    /// The value of `kind`, mutably.
    pub fn get_mut(&mut self, kind: SentenceKind) -> &mut T {
        match kind {
            SentenceKind::T1 => &mut self.t1,
            SentenceKind::T2 => &mut self.t2,
            SentenceKind::T3 => &mut self.t3,
        }
    }

    /// Applies `f` to each value.
    pub fn map<U>(&self, mut f: impl FnMut(SentenceKind, &T) -> U) -> Triple<U> {
        Triple {
            t1: f(SentenceKind::T1, &self.t1),
            t2: f(SentenceKind::T2, &self.t2),
            t3: f(SentenceKind::T3, &self.t3),
        }
    }
}

/// Paired differences between kinds, per fact (e.g. T1 - T3 of the same fact), summarized over
/// facts: the standard errors of these are the ones to read when comparing kinds, since the
/// facts' levels vary much more than their differences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// T1 - T2.
    pub t1_minus_t2: Summary,
    /// T1 - T3.
    pub t1_minus_t3: Summary,
    /// T2 - T3.
    pub t2_minus_t3: Summary,
}

impl Paired {
    /// The paired differences of per-fact triples.
    pub fn of(values: &[Triple<f64>]) -> Self {
        let diff =
            |f: fn(&Triple<f64>) -> f64| Summary::of(&values.iter().map(f).collect::<Vec<_>>());
        Self {
            t1_minus_t2: diff(|t| t.t1 - t.t2),
            t1_minus_t3: diff(|t| t.t1 - t.t3),
            t2_minus_t3: diff(|t| t.t2 - t.t3),
        }
    }
}

/// The three kinds of probe sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentenceKind {
    /// Head+tail sentences, tail hidden.
    T1,
    /// Head-only sentences, a random non-head word hidden.
    T2,
    /// Random sentences of other facts, a random word hidden.
    T3,
}

impl SentenceKind {
    /// All kinds, in order.
    pub const ALL: [SentenceKind; 3] = [SentenceKind::T1, SentenceKind::T2, SentenceKind::T3];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        assert_eq!(
            Summary::of(&[]),
            Summary {
                n: 0,
                mean: None,
                se: None
            }
        );
        assert_eq!(
            Summary::of(&[2.0]),
            Summary {
                n: 1,
                mean: Some(2.0),
                se: None
            }
        );
        let s = Summary::of(&[1.0, 2.0, 3.0, 4.0, f64::NAN]);
        assert_eq!(s.n, 4);
        assert!((s.mean.unwrap() - 2.5).abs() < 1e-12);
        // sd = sqrt(5/3), se = sd / 2
        assert!((s.se.unwrap() - (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
    }

    #[test]
    fn paired_differences() {
        let p = Paired::of(&[
            Triple {
                t1: 3.0,
                t2: 2.0,
                t3: 0.0,
            },
            Triple {
                t1: 5.0,
                t2: 2.0,
                t3: 1.0,
            },
        ]);
        assert_eq!(p.t1_minus_t2.mean, Some(2.0));
        assert_eq!(p.t1_minus_t3.mean, Some(3.5));
        assert_eq!(p.t2_minus_t3.n, 2);
        assert!((p.t1_minus_t2.se.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn triples_index_by_kind() {
        let mut t = Triple {
            t1: 1,
            t2: 2,
            t3: 3,
        };
        *t.get_mut(SentenceKind::T2) += 10;
        assert_eq!(*t.get(SentenceKind::T2), 12);
        assert_eq!(t.map(|k, v| (k, v * 2)).t3, (SentenceKind::T3, 6));
        assert_eq!(serde_json_kind(), "\"t1\"");
    }

    fn serde_json_kind() -> String {
        serde_json::to_string(&SentenceKind::T1).unwrap()
    }
}
