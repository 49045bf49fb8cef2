//! The paper's suppression/amplification experiment (Dai et al. 2022, section 4.3) as a library
//! function: [`suppress_amplify_experiment`].
//!
//! Input: facts ([`EncodedFact`]), each with its prompts (encoded with the answer) and its
//! knowledge neurons, tagged with their relation. For every fact with at least one knowledge
//! neuron, the activations of a neuron set at the answer position are suppressed
//! (`Scale(suppress_factor)`, default 0) and amplified (`Scale(amplify_factor)`, default 2) and
//! the change of the correct answer's probability is measured, under four conditions:
//!
//! - `own`: the fact's own knowledge neurons, on the fact's prompts;
//! - `other_relations`: the same neurons on the prompts of up to `other_relation_facts` facts of
//!   *other* relations, drawn with the seed (key `other-relations/<relation>/<id>`); the
//!   paper's code draws one;
//! - `random`: as many random neurons in the same layers, on the fact's prompts (drawn with the
//!   seed, key `random/<relation>/<id>`, avoiding the fact's own neurons, see
//!   [`NeuronSet::random_like`]); off with `random_control: false`;
//! - `activation_baseline`: the caller's [`EncodedFact::activation_baseline`] set (neurons
//!   chosen by activation instead of attribution), on the fact's prompts, when given.
//!
//! Facts without knowledge neurons are skipped and counted. Results are grouped by the
//! relation of the fact whose neurons are edited, and overall.
//!
//! # Numbers reported ([`ChangeSummary`])
//!
//! Pooled over every prompt of the group (each prompt counts once, as in the paper's code):
//! - `change_pct` = 100 · mean(p_after − p_before) / mean(p_before): the paper's number;
//! - `mean_relative_change_pct` = 100 · mean((p_after − p_before) / p_before) over the prompts
//!   with p_before > 0 (`relative_prompts` of them);
//! - `mean_prob_before`, `mean_prob_after`, `mean_change`, and the counts `facts`, `prompts`.
//!
//! Means of empty groups are `null` in JSON.
//!
//! # JSON layout ([`ExperimentReport`])
//!
//! ```text
//! { "architecture", "fingerprint", "config": {...},
//!   "overall":   { "facts", "facts_evaluated", "facts_without_neurons", "prompts", "conditions" },
//!   "relations": { "<relation>": { same keys as overall } },
//!   "facts": [ { "id", "relation", "prompts", "neurons", "evaluated", "other_relation_facts",
//!                "random_neurons", "conditions" } ] }
//! conditions = { "own", "other_relations", "random", "activation_baseline" }, each
//!   { "suppress": summary, "amplify": summary }, summary =
//!   { "facts", "prompts", "mean_prob_before", "mean_prob_after", "mean_change", "change_pct",
//!     "mean_relative_change_pct", "relative_prompts" }
//! ```

use crate::error::{check_batch_size, check_finite, EditError, Result};
use crate::neurons::NeuronSet;
use crate::scoring::{check_prompts, score_all};
use crate::seed::{rng_for, sample};
use kn_model::{ActivationEdit, ActivationOp, EncodedPrompt, KnowledgeModel};
pub use kn_schema::report::suppression::{
    ChangeSummary, ConditionTable, ExperimentConfig, ExperimentReport, FactReport, GroupReport,
    OpEffects,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One fact of an experiment or edit: its prompts and its knowledge neurons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedFact {
    /// A stable id of the fact (e.g. "P36:12"), used in reports and as a seed key.
    pub id: String,
    /// Its relation (e.g. "P36").
    pub relation: String,
    /// Its prompts, each encoded with the fact's answer.
    pub prompts: Vec<EncodedPrompt>,
    /// Its knowledge neurons (from attribution).
    pub neurons: NeuronSet,
    /// Optional control set chosen by activation instead of attribution (same size is usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_baseline: Option<NeuronSet>,
}

/// Sums behind one [`ChangeSummary`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Acc {
    facts: usize,
    prompts: usize,
    sum_before: f64,
    sum_after: f64,
    sum_relative: f64,
    relative_prompts: usize,
}

