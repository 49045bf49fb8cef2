//! Choosing which facts to run on: relation lists, prompt counts, seeded sampling, sharding and
//! a caller-supplied predicate.
//!
//! [`FactSelection`] is a chain of steps over a [`Dataset`]'s facts, each keeping the facts in
//! id order, so the caller picks the order of the steps:
//!
//! ```
//! use kn_data::{Pararel, PromptStyle};
//! let data = Pararel::load_bundled().unwrap();
//! let chosen = data
//!     .select()
//!     .relations(&["P36", "P19"]).unwrap()
//!     .min_prompts(4, &PromptStyle::Causal)
//!     .retain(|fact| fact.object.len() > 2) // e.g. "the model answers it" in kn-cli
//!     .sample_per_relation(10, 42)
//!     .shard(0, 2).unwrap();
//! assert_eq!(chosen.len(), 10);
//! ```
//!
//! Filters that need a model (the answer is a single token, the model gets the fact right) do
//! not live in this crate: kn-cli passes them as the [`FactSelection::retain`] /
//! [`FactSelection::try_retain`] predicate. [`FactFilter`] is the serializable form of the
//! model-free steps, applied in a fixed order, for recording a run's configuration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::fact::{Fact, FactId, PromptStyle};
use crate::seed::{rng_for, sample_indices};

/// An ordered subset of a dataset's facts (always sorted by [`FactId`], no duplicates).
#[derive(Debug, Clone)]
pub struct FactSelection<'a> {
    dataset: &'a Dataset,
    facts: Vec<&'a Fact>,
}

impl<'a> FactSelection<'a> {
    /// Every fact of the dataset.
    pub fn new(dataset: &'a Dataset) -> Self {
        Self {
            dataset,
            facts: dataset.facts().iter().collect(),
        }
    }

    /// Keeps the facts of the listed relations. An id the dataset does not have is
    /// [`DataError::UnknownRelation`] (listing the valid ids); duplicates are harmless.
    pub fn relations<S: AsRef<str>>(mut self, relations: &[S]) -> Result<Self> {
        for relation in relations {
            self.dataset.relation(relation.as_ref())?;
        }
        self.facts
            .retain(|f| relations.iter().any(|r| r.as_ref() == f.relation()));
        Ok(self)
    }

    /// Keeps facts that have at least `min` prompts in `style` (causal prompts need templates
    /// that end in `[Y]`, so they are fewer).
    pub fn min_prompts(mut self, min: usize, style: &PromptStyle) -> Self {
        let dataset = self.dataset;
        self.facts.retain(|f| dataset.prompt_count(f, style) >= min);
        self
    }

    /// Keeps the facts for which `keep` returns true (the hook for model-dependent filters).
    pub fn retain<F: FnMut(&Fact) -> bool>(mut self, mut keep: F) -> Self {
        self.facts.retain(|f| keep(f));
        self
    }

    /// Like [`FactSelection::retain`] with a fallible predicate; stops at the first error.
    pub fn try_retain<E, F: FnMut(&Fact) -> std::result::Result<bool, E>>(
        mut self,
        mut keep: F,
    ) -> std::result::Result<Self, E> {
        let mut kept = Vec::with_capacity(self.facts.len());
        for fact in self.facts {
            if keep(fact)? {
                kept.push(fact);
            }
        }
        self.facts = kept;
        Ok(self)
    }

    /// Keeps at most `n` facts of each relation, drawn uniformly without replacement.
    ///
    /// Deterministic on every platform: each relation's candidates (in id order) are sampled
    /// with a ChaCha8 generator seeded from `(seed, relation id)` (see [`crate::seed`]), so a
    /// relation's sample does not depend on which other relations are selected. Relations with
    /// at most `n` facts are kept whole.
    pub fn sample_per_relation(mut self, n: usize, seed: u64) -> Self {
        let mut kept: Vec<&'a Fact> = Vec::with_capacity(self.facts.len());
        for group in self.facts.chunk_by(|a, b| a.relation() == b.relation()) {
            let Some(first) = group.first() else { continue };
            let mut rng = rng_for(seed, first.relation());
            let mut picks = sample_indices(&mut rng, group.len(), n);
            picks.sort_unstable();
            kept.extend(picks.into_iter().filter_map(|i| group.get(i).copied()));
        }
        self.facts = kept;
        self
    }

