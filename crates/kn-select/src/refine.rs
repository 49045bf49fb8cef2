//! Refinement: from the coarse neurons of a fact's prompts to its knowledge neurons (paper §3.2,
//! step 3), the adaptive sharing threshold of the authors' code, negative examples, and
//! relation-level neurons.
//!
//! **Per fact.** [`FactCounts`] counts, for each neuron, the number of prompts whose coarse set
//! contains it (a prompt counts a neuron once). [`RefineConfig`] then keeps a neuron when its
//! count `c` out of `n` prompts satisfies
//! - [`ShareComparison::MoreThan`] (default, the paper's text, "shared by more than p% of the
//!   prompts"): `c > p * n`; or [`ShareComparison::AtLeast`] (the authors' code): `c >= p * n`;
//! - and `c >= min_count` (default 1; the authors' code uses 3).
//!
//! Facts with fewer than `min_prompts` prompts (default 3) are refused
//! ([`SelectError::TooFewPrompts`]); [`refine_relation`] records them as skipped. Comparisons
//! allow `1e-9` of floating-point slack, so `p = 0.7` with 10 prompts means `c > 7` exactly.
//! With `p = 0` and `MoreThan`, every neuron selected in at least one prompt is kept.
//!
//! **Adaptive p per relation** ([`AdaptiveShare`], as the authors' `2_get_kn.py`): start at
//! `p` (0.7); while the mean number of knowledge neurons per (non-skipped) fact of the relation
//! is outside `[2, 5]`, lower `p` by 0.05 when the mean is below 2 and raise it when above 5.
//! Stops when the mean is in range, when the next `p` would leave `[0.05, 0.95]`, when the
//! direction reverses (the range was stepped over; the last evaluated `p` is kept), or after
//! `max_steps` moves (18 by default: enough to cross the whole range; the authors' code allows
//! 5). The trace of `(p, mean)` is returned.
//!
//! **Negative examples** ([`subtract_other_relations`], off by default): a neuron is removed
//! from a fact of relation `r` when it is a knowledge neuron of more than a fraction `q` of the
//! facts of all *other* relations (refined sets, computed before any removal).
//!
//! **Relation-level neurons** ([`relation_neurons`]): neurons that are knowledge neurons of at
//! least 10% of the relation's facts (`count >= 0.1 * facts`, as the authors' code), with their
//! frequency.

pub use kn_schema::report::discovery::{RelationNeuron, SkippedFact};
use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::coarse::{coarse_select, CoarseRule};
use crate::error::{Result, SelectError};
use crate::neuron::{Neuron, ScoreMatrix};

/// Floating-point slack of the share comparisons.
const EPS: f64 = 1e-9;

/// A neuron and the number of prompts (or facts) that selected it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeuronCount {
    /// The neuron.
    pub neuron: Neuron,
    /// How many prompts selected it.
    pub prompts: usize,
}

/// The aggregated coarse selections of one fact: enough to refine it at any `p`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactCounts {
    /// The fact id (e.g. `P36:12`).
    pub fact: String,
    /// The fact's relation.
    pub relation: String,
    /// The number of prompts.
    pub prompts: usize,
    /// Every neuron selected by at least one prompt, sorted by neuron.
    pub counts: Vec<NeuronCount>,
}

impl FactCounts {
    /// Counts coarse selections (one sorted or unsorted list per prompt; duplicates within a
    /// prompt count once).
    pub fn from_coarse(
        fact: impl Into<String>,
        relation: impl Into<String>,
        coarse: &[Vec<Neuron>],
    ) -> Self {
        let mut counts: BTreeMap<Neuron, usize> = BTreeMap::new();
        for prompt in coarse {
            let mut seen: Vec<Neuron> = prompt.clone();
            seen.sort_unstable();
            seen.dedup();
            for n in seen {
                *counts.entry(n).or_default() += 1;
            }
        }
        Self {
            fact: fact.into(),
            relation: relation.into(),
            prompts: coarse.len(),
            counts: counts
                .into_iter()
                .map(|(neuron, prompts)| NeuronCount { neuron, prompts })
                .collect(),
        }
    }

