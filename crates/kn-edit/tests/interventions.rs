//! Interventions on activations, on the tiny BERT and Llama fixtures: `Scale(1)` changes
//! nothing, suppression and amplification move exactly the chosen activations, batching does
//! not change results, and bad input is refused with typed errors.

mod common;

use common::*;
use kn_edit::{intervene, EditError, InterventionConfig, NeuronSet, AMPLIFY, SUPPRESS};
use kn_model::tch::{Kind, Tensor};
use kn_model::{ActivationOp, KnowledgeModel};

fn llama_prompts(model: &dyn KnowledgeModel) -> Vec<kn_model::EncodedPrompt> {
    let mut prompts: Vec<_> = CAPITAL_PROMPTS
        .iter()
        .map(|t| prompt(model, t, "Paris"))
        .collect();
    prompts.extend(LANGUAGE_PROMPTS.iter().map(|t| prompt(model, t, "Spanish")));
    prompts
}

fn bert_prompts(model: &dyn KnowledgeModel) -> Vec<kn_model::EncodedPrompt> {
    vec![
        prompt(model, "The capital of France is [MASK] .", "Paris"),
        prompt(model, "Rome is the capital of [MASK].", "Italy"),
        prompt(model, "[MASK] is the capital of Germany.", "Berlin"),
    ]
}

fn prompts_for(model: &dyn KnowledgeModel) -> Vec<kn_model::EncodedPrompt> {
    match model.info().kind {
        kn_model::ModelKind::Masked => bert_prompts(model),
        kn_model::ModelKind::Causal => llama_prompts(model),
    }
}

#[test]
fn scale_one_changes_nothing() {
    for model in [tiny_llama(), tiny_bert()] {
        let prompts = prompts_for(model.as_ref());
        let info = model.info().clone();
        let all = NeuronSet::new(
            (0..info.num_layers).flat_map(|l| (0..info.ffn_width).map(move |n| (l, n))),
        );
        for batch_size in [1, 2, 16] {
            let config = InterventionConfig { batch_size };
            let effects = intervene(
                model.as_ref(),
                &prompts,
                &all,
                ActivationOp::Scale(1.0),
                &config,
            )
            .unwrap();
            assert_eq!(effects.len(), prompts.len());
            for effect in effects {
                assert_eq!(
                    effect.prob_before, effect.prob_after,
                    "{}: {}",
                    info.architecture, effect.prompt
                );
                assert_eq!(effect.rank_before, effect.rank_after);
                assert_eq!(effect.top_token_before, effect.top_token_after);
                assert!(effect.prob_before > 0.0 && effect.prob_before < 1.0);
            }
        }
    }
}

#[test]
fn suppression_and_amplification_move_the_answer_probability() {
    let model = tiny_llama();
    let prompts = llama_prompts(model.as_ref());
    // A whole layer: its suppression must change the output of a random model.
    let layer = NeuronSet::new((0..model.info().ffn_width).map(|n| (2, n)));
    let config = InterventionConfig::default();
    for op in [
        SUPPRESS,
        AMPLIFY,
        ActivationOp::Scale(-3.0),
        ActivationOp::Set(0.5),
    ] {
        let effects = intervene(model.as_ref(), &prompts, &layer, op, &config).unwrap();
        assert!(
            effects.iter().any(|e| e.prob_after != e.prob_before),
            "{op:?} changed nothing"
        );
        for e in &effects {
            assert_eq!(
                e.answer_token,
                prompts.iter().find(|p| p.text == e.prompt).unwrap().targets[0].1
            );
            assert!(e.rank_after >= 1 && e.rank_after <= model.info().vocab_size);
        }
    }
}

#[test]
fn batch_size_does_not_change_results() {
    let model = tiny_llama();
    let prompts = llama_prompts(model.as_ref());
    let set = NeuronSet::new([(0, 1), (1, 50), (2, 7), (2, 95)]);
    let one = intervene(
        model.as_ref(),
        &prompts,
        &set,
        SUPPRESS,
        &InterventionConfig { batch_size: 1 },
    )
    .unwrap();
    let all = intervene(
        model.as_ref(),
        &prompts,
        &set,
        SUPPRESS,
        &InterventionConfig { batch_size: 16 },
    )
    .unwrap();
    for (a, b) in one.iter().zip(&all) {
        assert_eq!(a.prompt, b.prompt);
        assert!((a.prob_before - b.prob_before).abs() < 1e-6);
        assert!((a.prob_after - b.prob_after).abs() < 1e-6);
        assert_eq!(a.rank_after, b.rank_after);
    }
}