impl Acc {
    fn add_fact(&mut self, before: &[f64], after: &[f64]) {
        if before.is_empty() {
            return;
        }
        self.facts += 1;
        for (&b, &a) in before.iter().zip(after) {
            self.prompts += 1;
            self.sum_before += b;
            self.sum_after += a;
            if b > 0.0 {
                self.sum_relative += (a - b) / b;
                self.relative_prompts += 1;
            }
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.facts += other.facts;
        self.prompts += other.prompts;
        self.sum_before += other.sum_before;
        self.sum_after += other.sum_after;
        self.sum_relative += other.sum_relative;
        self.relative_prompts += other.relative_prompts;
    }

    fn summary(&self) -> ChangeSummary {
        let n = self.prompts as f64;
        let some = |v: f64| (self.prompts > 0 && v.is_finite()).then_some(v);
        let before = self.sum_before / n;
        let after = self.sum_after / n;
        ChangeSummary {
            facts: self.facts,
            prompts: self.prompts,
            mean_prob_before: some(before),
            mean_prob_after: some(after),
            mean_change: some(after - before),
            change_pct: some(100.0 * (after - before) / before),
            mean_relative_change_pct: (self.relative_prompts > 0)
                .then(|| 100.0 * self.sum_relative / self.relative_prompts as f64)
                .filter(|v| v.is_finite()),
            relative_prompts: self.relative_prompts,
        }
    }
}

/// Accumulators of the four conditions, suppress then amplify.
#[derive(Debug, Clone, Copy, Default)]
struct AccTable {
    own: [Acc; 2],
    other: [Acc; 2],
    random: [Acc; 2],
    baseline: [Acc; 2],
}

impl AccTable {
    fn merge(&mut self, other: &AccTable) {
        for (mine, theirs) in [
            (&mut self.own, &other.own),
            (&mut self.other, &other.other),
            (&mut self.random, &other.random),
            (&mut self.baseline, &other.baseline),
        ] {
            mine[0].merge(&theirs[0]);
            mine[1].merge(&theirs[1]);
        }
    }

