//! The update rule's settings against success and damage (`kn edit --facts N --sweep ...`),
//! and where the damage comes from.
//!
//! The sample of `edit_sample` is drawn once with the settings as given (the facts and their
//! new answers); every setting of the sweep then updates exactly those facts to those answers,
//! one at a time, restoring the weights after each (see `kn_schema::report::sweep` for the
//! grid). Success is the located prompts' success rate, damage the share of other relations'
//! prompts whose top-1 token changed; both are means over facts, beside the medians of the
//! perplexity changes.
//!
//! Where the damage comes from: each sampled fact's update as given is repeated on the edited
//! neurons of one layer at a time (no further exclusion, no random control, no held-out
//! prompts), and the damage is reported by layer with how many of those neurons are knowledge
//! neurons of other relations' facts in the run.

use crate::editing::{edit_encoded, edit_fact, edit_sample, Context};
use crate::error::RunError;
use crate::Message;
use kn_model::KnowledgeModel;
use kn_schema::report::edit::{Aggregate, FactEdit, Locality, PerplexityChange, UpdateConfig};
pub use kn_schema::report::sweep::{LayerDamage, SweepOutput, SweepPoint};
use kn_schema::report::{mean, median};
use kn_schema::{FactRecord, Neuron};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// The settings of a sweep over `lambdas` around `given` (see the module docs): λ2 fastest,
/// then norm scaling off and on, then the given shared-neuron exclusion and none.
pub fn sweep_settings(given: &UpdateConfig, lambdas: &[f64]) -> Vec<UpdateConfig> {
    let mut thresholds = vec![given.shared_threshold];
    if given.shared_threshold < 1.0 {
        thresholds.push(1.0);
    }
    let mut settings = Vec::new();
    for &shared_threshold in &thresholds {
        for scale_by_norm in [false, true] {
            for &lambda_add in lambdas {
                settings.push(UpdateConfig {
                    lambda_remove: given.lambda_remove,
                    lambda_add,
                    scale_by_norm,
                    shared_threshold,
                });
            }
        }
    }
    settings
}

/// The medians of `edits`' perplexity changes.
fn median_changes(edits: &[FactEdit]) -> PerplexityChange {
    PerplexityChange::over(edits.iter().map(|e| &e.perplexity_change_pct), median)
}

/// Updates the facts of `sample` to their new answers under the context's settings; facts the
/// settings cannot update (an input error, e.g. every neuron shared) are counted, not fatal.
fn update_sample(
    model: &mut dyn KnowledgeModel,
    context: &Context<'_>,
    sample: &[(&FactRecord, String)],
) -> Result<(Vec<FactEdit>, usize), RunError> {
    let mut edits = Vec::new();
    let mut skipped = 0;
    for (record, answer) in sample {
        match edit_fact(model, context, record, answer, None) {
            Ok(edit) => edits.push(edit),
            Err(RunError::BadInput(_)) => skipped += 1,
            Err(error) => return Err(error),
        }
    }
    Ok((edits, skipped))
}

/// The relations whose facts in the run hold each knowledge neuron.
fn neuron_relations(records: &[FactRecord]) -> BTreeMap<Neuron, BTreeSet<&str>> {
    let mut relations: BTreeMap<Neuron, BTreeSet<&str>> = BTreeMap::new();
    for record in records {
        for scored in &record.neurons {
            relations
                .entry(scored.id())
                .or_default()
                .insert(record.relation.as_str());
        }
    }
    relations
}

/// Each edit of `base` repeated on its edited neurons of one layer at a time, by layer.
fn damage_by_layer(
    model: &mut dyn KnowledgeModel,
    context: &mut Context<'_>,
    sample: &[(&FactRecord, String)],
    base: &[FactEdit],
) -> Result<Vec<LayerDamage>, RunError> {
    let holders = neuron_relations(&context.run.records);
    // The edited neurons are the ones to split: nothing more is left out, and the neurons are
    // not re-located on a share of the prompts.
    context.config.shared_threshold = 1.0;
    context.eval.random_control = false;
    context.holdout = 0.0;
    let mut by_layer: BTreeMap<usize, (Vec<FactEdit>, usize, usize)> = BTreeMap::new();
    for edit in base {
        let Some((record, answer)) = sample.iter().find(|(r, _)| r.fact == edit.evaluation.fact)
        else {
            continue;
        };
        let Some(fact) = context.encoded.get(&record.fact) else {
            continue;
        };
        let mut layers: BTreeMap<usize, Vec<Neuron>> = BTreeMap::new();
        for neuron in &edit.evaluation.neurons {
            layers.entry(neuron.layer).or_default().push(*neuron);
        }
        for (layer, neurons) in layers {
            let cross = neurons
                .iter()
                .filter(|n| {
                    holders
                        .get(n)
                        .is_some_and(|r| r.iter().any(|r| *r != record.relation))
                })
                .count();
            let restricted = kn_edit::EncodedFact {
                neurons: neurons.iter().copied().collect(),
                ..fact.clone()
            };
            let layer_edit = edit_encoded(model, context, record, &restricted, answer, None)?;
            let entry = by_layer.entry(layer).or_default();
            entry.0.push(layer_edit);
            entry.1 += neurons.len();
            entry.2 += cross;
        }
    }
    Ok(by_layer
        .into_iter()
        .map(|(layer, (edits, neurons, cross_relation_neurons))| {
            let checks = || edits.iter().map(|e| &e.evaluation.checks);
            LayerDamage {
                layer,
                facts: edits.len(),
                neurons,
                cross_relation_neurons,
                success: mean(checks().map(|c| c.reliability)),
                locality: Locality {
                    same_relation: mean(checks().map(|c| c.locality.same_relation)),
                    other_relations: mean(checks().map(|c| c.locality.other_relations)),
                },
                median_perplexity_change_pct: median_changes(&edits),
            }
        })
        .collect())
}