/// The activations captured in a pass with the set's edits: exactly the chosen neurons are
/// multiplied by the factor (or set), every other neuron of that layer and every neuron of
/// the layers below are untouched.
#[test]
fn edits_of_a_set_move_exactly_its_activations() {
    for model in [tiny_llama(), tiny_bert()] {
        let prompts = prompts_for(model.as_ref());
        let set = NeuronSet::for_model([(1, 4), (1, 9), (1, 30)], model.info()).unwrap();
        let clean = model
            .forward(&prompts, &[], true)
            .unwrap()
            .activations
            .unwrap();
        for op in [
            SUPPRESS,
            AMPLIFY,
            ActivationOp::Scale(0.5),
            ActivationOp::Set(1.25),
        ] {
            let edited = model
                .forward(&prompts, &set.edits(op), true)
                .unwrap()
                .activations
                .unwrap();
            let width = model.info().ffn_width as i64;
            for neuron in 0..width {
                let before = clean.select(1, 1).select(1, neuron);
                let after = edited.select(1, 1).select(1, neuron);
                let expected = if set.contains(1, neuron as usize) {
                    match op {
                        ActivationOp::Scale(f) => &before * f,
                        ActivationOp::Set(v) => before.full_like(v),
                    }
                } else {
                    before.shallow_clone()
                };
                let diff = (&after - &expected).abs().max().double_value(&[]);
                assert!(diff < 1e-6, "{op:?}: neuron {neuron} differs by {diff}");
            }
            assert!(
                edited.select(1, 0).equal(&clean.select(1, 0)),
                "layer 0 must not move"
            );
        }
        // Suppression really zeroes them.
        let edited = model
            .forward(&prompts, &set.edits(SUPPRESS), true)
            .unwrap()
            .activations
            .unwrap();
        let chosen = edited
            .select(1, 1)
            .index_select(1, &Tensor::from_slice(&[4i64, 9, 30]));
        assert_eq!(chosen.abs().sum(Kind::Double).double_value(&[]), 0.0);
    }
}

#[test]
fn bad_input_is_refused() {
    let model = tiny_llama();
    let prompts = llama_prompts(model.as_ref());
    let config = InterventionConfig::default();
    let err = intervene(
        model.as_ref(),
        &prompts,
        &NeuronSet::default(),
        SUPPRESS,
        &config,
    )
    .unwrap_err();
    assert!(matches!(err, EditError::EmptyNeuronSet { .. }), "{err}");
    let err = intervene(
        model.as_ref(),
        &prompts,
        &NeuronSet::new([(3, 0)]),
        SUPPRESS,
        &config,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EditError::LayerOutOfRange {
                layer: 3,
                layers: 3
            }
        ),
        "{err}"
    );
    let err = intervene(
        model.as_ref(),
        &prompts,
        &NeuronSet::new([(0, 96)]),
        SUPPRESS,
        &config,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EditError::NeuronOutOfRange {
                neuron: 96,
                width: 96,
                ..
            }
        ),
        "{err}"
    );
    let err = intervene(
        model.as_ref(),
        &[],
        &NeuronSet::new([(0, 0)]),
        SUPPRESS,
        &config,
    )
    .unwrap_err();
    assert!(matches!(err, EditError::NoPrompts { .. }), "{err}");
    let no_answer = model
        .encode(
            "The capital of France is",
            None,
            kn_model::AnswerPolicy::FirstToken,
        )
        .unwrap();
    let err = intervene(
        model.as_ref(),
        &[no_answer],
        &NeuronSet::new([(0, 0)]),
        SUPPRESS,
        &config,
    )
    .unwrap_err();
    assert!(matches!(err, EditError::MissingAnswer { .. }), "{err}");
    let err = intervene(
        model.as_ref(),
        &prompts,
        &NeuronSet::new([(0, 0)]),
        SUPPRESS,
        &InterventionConfig { batch_size: 0 },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EditError::InvalidParameter {
                name: "batch_size",
                ..
            }
        ),
        "{err}"
    );
    let err = intervene(
        model.as_ref(),
        &prompts,
        &NeuronSet::new([(0, 0)]),
        ActivationOp::Scale(f64::NAN),
        &config,
    )
    .unwrap_err();
    assert!(matches!(err, EditError::InvalidParameter { .. }), "{err}");
}