    /// Coarse-selects each prompt's scores with `rule` and counts the selections.
    pub fn from_scores(
        fact: impl Into<String>,
        relation: impl Into<String>,
        scores: &[ScoreMatrix],
        rule: &CoarseRule,
    ) -> Result<Self> {
        let coarse = scores
            .iter()
            .map(|s| coarse_select(s, rule))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_coarse(fact, relation, &coarse))
    }

    /// The knowledge neurons at `config`, sorted.
    pub fn refine(&self, config: &RefineConfig) -> Result<Vec<Neuron>> {
        config.validate()?;
        if self.prompts < config.min_prompts {
            return Err(SelectError::TooFewPrompts {
                fact: self.fact.clone(),
                prompts: self.prompts,
                required: config.min_prompts,
            });
        }
        Ok(self
            .counts
            .iter()
            .filter(|c| config.keeps(c.prompts, self.prompts))
            .map(|c| c.neuron)
            .collect())
    }
}

/// How the sharing threshold compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareComparison {
    /// `count > p * prompts` (the paper's text).
    MoreThan,
    /// `count >= p * prompts` (the authors' code).
    AtLeast,
}

/// The refinement settings (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RefineConfig {
    /// The sharing fraction `p`, in `[0, 1]` (paper: 0.7).
    pub share: f64,
    /// Strict or non-strict comparison with `p * prompts`.
    pub comparison: ShareComparison,
    /// Facts with fewer prompts are refused (default 3).
    pub min_prompts: usize,
    /// A neuron must be selected by at least this many prompts (default 1; authors' code: 3).
    pub min_count: usize,
}

impl Default for RefineConfig {
    /// The paper's text: `p = 0.7`, "more than", at least 3 prompts.
    fn default() -> Self {
        Self {
            share: 0.7,
            comparison: ShareComparison::MoreThan,
            min_prompts: 3,
            min_count: 1,
        }
    }
}

impl RefineConfig {
    /// The authors' code (`2_get_kn.py`): `count >= max(0.7 * prompts, 3)`; facts with fewer
    /// prompts are not refused (they just get no neuron).
    pub fn paper_code() -> Self {
        Self {
            share: 0.7,
            comparison: ShareComparison::AtLeast,
            min_prompts: 1,
            min_count: 3,
        }
    }

    /// Checks `0 <= share <= 1` ([`SelectError::InvalidConfig`]).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.share) {
            return Err(SelectError::InvalidConfig(format!(
                "share p must be within [0, 1], got {}",
                self.share
            )));
        }
        Ok(())
    }

    /// Whether a neuron selected by `count` of `prompts` prompts is kept.
    pub fn keeps(&self, count: usize, prompts: usize) -> bool {
        let bar = self.share * prompts as f64;
        let c = count as f64;
        let share_ok = match self.comparison {
            ShareComparison::MoreThan => c > bar + EPS,
            ShareComparison::AtLeast => c >= bar - EPS,
        };
        share_ok && count >= self.min_count
    }

    fn with_share(&self, share: f64) -> Self {
        Self { share, ..*self }
    }
}

/// The knowledge neurons of one fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactNeurons {
    /// The fact id.
    pub fact: String,
    /// The fact's relation.
    pub relation: String,
    /// The number of prompts.
    pub prompts: usize,
    /// The sharing fraction `p` used.
    pub share: f64,
    /// The knowledge neurons, sorted.
    pub neurons: Vec<Neuron>,
}

/// Refines one fact from its prompts' coarse selections.
pub fn refine_fact(
    fact: impl Into<String>,
    relation: impl Into<String>,
    coarse: &[Vec<Neuron>],
    config: &RefineConfig,
) -> Result<FactNeurons> {
    let counts = FactCounts::from_coarse(fact, relation, coarse);
    let neurons = counts.refine(config)?;
    Ok(FactNeurons {
        fact: counts.fact,
        relation: counts.relation,
        prompts: counts.prompts,
        share: config.share,
        neurons,
    })
}

/// The adaptive-p search settings (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveShare {
    /// Lower end of the target mean neurons per fact (2).
    pub min_mean: f64,
    /// Upper end of the target mean (5).
    pub max_mean: f64,
    /// How far `p` moves per step (0.05).
    pub step: f64,
    /// The lowest `p` allowed (0.05).
    pub min_share: f64,
    /// The highest `p` allowed (0.95).
    pub max_share: f64,
    /// The most moves (18; the authors' code: 5).
    pub max_steps: usize,
}