/// The sweep of the module docs over `lambdas` (λ2 values), on a sample of `requested` facts
/// of `relations` drawn with `seed` and the context's settings.
pub fn edit_sweep(
    model: &mut dyn KnowledgeModel,
    context: Context<'_>,
    relations: &[String],
    requested: usize,
    lambdas: &[f64],
    started: Instant,
) -> Result<SweepOutput, RunError> {
    if lambdas.is_empty() {
        return Err(RunError::BadInput(
            "a sweep needs at least one λ2 value".into(),
        ));
    }
    // Each setting repeats the sample's warnings (e.g. a raised threshold): each is told once.
    let told = std::cell::RefCell::new(BTreeSet::new());
    let report = context.report;
    let once = |message: Message| match message {
        Message::Warning(text) if !told.borrow_mut().insert(text.clone()) => {}
        other => report(other),
    };
    let mut context = Context {
        report: &once,
        ..context
    };
    let given = context.config;
    let seed = context.eval.seed;
    let base = edit_sample(model, &context, relations, requested, started)?;
    let sample: Vec<(&FactRecord, String)> = base
        .facts
        .iter()
        .map(|edit| {
            context
                .run
                .find(&edit.evaluation.fact)
                .map(|record| (record, edit.new_answer.clone()))
        })
        .collect::<Result<_, _>>()?;
    let settings = sweep_settings(&given, lambdas);
    let mut points = Vec::new();
    for (i, config) in settings.iter().enumerate() {
        let (edits, skipped) = if *config == given {
            (base.facts.clone(), 0)
        } else {
            context.config = *config;
            update_sample(model, &context, &sample)?
        };
        let point = SweepPoint {
            config: *config,
            skipped,
            aggregate: Aggregate::of(&edits),
            median_perplexity_change_pct: median_changes(&edits),
        };
        let percent = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
        (context.report)(Message::Progress(format!(
            "[{}/{}] λ2 {} {}, shared threshold {}: success {}, damage {} ({} facts)",
            i + 1,
            settings.len(),
            config.lambda_add,
            if config.scale_by_norm {
                "norm-scaled"
            } else {
                "unscaled"
            },
            config.shared_threshold,
            percent(point.success()),
            percent(point.damage()),
            edits.len()
        )));
        points.push(point);
    }
    context.config = given;
    (context.report)(Message::Progress(
        "the given update split by layer (where the damage comes from)".into(),
    ));
    let damage_by_layer = damage_by_layer(model, &mut context, &sample, &base.facts)?;
    Ok(SweepOutput {
        run: context.run.describe(),
        requested,
        seed,
        lambdas: lambdas.to_vec(),
        given,
        points,
        damage_by_layer,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_cover_the_grid_lambda_fastest() {
        let given = UpdateConfig::default();
        let settings = sweep_settings(&given, &[1.0, 8.0]);
        assert_eq!(settings.len(), 8);
        assert_eq!(
            settings
                .iter()
                .map(|c| (c.lambda_add, c.scale_by_norm, c.shared_threshold))
                .collect::<Vec<_>>(),
            vec![
                (1.0, false, 0.1),
                (8.0, false, 0.1),
                (1.0, true, 0.1),
                (8.0, true, 0.1),
                (1.0, false, 1.0),
                (8.0, false, 1.0),
                (1.0, true, 1.0),
                (8.0, true, 1.0),
            ]
        );
        assert!(settings.iter().all(|c| c.lambda_remove == 1.0));
        // Without an exclusion to begin with, only one threshold.
        let none = UpdateConfig {
            shared_threshold: 1.0,
            ..given
        };
        assert_eq!(sweep_settings(&none, &[2.0]).len(), 2);
    }
}