    /// Keeps shard `index` of `count` (0-based): the facts at positions `index`, `index +
    /// count`, ... of the current (id-sorted) selection. The `count` shards of one selection
    /// cover every fact exactly once and differ in size by at most one. All shards must be cut
    /// from the same selection (same dataset, steps and seed).
    pub fn shard(mut self, index: usize, count: usize) -> Result<Self> {
        Shard::new(index, count)?;
        self.facts = self
            .facts
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % count == index)
            .map(|(_, f)| f)
            .collect();
        Ok(self)
    }

    /// The selected facts, in id order.
    pub fn facts(&self) -> &[&'a Fact] {
        &self.facts
    }

    /// The ids of the selected facts, in order.
    pub fn ids(&self) -> Vec<FactId> {
        self.facts.iter().map(|f| f.id.clone()).collect()
    }

    /// The number of selected facts.
    pub fn len(&self) -> usize {
        self.facts.len()
    }

    /// Whether no fact is selected.
    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }

    /// The dataset the facts come from.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }

    /// The selected facts.
    pub fn into_facts(self) -> Vec<&'a Fact> {
        self.facts
    }
}

/// A shard specification `index/count`, 0-based (`"2/8"` is the third of eight shards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The 0-based shard index, `< count`.
    pub index: usize,
    /// The number of shards, `>= 1`.
    pub count: usize,
}

impl Shard {
    /// Validates `0 <= index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(DataError::InvalidShard { index, count });
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `INDEX/COUNT`, e.g. `0/4`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid shard {s:?}: expected INDEX/COUNT, e.g. 0/4"))?;
        let parse = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|e| format!("invalid shard {s:?}: {e}"))
        };
        Shard::new(parse(i)?, parse(n)?).map_err(|e| e.to_string())
    }
}

/// The model-free selection steps as a serializable configuration.
///
/// [`FactFilter::apply_with`] runs, in this order: relations, minimum prompt count, the
/// caller's predicate, per-relation sampling, sharding. Unset steps are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactFilter {
    /// Relations to keep (`None`: all).
    pub relations: Option<Vec<String>>,
    /// Minimum number of prompts a fact must have in the run's prompt style.
    pub min_prompts: Option<usize>,
    /// Facts to sample per relation (`None`: all).
    pub per_relation: Option<usize>,
    /// The seed of the per-relation sampling.
    pub seed: u64,
    /// The shard to keep (`None`: all).
    pub shard: Option<Shard>,
}