impl Default for AdaptiveShare {
    fn default() -> Self {
        Self {
            min_mean: 2.0,
            max_mean: 5.0,
            step: 0.05,
            min_share: 0.05,
            max_share: 0.95,
            max_steps: 18,
        }
    }
}

impl AdaptiveShare {
    /// The authors' code: at most 5 moves.
    pub fn paper_code() -> Self {
        Self {
            max_steps: 5,
            ..Self::default()
        }
    }

    /// Checks the settings ([`SelectError::InvalidConfig`]).
    pub fn validate(&self) -> Result<()> {
        let ok = self.min_mean.is_finite()
            && self.max_mean.is_finite()
            && self.min_mean <= self.max_mean
            && self.step.is_finite()
            && self.step > 0.0
            && 0.0 <= self.min_share
            && self.min_share <= self.max_share
            && self.max_share <= 1.0;
        if ok {
            Ok(())
        } else {
            Err(SelectError::InvalidConfig(format!(
                "adaptive share needs finite min_mean <= max_mean, step > 0 and 0 <= min_share <= max_share <= 1, got {self:?}"
            )))
        }
    }
}

/// Why the adaptive search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdaptiveStop {
    /// No adaptive search was requested.
    Fixed,
    /// The mean reached the target range.
    InRange,
    /// The next `p` would leave `[min_share, max_share]`.
    AtBound,
    /// The mean jumped across the range; the last evaluated `p` is kept.
    Reversed,
    /// `max_steps` moves were made.
    MaxSteps,
    /// No fact could be refined (all skipped, or none given).
    NoFacts,
}

/// One evaluated `p` and the mean neurons per fact it gave.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShareStep {
    /// The sharing fraction.
    pub share: f64,
    /// The mean number of knowledge neurons per refined fact.
    pub mean_neurons: f64,
}

/// The refinement of one relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationRefinement {
    /// The relation id.
    pub relation: String,
    /// The final `p`.
    pub share: f64,
    /// Every evaluated `p`, in order (one entry without adaptive search).
    pub trace: Vec<ShareStep>,
    /// Why the search stopped.
    pub stop: AdaptiveStop,
    /// The refined facts, in input order.
    pub facts: Vec<FactNeurons>,
    /// Facts refused (too few prompts).
    pub skipped: Vec<SkippedFact>,
    /// The mean number of knowledge neurons per refined fact at the final `p` (0 if none).
    pub mean_neurons: f64,
}

impl RelationRefinement {
    /// The relation-level neurons (see [`relation_neurons`]).
    pub fn relation_neurons(&self, min_fraction: f64) -> Vec<RelationNeuron> {
        relation_neurons(&self.facts, min_fraction)
    }
}

/// Rounds to 12 decimals so that `0.7 - 0.05` is stored as `0.65`.
fn tidy(x: f64) -> f64 {
    (x * 1e12).round() / 1e12
}

