//! The default model, SmolLM2-135M-Instruct: interventions, the experiment on two facts, and a
//! fact update restored bit for bit. Fails (does not skip) when the model file is absent:
//! CI fetches it with scripts/fetch-model.sh.

mod common;

use common::*;
use kn_edit::{
    erasure_token, intervene, suppress_amplify_experiment, update_fact, EncodedFact, ErasureValue,
    ExperimentConfig, InterventionConfig, NeuronFrequencies, NeuronSet, UpdateConfig, SUPPRESS,
};
use kn_model::tch::Device;
use kn_model::{load_model, ActivationOp, KnowledgeModel};

fn smollm2() -> Box<dyn KnowledgeModel> {
    let path = kn_model::default_model_path();
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model.sh (CI does)",
        path.display()
    );
    load_model("default", Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

#[test]
fn smollm2_interventions_experiment_and_update() {
    let mut model = smollm2();
    let capital = fact(
        model.as_ref(),
        "P36:0",
        "P36",
        &["The capital of France is", "France's capital city is"],
        "Paris",
        &[(18, 100), (24, 1200), (29, 5)],
    );
    let language = fact(
        model.as_ref(),
        "P37:0",
        "P37",
        &["The official language of Spain is"],
        "Spanish",
        &[(20, 7), (26, 800)],
    );

    // Scale(1) changes nothing; suppressing a whole late layer changes something.
    let config = InterventionConfig::default();
    let same_effects = intervene(
        model.as_ref(),
        &capital.prompts,
        &capital.neurons,
        ActivationOp::Scale(1.0),
        &config,
    )
    .unwrap();
    assert!(same_effects.iter().all(|e| e.prob_before == e.prob_after));
    let layer = NeuronSet::new((0..model.info().ffn_width).map(|n| (29, n)));
    let suppressed =
        intervene(model.as_ref(), &capital.prompts, &layer, SUPPRESS, &config).unwrap();
    assert!(suppressed.iter().any(|e| e.prob_before != e.prob_after));

    // The experiment runs.
    let facts: Vec<EncodedFact> = vec![capital.clone(), language];
    let report = suppress_amplify_experiment(
        model.as_ref(),
        &facts,
        &ExperimentConfig::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(report.overall.facts_evaluated, 2);
    assert_eq!(report.fingerprint, model.info().fingerprint);
    assert!(report.overall.conditions.own.suppress.change_pct.is_some());

    // An update to a single-token answer, undone bit for bit.
    let original = snapshot(model.as_ref());
    let outcome = update_fact(
        model.as_mut(),
        &capital,
        "London",
        &NeuronFrequencies::default(),
        &UpdateConfig::default(),
    )
    .unwrap();
    assert_eq!(outcome.neurons.len(), 3);
    assert!(!same(&snapshot(model.as_ref()), &original));
    outcome.handle.restore(model.as_mut()).unwrap();
    assert!(same(&snapshot(model.as_ref()), &original));

    // The default erasure token of SmolLM2 is <|endoftext|>, id 0.
    assert_eq!(
        erasure_token(model.as_ref(), &ErasureValue::UnknownToken).unwrap(),
        Some(0)
    );
    assert_eq!(model.token_text(0), "<|endoftext|>");
}
