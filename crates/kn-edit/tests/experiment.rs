//! The suppression/amplification experiment on tiny-llama with synthetic facts: it runs, its
//! JSON has the documented keys, it is deterministic for a seed, counts add up, progress is
//! reported, and factors of 1 change nothing.

mod common;

use common::*;
use kn_edit::{suppress_amplify_experiment, EditError, ExperimentConfig, NeuronSet};
use serde_json::Value;

fn run(config: &ExperimentConfig) -> (kn_edit::ExperimentReport, Vec<(usize, usize)>) {
    let model = tiny_llama();
    let mut facts = llama_facts(model.as_ref());
    facts[2].activation_baseline = Some(NeuronSet::new([(0, 6), (2, 91)]));
    facts.push(fact(
        model.as_ref(),
        "language:1",
        "language",
        &["The official language of France is"],
        "French",
        &[],
    ));
    let mut calls = Vec::new();
    let report = suppress_amplify_experiment(model.as_ref(), &facts, config, &mut |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    (report, calls)
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn experiment_runs_and_its_json_has_the_documented_keys() {
    let (report, calls) = run(&ExperimentConfig::default());
    assert_eq!(calls, vec![(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        keys(&json),
        sorted(&[
            "architecture",
            "fingerprint",
            "config",
            "overall",
            "relations",
            "facts"
        ])
    );
    assert_eq!(json["architecture"], "llama");
    let group_keys = sorted(&[
        "facts",
        "facts_evaluated",
        "facts_without_neurons",
        "prompts",
        "conditions",
    ]);
    let condition_keys = sorted(&["own", "other_relations", "random", "activation_baseline"]);
    let summary_keys = sorted(&[
        "facts",
        "prompts",
        "mean_prob_before",
        "mean_prob_after",
        "mean_change",
        "change_pct",
        "mean_relative_change_pct",
        "relative_prompts",
    ]);
    let groups: Vec<&Value> = std::iter::once(&json["overall"])
        .chain(json["relations"].as_object().unwrap().values())
        .collect();
    assert_eq!(groups.len(), 3);
    for group in groups {
        assert_eq!(keys(group), group_keys);
        assert_eq!(keys(&group["conditions"]), condition_keys);
        for condition in condition_keys.iter() {
            assert_eq!(
                keys(&group["conditions"][condition]),
                sorted(&["suppress", "amplify"])
            );
            for op in ["suppress", "amplify"] {
                assert_eq!(keys(&group["conditions"][condition][op]), summary_keys);
            }
        }
    }
    assert_eq!(
        keys(&json["facts"][0]),
        sorted(&[
            "id",
            "relation",
            "prompts",
            "neurons",
            "evaluated",
            "other_relation_facts",
            "random_neurons",
            "conditions"
        ])
    );
    // Round trip.
    let back: kn_edit::ExperimentReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn counts_add_up_and_controls_are_filled() {
    let (report, _) = run(&ExperimentConfig::default());
    let overall = &report.overall;
    assert_eq!(
        (
            overall.facts,
            overall.facts_evaluated,
            overall.facts_without_neurons
        ),
        (4, 3, 1)
    );
    assert_eq!(overall.prompts, 3 + 2 + 2);
    let own = &overall.conditions.own.suppress;
    assert_eq!((own.facts, own.prompts), (3, 7));
    assert!(own.change_pct.is_some() && own.mean_relative_change_pct.is_some());
    assert_eq!(overall.conditions.random.amplify.prompts, 7);
    // Only language:0 has a baseline set.
    assert_eq!(overall.conditions.activation_baseline.suppress.facts, 1);
    assert_eq!(overall.conditions.activation_baseline.suppress.prompts, 2);
    // One other-relation fact per fact (default), from the other relation.
    for fact in report.facts.iter().filter(|f| f.evaluated) {
        assert_eq!(fact.other_relation_facts.len(), 1);
        let other = &fact.other_relation_facts[0];
        assert!(
            !other.starts_with(&fact.relation),
            "{} drew {}",
            fact.id,
            other
        );
        let random = fact.random_neurons.as_ref().unwrap();
        assert_eq!(random.len(), fact.neurons);
    }
    let capital = &report.relations["capital"];
    assert_eq!((capital.facts, capital.facts_evaluated), (2, 2));
    let language = &report.relations["language"];
    assert_eq!(
        (
            language.facts,
            language.facts_evaluated,
            language.facts_without_neurons
        ),
        (2, 1, 1)
    );
    // The overall pools the relations.
    let sum = capital.conditions.own.amplify.prompts + language.conditions.own.amplify.prompts;
    assert_eq!(overall.conditions.own.amplify.prompts, sum);
    let skipped = report.facts.iter().find(|f| f.id == "language:1").unwrap();
    assert!(!skipped.evaluated && skipped.conditions.own.suppress.prompts == 0);
}

#[test]
fn experiment_is_deterministic_for_a_seed() {
    let config = ExperimentConfig {
        other_relation_facts: 2,
        seed: 11,
        ..ExperimentConfig::default()
    };
    let (a, _) = run(&config);
    let (b, _) = run(&config);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

#[test]
fn factors_of_one_change_nothing() {
    let config = ExperimentConfig {
        suppress_factor: 1.0,
        amplify_factor: 1.0,
        ..ExperimentConfig::default()
    };
    let (report, _) = run(&config);
    let c = &report.overall.conditions;
    for summary in [
        &c.own.suppress,
        &c.own.amplify,
        &c.other_relations.suppress,
        &c.random.amplify,
        &c.activation_baseline.suppress,
    ] {
        assert!(summary.prompts > 0);
        assert_eq!(summary.mean_change, Some(0.0));
        assert_eq!(summary.change_pct, Some(0.0));
    }
}

#[test]
fn bad_experiments_are_refused() {
    let model = tiny_llama();
    let config = ExperimentConfig::default();
    let mut nothing = |_: usize, _: usize| {};
    let err = suppress_amplify_experiment(model.as_ref(), &[], &config, &mut nothing).unwrap_err();
    assert!(matches!(err, EditError::NoPrompts { .. }), "{err}");
    let mut facts = llama_facts(model.as_ref());
    facts[1].neurons = NeuronSet::new([(0, 500)]);
    let err =
        suppress_amplify_experiment(model.as_ref(), &facts, &config, &mut nothing).unwrap_err();
    assert!(
        matches!(err, EditError::NeuronOutOfRange { neuron: 500, .. }),
        "{err}"
    );
    let mut facts = llama_facts(model.as_ref());
    facts[0].prompts.clear();
    let err =
        suppress_amplify_experiment(model.as_ref(), &facts, &config, &mut nothing).unwrap_err();
    assert!(matches!(err, EditError::NoPrompts { .. }), "{err}");
    let facts = llama_facts(model.as_ref());
    let bad = ExperimentConfig {
        amplify_factor: f64::INFINITY,
        ..config
    };
    assert!(suppress_amplify_experiment(model.as_ref(), &facts, &bad, &mut nothing).is_err());
}