/// Refines the facts of one relation, with an adaptive `p` when `adaptive` is given.
pub fn refine_relation(
    relation: &str,
    facts: &[FactCounts],
    config: &RefineConfig,
    adaptive: Option<&AdaptiveShare>,
) -> Result<RelationRefinement> {
    config.validate()?;
    if let Some(a) = adaptive {
        a.validate()?;
        if config.share < a.min_share - EPS || config.share > a.max_share + EPS {
            return Err(SelectError::InvalidConfig(format!(
                "starting share {} lies outside the adaptive bounds [{}, {}]",
                config.share, a.min_share, a.max_share
            )));
        }
    }
    if let Some(f) = facts.iter().find(|f| f.relation != relation) {
        return Err(SelectError::MixedRelations {
            fact: f.fact.clone(),
            expected: relation.to_string(),
            found: f.relation.clone(),
        });
    }
    let (usable, skipped): (Vec<&FactCounts>, Vec<&FactCounts>) =
        facts.iter().partition(|f| f.prompts >= config.min_prompts);
    let skipped: Vec<SkippedFact> = skipped
        .into_iter()
        .map(|f| SkippedFact {
            fact: f.fact.clone(),
            reason: format!(
                "{} prompts, refinement needs at least {}",
                f.prompts, config.min_prompts
            ),
        })
        .collect();
    let evaluate = |share: f64| -> Result<(Vec<FactNeurons>, f64)> {
        let cfg = config.with_share(share);
        let refined = usable
            .iter()
            .map(|f| {
                Ok(FactNeurons {
                    fact: f.fact.clone(),
                    relation: f.relation.clone(),
                    prompts: f.prompts,
                    share,
                    neurons: f.refine(&cfg)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mean = if refined.is_empty() {
            0.0
        } else {
            refined.iter().map(|f| f.neurons.len()).sum::<usize>() as f64 / refined.len() as f64
        };
        Ok((refined, mean))
    };

    let mut share = config.share;
    let (mut refined, mut mean) = evaluate(share)?;
    let mut trace = vec![ShareStep {
        share,
        mean_neurons: mean,
    }];
    let stop = match adaptive {
        None => AdaptiveStop::Fixed,
        Some(_) if usable.is_empty() => AdaptiveStop::NoFacts,
        Some(a) => {
            let mut previous: Option<f64> = None;
            let mut moves = 0;
            loop {
                if mean >= a.min_mean - EPS && mean <= a.max_mean + EPS {
                    break AdaptiveStop::InRange;
                }
                // Too few neurons: lower the bar; too many: raise it.
                let direction = if mean < a.min_mean { -1.0 } else { 1.0 };
                if previous.is_some_and(|d| d != direction) {
                    break AdaptiveStop::Reversed;
                }
                if moves == a.max_steps {
                    break AdaptiveStop::MaxSteps;
                }
                let next = tidy(share + direction * a.step);
                if next < a.min_share - EPS || next > a.max_share + EPS {
                    break AdaptiveStop::AtBound;
                }
                share = next;
                (refined, mean) = evaluate(share)?;
                trace.push(ShareStep {
                    share,
                    mean_neurons: mean,
                });
                previous = Some(direction);
                moves += 1;
            }
        }
    };
    Ok(RelationRefinement {
        relation: relation.to_string(),
        share,
        trace,
        stop,
        facts: refined,
        skipped,
        mean_neurons: mean,
    })
}

/// Refines every relation (facts grouped by their `relation` field; relations in natural id
/// order, `P19 < P36 < P101`), relations in parallel.
pub fn refine_all(
    facts: &[FactCounts],
    config: &RefineConfig,
    adaptive: Option<&AdaptiveShare>,
) -> Result<Vec<RelationRefinement>> {
    let mut groups: Vec<(String, Vec<FactCounts>)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for f in facts {
        let i = *position.entry(f.relation.as_str()).or_insert_with(|| {
            groups.push((f.relation.clone(), Vec::new()));
            groups.len() - 1
        });
        if let Some(group) = groups.get_mut(i) {
            group.1.push(f.clone());
        }
    }
    groups.sort_by(|a, b| compare_relations(&a.0, &b.0));
    groups
        .par_iter()
        .map(|(relation, group)| refine_relation(relation, group, config, adaptive))
        .collect()
}

/// Natural order of relation ids (`P<digits>` by number first, then other ids by string);
/// the dataset crate's definition, re-exported so selection and data agree on one order.
pub use kn_data::compare_relations;

/// The negative-example filter (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NegativeFilter {
    /// `q`: remove a neuron shared by more than this fraction of other relations' facts.
    pub max_fraction: f64,
}

/// What the negative-example filter removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegativeReport {
    /// Neuron memberships removed in all (a neuron removed from 3 facts counts 3).
    pub removed: usize,
    /// Removals per relation, in the order given.
    pub per_relation: Vec<(String, usize)>,
}

/// Removes, from every fact, the neurons that are knowledge neurons of more than
/// `filter.max_fraction` of the facts of the other relations. Mean counts are updated; the
/// trace is not.
pub fn subtract_other_relations(
    relations: &mut [RelationRefinement],
    filter: &NegativeFilter,
) -> Result<NegativeReport> {
    if !(0.0..=1.0).contains(&filter.max_fraction) {
        return Err(SelectError::InvalidConfig(format!(
            "negative filter fraction q must be within [0, 1], got {}",
            filter.max_fraction
        )));
    }
    let count = |facts: &[FactNeurons]| -> HashMap<Neuron, usize> {
        let mut c = HashMap::new();
        for f in facts {
            let mut set = f.neurons.clone();
            set.sort_unstable();
            set.dedup();
            for n in set {
                *c.entry(n).or_insert(0) += 1;
            }
        }
        c
    };
    let per_relation: Vec<HashMap<Neuron, usize>> =
        relations.par_iter().map(|r| count(&r.facts)).collect();
    let mut global: HashMap<Neuron, usize> = HashMap::new();
    for c in &per_relation {
        for (n, k) in c {
            *global.entry(*n).or_insert(0) += k;
        }
    }
    let total: usize = relations.iter().map(|r| r.facts.len()).sum();
    let mut report = NegativeReport {
        removed: 0,
        per_relation: Vec::new(),
    };
    for (relation, own) in relations.iter_mut().zip(&per_relation) {
        let others = total - relation.facts.len();
        let mut removed = 0;
        if others > 0 {
            for fact in &mut relation.facts {
                let before = fact.neurons.len();
                fact.neurons.retain(|n| {
                    let elsewhere =
                        global.get(n).copied().unwrap_or(0) - own.get(n).copied().unwrap_or(0);
                    elsewhere as f64 <= filter.max_fraction * others as f64 + EPS
                });
                removed += before - fact.neurons.len();
            }
            if !relation.facts.is_empty() {
                relation.mean_neurons = relation
                    .facts
                    .iter()
                    .map(|f| f.neurons.len())
                    .sum::<usize>() as f64
                    / relation.facts.len() as f64;
            }
        }
        report.removed += removed;
        report
            .per_relation
            .push((relation.relation.clone(), removed));
    }
    Ok(report)
}

/// The neurons that are knowledge neurons of at least `min_fraction` (paper code: 0.1) of
/// `facts` (`count >= min_fraction * facts`, and at least one fact), most frequent first, ties
/// by neuron.
pub fn relation_neurons(facts: &[FactNeurons], min_fraction: f64) -> Vec<RelationNeuron> {
    if facts.is_empty() {
        return Vec::new();
    }
    let mut counts: BTreeMap<Neuron, usize> = BTreeMap::new();
    for f in facts {
        let mut set = f.neurons.clone();
        set.sort_unstable();
        set.dedup();
        for n in set {
            *counts.entry(n).or_default() += 1;
        }
    }
    let n = facts.len() as f64;
    let mut out: Vec<RelationNeuron> = counts
        .into_iter()
        .filter(|&(_, c)| c as f64 >= min_fraction * n - EPS)
        .map(|(neuron, c)| RelationNeuron {
            neuron,
            facts: c,
            frequency: c as f64 / n,
        })
        .collect();
    out.sort_by(|a, b| b.facts.cmp(&a.facts).then(a.neuron.cmp(&b.neuron)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(layer: usize, index: usize) -> Neuron {
        Neuron::new(layer, index)
    }

    /// A fact with 10 prompts where neuron (0, k) is selected by k prompts, k = 1..=10.
    fn staircase(fact: &str, relation: &str) -> FactCounts {
        let coarse: Vec<Vec<Neuron>> = (0..10)
            .map(|p| (1..=10).filter(|&k| k > p).map(|k| n(0, k)).collect())
            .collect();
        FactCounts::from_coarse(fact, relation, &coarse)
    }

    #[test]
    fn counts_dedupe_within_a_prompt() {
        let c =
            FactCounts::from_coarse("f", "r", &[vec![n(1, 2), n(1, 2), n(0, 5)], vec![n(1, 2)]]);
        assert_eq!(c.prompts, 2);
        assert_eq!(
            c.counts,
            [
                NeuronCount {
                    neuron: n(0, 5),
                    prompts: 1
                },
                NeuronCount {
                    neuron: n(1, 2),
                    prompts: 2
                }
            ]
        );
    }

    #[test]
    fn paper_default_is_strict() {
        let c = staircase("f", "r");
        assert_eq!(
            c.counts
                .iter()
                .find(|x| x.neuron == n(0, 7))
                .unwrap()
                .prompts,
            7
        );
        // p = 0.7 of 10 prompts: more than 7 -> counts 8, 9, 10.
        assert_eq!(
            c.refine(&RefineConfig::default()).unwrap(),
            [n(0, 8), n(0, 9), n(0, 10)]
        );
        // The authors' code: at least 7 (and at least 3).
        assert_eq!(c.refine(&RefineConfig::paper_code()).unwrap().len(), 4);
        let zero = RefineConfig {
            share: 0.0,
            ..RefineConfig::default()
        };
        assert_eq!(c.refine(&zero).unwrap().len(), 10);
        let all = RefineConfig {
            share: 1.0,
            comparison: ShareComparison::AtLeast,
            ..RefineConfig::default()
        };
        assert_eq!(c.refine(&all).unwrap(), [n(0, 10)]);
        let one = RefineConfig {
            share: 1.0,
            ..RefineConfig::default()
        };
        assert!(c.refine(&one).unwrap().is_empty());
        let min3 = RefineConfig {
            share: 0.0,
            min_count: 3,
            ..RefineConfig::default()
        };
        assert_eq!(c.refine(&min3).unwrap().len(), 8);
    }

    #[test]
    fn too_few_prompts_and_bad_share() {
        let c = FactCounts::from_coarse("P1:0", "P1", &[vec![n(0, 0)], vec![n(0, 0)]]);
        assert_eq!(
            c.refine(&RefineConfig::default()),
            Err(SelectError::TooFewPrompts {
                fact: "P1:0".into(),
                prompts: 2,
                required: 3
            })
        );
        assert!(c.refine(&RefineConfig::paper_code()).unwrap().is_empty());
        let bad = RefineConfig {
            share: 1.5,
            ..RefineConfig::default()
        };
        assert!(matches!(c.refine(&bad), Err(SelectError::InvalidConfig(_))));
        let nan = RefineConfig {
            share: f64::NAN,
            ..RefineConfig::default()
        };
        assert!(matches!(c.refine(&nan), Err(SelectError::InvalidConfig(_))));
        let fact = refine_fact(
            "P1:1",
            "P1",
            &vec![vec![n(0, 0)]; 4],
            &RefineConfig::default(),
        )
        .unwrap();
        assert_eq!(fact.neurons, [n(0, 0)]);
        assert_eq!(fact.share, 0.7);
    }

    #[test]
    fn adaptive_share_moves_down_until_in_range() {
        // Staircase: at p the strict rule keeps the counts > 10p, i.e. 10 - floor(10p + eps)
        // neurons: p=0.7 -> 3 (in range).
        let facts = vec![staircase("r:0", "r"), staircase("r:1", "r")];
        let r = refine_relation(
            "r",
            &facts,
            &RefineConfig::default(),
            Some(&AdaptiveShare::default()),
        )
        .unwrap();
        assert_eq!(r.stop, AdaptiveStop::InRange);
        assert_eq!(r.trace.len(), 1);
        assert_eq!(r.mean_neurons, 3.0);
        // Start at 0.9 (1 neuron): must move down to 0.85 (2 neurons).
        let start = RefineConfig {
            share: 0.9,
            ..RefineConfig::default()
        };
        let r = refine_relation("r", &facts, &start, Some(&AdaptiveShare::default())).unwrap();
        assert_eq!(r.stop, AdaptiveStop::InRange);
        assert_eq!(
            r.trace.iter().map(|s| s.share).collect::<Vec<_>>(),
            [0.9, 0.85]
        );
        assert_eq!(r.share, 0.85);
        assert_eq!(r.mean_neurons, 2.0);
        assert!(r
            .facts
            .iter()
            .all(|f| f.share == 0.85 && f.neurons.len() == 2));
        // Start at 0.1 (9 neurons): up to 0.5 (5 neurons).
        let start = RefineConfig {
            share: 0.1,
            ..RefineConfig::default()
        };
        let r = refine_relation("r", &facts, &start, Some(&AdaptiveShare::default())).unwrap();
        assert_eq!(r.share, 0.5);
        assert_eq!(r.mean_neurons, 5.0);
        assert_eq!(r.trace.len(), 9);
        // Authors' code: at most 5 moves (6 evaluations).
        let r = refine_relation("r", &facts, &start, Some(&AdaptiveShare::paper_code())).unwrap();
        assert_eq!(r.trace.len(), 6);
        assert_eq!(
            (r.stop, r.share, r.mean_neurons),
            (AdaptiveStop::MaxSteps, 0.35, 7.0)
        );
        let r = refine_relation(
            "r",
            &facts,
            &start,
            Some(&AdaptiveShare {
                max_steps: 2,
                ..AdaptiveShare::default()
            }),
        )
        .unwrap();
        assert_eq!(r.stop, AdaptiveStop::MaxSteps);
        assert_eq!(r.share, 0.2);
    }

    #[test]
    fn adaptive_share_stops_at_bounds_and_reversals() {
        // One neuron in every prompt: the mean is 1 at every p < 1: p walks down to the bound.
        let facts = vec![FactCounts::from_coarse("r:0", "r", &vec![vec![n(0, 0)]; 5])];
        let r = refine_relation(
            "r",
            &facts,
            &RefineConfig::default(),
            Some(&AdaptiveShare::default()),
        )
        .unwrap();
        assert_eq!(r.stop, AdaptiveStop::AtBound);
        assert_eq!(r.share, 0.05);
        assert_eq!(r.trace.len(), 14);
        // Six neurons in all 5 prompts: mean 6 > 5 at every p < 1, so p climbs to 0.95.
        let coarse: Vec<Vec<Neuron>> = (0..5).map(|_| (0..6).map(|k| n(1, k)).collect()).collect();
        let facts = vec![FactCounts::from_coarse("r:0", "r", &coarse)];
        let r = refine_relation(
            "r",
            &facts,
            &RefineConfig::default(),
            Some(&AdaptiveShare::default()),
        )
        .unwrap();
        assert_eq!((r.stop, r.share), (AdaptiveStop::AtBound, 0.95));
        // 7 neurons in 4 of 5 prompts, one of them in all 5: p=0.75 -> 7 (> 5), p=0.8 -> 1 (< 2).
        let mut coarse: Vec<Vec<Neuron>> =
            (0..4).map(|_| (0..7).map(|k| n(2, k)).collect()).collect();
        coarse.push(vec![n(2, 0)]);
        let facts = vec![FactCounts::from_coarse("r:0", "r", &coarse)];
        let start = RefineConfig {
            share: 0.75,
            ..RefineConfig::default()
        };
        let r = refine_relation("r", &facts, &start, Some(&AdaptiveShare::default())).unwrap();
        assert_eq!(r.stop, AdaptiveStop::Reversed);
        assert_eq!(
            r.trace
                .iter()
                .map(|s| (s.share, s.mean_neurons))
                .collect::<Vec<_>>(),
            [(0.75, 7.0), (0.8, 1.0)]
        );
    }

    #[test]
    fn relation_level_errors_and_skips() {
        let facts = vec![
            staircase("r:0", "r"),
            FactCounts::from_coarse("r:1", "r", &[vec![n(0, 1)]]),
        ];
        let r = refine_relation(
            "r",
            &facts,
            &RefineConfig::default(),
            Some(&AdaptiveShare::default()),
        )
        .unwrap();
        assert_eq!(r.facts.len(), 1);
        assert_eq!(
            r.skipped,
            [SkippedFact {
                fact: "r:1".into(),
                reason: "1 prompts, refinement needs at least 3".into()
            }]
        );
        let only_skipped = refine_relation(
            "r",
            &facts[1..],
            &RefineConfig::default(),
            Some(&AdaptiveShare::default()),
        )
        .unwrap();
        assert_eq!(only_skipped.stop, AdaptiveStop::NoFacts);
        assert_eq!(only_skipped.mean_neurons, 0.0);
        assert!(matches!(
            refine_relation("q", &facts, &RefineConfig::default(), None),
            Err(SelectError::MixedRelations { .. })
        ));
        let outside = RefineConfig {
            share: 0.99,
            ..RefineConfig::default()
        };
        assert!(matches!(
            refine_relation("r", &facts, &outside, Some(&AdaptiveShare::default())),
            Err(SelectError::InvalidConfig(_))
        ));
        let bad = AdaptiveShare {
            step: 0.0,
            ..AdaptiveShare::default()
        };
        assert!(matches!(
            refine_relation("r", &facts, &RefineConfig::default(), Some(&bad)),
            Err(SelectError::InvalidConfig(_))
        ));
        let fixed = refine_relation("r", &facts, &RefineConfig::default(), None).unwrap();
        assert_eq!(fixed.stop, AdaptiveStop::Fixed);
    }

    #[test]
    fn refine_all_groups_in_natural_order() {
        let facts = vec![
            staircase("P101:0", "P101"),
            staircase("P36:0", "P36"),
            staircase("P36:1", "P36"),
            staircase("P19:0", "P19"),
        ];
        let all = refine_all(&facts, &RefineConfig::default(), None).unwrap();
        assert_eq!(
            all.iter().map(|r| r.relation.as_str()).collect::<Vec<_>>(),
            ["P19", "P36", "P101"]
        );
        assert_eq!(all[1].facts.len(), 2);
    }

    fn fact(id: &str, relation: &str, neurons: &[Neuron]) -> FactNeurons {
        FactNeurons {
            fact: id.into(),
            relation: relation.into(),
            prompts: 5,
            share: 0.7,
            neurons: neurons.to_vec(),
        }
    }

    fn relation(id: &str, facts: Vec<FactNeurons>) -> RelationRefinement {
        RelationRefinement {
            relation: id.into(),
            share: 0.7,
            trace: vec![],
            stop: AdaptiveStop::Fixed,
            mean_neurons: 0.0,
            facts,
            skipped: vec![],
        }
    }

    #[test]
    fn negative_filter_removes_neurons_common_elsewhere() {
        let shared = n(9, 9);
        let mut rels = vec![
            relation(
                "a",
                vec![
                    fact("a:0", "a", &[shared, n(0, 1)]),
                    fact("a:1", "a", &[n(0, 2)]),
                ],
            ),
            relation(
                "b",
                vec![
                    fact("b:0", "b", &[shared]),
                    fact("b:1", "b", &[shared, n(0, 1)]),
                ],
            ),
        ];
        // For a:0, `shared` is in 2 of 2 facts of b (> 0.5): removed; n(0,1) in 1 of 2: kept.
        // For b's facts, `shared` is in 1 of 2 facts of a (not > 0.5): kept.
        let report =
            subtract_other_relations(&mut rels, &NegativeFilter { max_fraction: 0.5 }).unwrap();
        assert_eq!(report.removed, 1);
        assert_eq!(
            report.per_relation,
            [("a".to_string(), 1), ("b".to_string(), 0)]
        );
        assert_eq!(rels[0].facts[0].neurons, [n(0, 1)]);
        assert_eq!(rels[0].mean_neurons, 1.0);
        assert_eq!(rels[1].facts[0].neurons, [shared]);
        // q = 1 removes nothing; q = 0 removes anything seen elsewhere (here n(0,1) from a:0 and
        // b:1; `shared` is no longer in a).
        let mut again = rels.clone();
        assert_eq!(
            subtract_other_relations(&mut again, &NegativeFilter { max_fraction: 1.0 })
                .unwrap()
                .removed,
            0
        );
        assert_eq!(
            subtract_other_relations(&mut again, &NegativeFilter { max_fraction: 0.0 })
                .unwrap()
                .removed,
            2
        );
        assert!(
            subtract_other_relations(&mut again, &NegativeFilter { max_fraction: 2.0 }).is_err()
        );
    }

    #[test]
    fn relation_neurons_need_ten_percent() {
        let mut facts: Vec<FactNeurons> = (0..20)
            .map(|i| fact(&format!("r:{i}"), "r", &[n(0, i)]))
            .collect();
        facts[0].neurons.push(n(5, 5));
        facts[1].neurons.push(n(5, 5));
        facts[2].neurons.push(n(6, 6));
        let rel = relation_neurons(&facts, 0.1);
        assert_eq!(
            rel,
            [RelationNeuron {
                neuron: n(5, 5),
                facts: 2,
                frequency: 0.1
            }]
        );
        assert_eq!(relation_neurons(&facts, 0.0).len(), 22);
        assert!(relation_neurons(&[], 0.1).is_empty());
        let r = relation("r", facts);
        assert_eq!(r.relation_neurons(0.1).len(), 1);
    }

    #[test]
    fn results_round_trip_through_json() {
        let facts = vec![staircase("r:0", "r")];
        let r = refine_relation(
            "r",
            &facts,
            &RefineConfig::default(),
            Some(&AdaptiveShare::default()),
        )
        .unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            serde_json::from_str::<RelationRefinement>(&json).unwrap(),
            r
        );
        let cfg = serde_json::to_string(&RefineConfig::default()).unwrap();
        assert_eq!(
            cfg,
            r#"{"share":0.7,"comparison":"more_than","min_prompts":3,"min_count":1}"#
        );
    }

    #[test]
    fn relations_sort_naturally() {
        let mut r = vec!["P101", "P27", "X", "P36", "P", "P019", "P19"];
        r.sort_by(|a, b| compare_relations(a, b));
        assert_eq!(r, ["P019", "P19", "P27", "P36", "P101", "P", "X"]); // same number: by text
    }
}