    fn table(&self) -> ConditionTable {
        let pair = |accs: &[Acc; 2]| OpEffects {
            suppress: accs[0].summary(),
            amplify: accs[1].summary(),
        };
        ConditionTable {
            own: pair(&self.own),
            other_relations: pair(&self.other),
            random: pair(&self.random),
            activation_baseline: pair(&self.baseline),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct GroupAcc {
    facts: usize,
    evaluated: usize,
    without_neurons: usize,
    prompts: usize,
    table: AccTable,
}

impl GroupAcc {
    fn report(&self) -> GroupReport {
        GroupReport {
            facts: self.facts,
            facts_evaluated: self.evaluated,
            facts_without_neurons: self.without_neurons,
            prompts: self.prompts,
            conditions: self.table.table(),
        }
    }
}

/// Answer probabilities of the prompts with `edits`.
fn probs(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    edits: &[ActivationEdit],
    batch_size: usize,
) -> Result<Vec<f64>> {
    Ok(score_all(model, prompts, edits, &[], batch_size)?
        .into_iter()
        .map(|s| s.answer.prob)
        .collect())
}

/// Clean answer probabilities of each fact, computed once.
struct CleanCache<'a> {
    facts: &'a [EncodedFact],
    probs: Vec<Option<Vec<f64>>>,
    batch_size: usize,
}

impl CleanCache<'_> {
    fn get(&mut self, model: &dyn KnowledgeModel, index: usize) -> Result<Vec<f64>> {
        if let Some(Some(cached)) = self.probs.get(index) {
            return Ok(cached.clone());
        }
        let Some(fact) = self.facts.get(index) else {
            return Err(EditError::NoPrompts {
                context: format!("fact number {index}"),
            });
        };
        let computed = probs(model, &fact.prompts, &[], self.batch_size)?;
        if let Some(slot) = self.probs.get_mut(index) {
            *slot = Some(computed.clone());
        }
        Ok(computed)
    }
}

/// Runs the suppression/amplification experiment (see the module docs) and reports per fact,
/// per relation and overall. `progress(done, total)` is called with `done = 0` first and after
/// each fact (`total` = number of facts).
///
/// Everything is checked before the first pass: at least one fact, every fact with prompts
/// that have answers, every neuron set inside the model, a positive batch size and finite
/// factors.
pub fn suppress_amplify_experiment(
    model: &dyn KnowledgeModel,
    facts: &[EncodedFact],
    config: &ExperimentConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ExperimentReport> {
    if facts.is_empty() {
        return Err(EditError::NoPrompts {
            context: "the suppression/amplification experiment (no facts given)".into(),
        });
    }
    check_batch_size(config.batch_size)?;
    check_finite("suppress_factor", config.suppress_factor)?;
    check_finite("amplify_factor", config.amplify_factor)?;
    let info = model.info();
    for fact in facts {
        check_prompts(&fact.prompts, &format!("fact {}", fact.id))?;
        fact.neurons.validate(info)?;
        if let Some(baseline) = &fact.activation_baseline {
            baseline.validate(info)?;
        }
    }
    let ops = [
        ActivationOp::Scale(config.suppress_factor),
        ActivationOp::Scale(config.amplify_factor),
    ];
    let mut cache = CleanCache {
        facts,
        probs: vec![None; facts.len()],
        batch_size: config.batch_size,
    };
    let mut overall = GroupAcc::default();
    let mut relations: BTreeMap<String, GroupAcc> = BTreeMap::new();
    let mut reports = Vec::with_capacity(facts.len());
    progress(0, facts.len());
    for (index, fact) in facts.iter().enumerate() {
        let group = relations.entry(fact.relation.clone()).or_default();
        group.facts += 1;
        overall.facts += 1;
        let mut report = FactReport {
            id: fact.id.clone(),
            relation: fact.relation.clone(),
            prompts: fact.prompts.len(),
            neurons: fact.neurons.len(),
            evaluated: false,
            other_relation_facts: Vec::new(),
            random_neurons: None,
            conditions: ConditionTable::default(),
        };
        if fact.neurons.is_empty() {
            group.without_neurons += 1;
            overall.without_neurons += 1;
            reports.push(report);
            progress(index + 1, facts.len());
            continue;
        }
        let mut table = AccTable::default();
        let clean = cache.get(model, index)?;
        // The fact's own prompts with its own neurons, random neurons and baseline neurons.
        let random = if config.random_control {
            Some(fact.neurons.random_like(
                info,
                config.seed,
                &format!("random/{}/{}", fact.relation, fact.id),
            )?)
        } else {
            None
        };
        let baseline = fact.activation_baseline.as_ref().filter(|b| !b.is_empty());
        for (slot, op) in ops.iter().enumerate() {
            let own = probs(
                model,
                &fact.prompts,
                &fact.neurons.edits(*op),
                config.batch_size,
            )?;
            table.own[slot].add_fact(&clean, &own);
            if let Some(random) = &random {
                let after = probs(model, &fact.prompts, &random.edits(*op), config.batch_size)?;
                table.random[slot].add_fact(&clean, &after);
            }
            if let Some(baseline) = baseline {
                let after = probs(
                    model,
                    &fact.prompts,
                    &baseline.edits(*op),
                    config.batch_size,
                )?;
                table.baseline[slot].add_fact(&clean, &after);
            }
        }
        // The same neurons on facts of other relations, pooled as one group for this fact.
        let pool: Vec<usize> = (0..facts.len())
            .filter(|&j| facts.get(j).is_some_and(|f| f.relation != fact.relation))
            .collect();
        let mut rng = rng_for(
            config.seed,
            &format!("other-relations/{}/{}", fact.relation, fact.id),
        );
        let chosen = sample(&mut rng, pool, config.other_relation_facts);
        let mut other_before = Vec::new();
        let mut other_after: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for &j in &chosen {
            let Some(other) = facts.get(j) else { continue };
            report.other_relation_facts.push(other.id.clone());
            other_before.extend(cache.get(model, j)?);
            for (slot, op) in ops.iter().enumerate() {
                if let Some(after) = other_after.get_mut(slot) {
                    after.extend(probs(
                        model,
                        &other.prompts,
                        &fact.neurons.edits(*op),
                        config.batch_size,
                    )?);
                }
            }
        }
        for (slot, after) in other_after.iter().enumerate() {
            if let Some(acc) = table.other.get_mut(slot) {
                acc.add_fact(&other_before, after);
            }
        }
        report.evaluated = true;
        report.random_neurons = random.map(Into::into);
        report.conditions = table.table();
        for group in [
            &mut overall,
            relations.entry(fact.relation.clone()).or_default(),
        ] {
            group.evaluated += 1;
            group.prompts += fact.prompts.len();
            group.table.merge(&table);
        }
        reports.push(report);
        progress(index + 1, facts.len());
    }
    Ok(ExperimentReport {
        architecture: info.architecture.clone(),
        fingerprint: info.fingerprint.clone(),
        config: *config,
        overall: overall.report(),
        relations: relations
            .into_iter()
            .map(|(r, g)| (r, g.report()))
            .collect(),
        facts: reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_pool_prompts() {
        let mut acc = Acc::default();
        acc.add_fact(&[0.5, 0.1], &[0.25, 0.1]);
        acc.add_fact(&[0.0], &[0.2]);
        acc.add_fact(&[], &[]);
        let s = acc.summary();
        assert_eq!((s.facts, s.prompts, s.relative_prompts), (2, 3, 2));
        let before = 0.6 / 3.0;
        let after = 0.55 / 3.0;
        assert!((s.mean_prob_before.unwrap() - before).abs() < 1e-12);
        assert!((s.change_pct.unwrap() - 100.0 * (after - before) / before).abs() < 1e-9);
        // (0.25-0.5)/0.5 = -0.5 and 0 -> mean -0.25
        assert!((s.mean_relative_change_pct.unwrap() + 25.0).abs() < 1e-9);
        let empty = Acc::default().summary();
        assert_eq!(empty.prompts, 0);
        assert!(empty.change_pct.is_none() && empty.mean_prob_before.is_none());
    }

    #[test]
    fn merging_equals_pooling() {
        let mut a = Acc::default();
        a.add_fact(&[0.5], &[0.1]);
        let mut b = Acc::default();
        b.add_fact(&[0.2, 0.3], &[0.3, 0.3]);
        let mut pooled = Acc::default();
        pooled.add_fact(&[0.5], &[0.1]);
        pooled.add_fact(&[0.2, 0.3], &[0.3, 0.3]);
        a.merge(&b);
        assert_eq!(a, pooled);
    }

    #[test]
    fn config_json_defaults() {
        let config: ExperimentConfig = serde_json::from_str(r#"{"seed": 7}"#).unwrap();
        assert_eq!(config.seed, 7);
        assert_eq!(config.amplify_factor, 2.0);
        assert_eq!(config.suppress_factor, 0.0);
        assert!(config.random_control);
    }
}