impl FactFilter {
    /// Applies the steps with no predicate.
    pub fn apply<'a>(
        &self,
        dataset: &'a Dataset,
        style: &PromptStyle,
    ) -> Result<FactSelection<'a>> {
        self.apply_with(dataset, style, |_| true)
    }

    /// Applies the steps, with `keep` between the prompt-count filter and sampling.
    pub fn apply_with<'a, F: FnMut(&Fact) -> bool>(
        &self,
        dataset: &'a Dataset,
        style: &PromptStyle,
        keep: F,
    ) -> Result<FactSelection<'a>> {
        let mut selection = dataset.select();
        if let Some(relations) = &self.relations {
            selection = selection.relations(relations)?;
        }
        if let Some(min) = self.min_prompts {
            selection = selection.min_prompts(min, style);
        }
        selection = selection.retain(keep);
        if let Some(n) = self.per_relation {
            selection = selection.sample_per_relation(n, self.seed);
        }
        if let Some(shard) = self.shard {
            selection = selection.shard(shard.index, shard.count)?;
        }
        Ok(selection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserFacts;

    fn data() -> Dataset {
        let mut text = String::new();
        for (rel, n) in [("P19", 7), ("P36", 12), ("P101", 3)] {
            for i in 0..n {
                let templates = if i % 2 == 0 {
                    r#"["[X] a [Y]", "[Y] b [X]"]"#
                } else {
                    r#"["[X] a [Y]"]"#
                };
                text.push_str(&format!(
                    "{{\"relation\": \"{rel}\", \"subject\": \"s{i}\", \"object\": \"o{i}\", \"templates\": {templates}}}\n"
                ));
            }
        }
        UserFacts::parse(&text, "t").unwrap()
    }

    #[test]
    fn relations_filter_and_unknown_relation() {
        let d = data();
        let s = d.select().relations(&["P36", "P19", "P36"]).unwrap();
        assert_eq!(s.len(), 19);
        assert_eq!(s.facts()[0].id.to_string(), "P19:0");
        match d.select().relations(&["P36", "P999"]) {
            Err(DataError::UnknownRelation { relation, valid }) => {
                assert_eq!(relation, "P999");
                assert_eq!(valid, ["P19", "P36", "P101"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn min_prompts_counts_style_specific_prompts() {
        let d = data();
        let masked = PromptStyle::Masked {
            mask_token: "[MASK]".into(),
        };
        assert_eq!(d.select().min_prompts(2, &masked).len(), 4 + 6 + 2);
        assert_eq!(d.select().min_prompts(2, &PromptStyle::Causal).len(), 0);
        assert_eq!(d.select().min_prompts(1, &PromptStyle::Causal).len(), 22);
    }

    #[test]
    fn sampling_is_seeded_and_per_relation() {
        let d = data();
        let a = d.select().sample_per_relation(5, 1).ids();
        let b = d.select().sample_per_relation(5, 1).ids();
        assert_eq!(a, b);
        assert_eq!(a.len(), 5 + 5 + 3);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        // A relation's sample does not depend on the other relations being present.
        let only = d
            .select()
            .relations(&["P36"])
            .unwrap()
            .sample_per_relation(5, 1)
            .ids();
        assert_eq!(
            only,
            a.iter()
                .filter(|id| id.relation == "P36")
                .cloned()
                .collect::<Vec<_>>()
        );
        let other_seed: Vec<Vec<FactId>> = (2..6)
            .map(|s| {
                d.select()
                    .relations(&["P36"])
                    .unwrap()
                    .sample_per_relation(5, s)
                    .ids()
            })
            .collect();
        assert!(other_seed.iter().any(|o| *o != only));
    }

    #[test]
    fn shards_partition_the_selection() {
        let d = data();
        let all = d.select().ids();
        for count in 1..=25 {
            let mut seen = Vec::new();
            let mut sizes = Vec::new();
            for index in 0..count {
                let ids = d.select().shard(index, count).unwrap().ids();
                sizes.push(ids.len());
                seen.extend(ids);
            }
            seen.sort();
            assert_eq!(seen, all, "count {count}");
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
        assert!(matches!(
            d.select().shard(3, 3),
            Err(DataError::InvalidShard { .. })
        ));
        assert!(matches!(
            d.select().shard(0, 0),
            Err(DataError::InvalidShard { .. })
        ));
    }

    #[test]
    fn shard_parses() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        assert_eq!(Shard::new(2, 8).unwrap().to_string(), "2/8");
        assert!("8/8".parse::<Shard>().is_err());
        assert!("x/8".parse::<Shard>().is_err());
        assert!("3".parse::<Shard>().is_err());
    }

    #[test]
    fn retain_hooks() {
        let d = data();
        assert_eq!(d.select().retain(|f| f.id.index == 0).len(), 3);
        let r: std::result::Result<FactSelection<'_>, String> = d.select().try_retain(|f| {
            if f.id.index < 5 {
                Ok(true)
            } else {
                Err(format!("boom at {}", f.id))
            }
        });
        assert_eq!(r.unwrap_err(), "boom at P19:5");
        assert_eq!(
            d.select()
                .try_retain(|f| Ok::<_, ()>(f.id.index < 2))
                .unwrap()
                .len(),
            6
        );
    }

    #[test]
    fn filter_config_applies_in_order() {
        let d = data();
        let filter = FactFilter {
            relations: Some(vec!["P36".into(), "P101".into()]),
            min_prompts: Some(2),
            per_relation: Some(4),
            seed: 9,
            shard: Some(Shard { index: 1, count: 2 }),
        };
        let masked = PromptStyle::Masked {
            mask_token: "[MASK]".into(),
        };
        let got = filter.apply(&d, &masked).unwrap();
        // P36: 6 facts with two templates -> 4 sampled; P101: 2 -> 2; 6 in all, shard 1/2 -> 3.
        assert_eq!(got.len(), 3);
        let json = serde_json::to_string(&filter).unwrap();
        assert_eq!(serde_json::from_str::<FactFilter>(&json).unwrap(), filter);
        let with = filter
            .apply_with(&d, &masked, |f| f.relation() == "P101")
            .unwrap();
        assert_eq!(with.len(), 1);
        assert!(FactFilter::default().apply(&d, &masked).unwrap().len() == 22);
    }
}
