//! Weight edits on the tiny fixtures: fact updates follow the formula, erasure writes the
//! chosen embedding, every handle restores the weights bit for bit, patches round-trip and are
//! refused on other models, and refused edits leave the weights untouched.

mod common;

use common::*;
use kn_edit::{
    apply_patch, edit_value_slots, erase_neurons, erase_relation, erasure_token, evaluate_erasure,
    evaluate_update, update_fact, update_tokens, CheckPrompts, EditError, EraseConfig,
    ErasurePrompts, ErasureValue, EvaluationConfig, NeuronFrequencies, NeuronSet, Patch,
    UpdateConfig,
};
use kn_model::tch::{Kind, Tensor};
use kn_model::{AnswerPolicy, EncodedPrompt, KnowledgeModel};
use kn_schema::Neuron;

/// Two neurons of the tiny models.
fn two_neurons() -> [Neuron; 2] {
    [Neuron::new(0, 1), Neuron::new(1, 2)]
}

/// Counts for a relation of 20 facts: the neurons of `facts` once per fact that holds them,
/// each of `shared` by all 20. ((1, 17) is in two of the llama facts: 2/20 = 0.1, which is not
/// above the default threshold, so it is kept.)
fn frequencies(facts: &[kn_edit::EncodedFact], shared: &[Neuron]) -> NeuronFrequencies {
    let once = facts
        .iter()
        .flat_map(|f| f.neurons.iter())
        .filter(|p| !shared.contains(p))
        .map(|p| (p, 1));
    NeuronFrequencies::from_counts(20, once.chain(shared.iter().map(|&p| (p, 20)))).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    Vec::<Vec<f32>>::try_from(t).unwrap()
}

#[test]
fn update_follows_the_formula_and_restores_bit_for_bit() {
    for scale_by_norm in [false, true] {
        let mut model = tiny_llama();
        let original = snapshot(model.as_ref());
        let facts = llama_facts(model.as_ref());
        let fact = &facts[0];
        let freq = frequencies(&facts, &[]);
        let config = UpdateConfig {
            scale_by_norm,
            ..UpdateConfig::default()
        };
        let before: Vec<Tensor> = fact
            .neurons
            .iter()
            .map(|n| model.value_slots(n.layer, &[n.index]).unwrap())
            .collect();
        let outcome = update_fact(model.as_mut(), fact, "Italy", &freq, &config).unwrap();
        assert_eq!(outcome.old_token, fact.prompts[0].targets[0].1);
        assert_eq!(
            outcome.new_token,
            prompt(model.as_ref(), CAPITAL_PROMPTS[0], "Italy").targets[0].1
        );
        assert_eq!(outcome.neurons, fact.neurons);
        assert!(outcome.excluded.is_empty());
        let e_old = model
            .output_embedding(outcome.old_token)
            .unwrap()
            .to_kind(Kind::Double);
        let e_new = model
            .output_embedding(outcome.new_token)
            .unwrap()
            .to_kind(Kind::Double);
        for (Neuron { layer: l, index: n }, v) in fact.neurons.iter().zip(&before) {
            let v = v.get(0).to_kind(Kind::Double);
            let expected = if scale_by_norm {
                let nv = v.norm().double_value(&[]);
                &v - &e_old * (nv / e_old.norm().double_value(&[]))
                    + &e_new * (8.0 * nv / e_new.norm().double_value(&[]))
            } else {
                &v - &e_old + &e_new * 8.0
            };
            let got = model
                .value_slots(l, &[n])
                .unwrap()
                .get(0)
                .to_kind(Kind::Double);
            let diff = (&got - &expected).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "slot ({l}, {n}) off by {diff}");
        }
        // Nothing else moved.
        let edited = snapshot(model.as_ref());
        let changed: usize = (0..3)
            .map(|l| {
                let d = (&edited[l] - &original[l]).abs().sum_dim_intlist(
                    [1i64].as_slice(),
                    false,
                    Kind::Double,
                );
                Vec::<f64>::try_from(&d)
                    .unwrap()
                    .iter()
                    .filter(|&&x| x != 0.0)
                    .count()
            })
            .sum();
        assert_eq!(changed, fact.neurons.len());
        outcome.handle.restore(model.as_mut()).unwrap();
        assert!(
            same(&snapshot(model.as_ref()), &original),
            "restore is not bit for bit"
        );
    }
}

#[test]
fn shared_neurons_are_left_out() {
    let mut model = tiny_llama();
    let original = snapshot(model.as_ref());
    let facts = llama_facts(model.as_ref());
    let fact = &facts[0];
    // (1, 17) is held by every fact of the relation: left out at the default 0.1.
    let freq = frequencies(&facts, &[Neuron::new(1, 17)]);
    let outcome = update_fact(
        model.as_mut(),
        fact,
        "Italy",
        &freq,
        &UpdateConfig::default(),
    )
    .unwrap();
    assert_eq!(outcome.excluded.as_slice(), &[(1, 17)]);
    assert_eq!(outcome.neurons.as_slice(), &[(0, 3), (2, 40)]);
    assert!(model
        .value_slots(1, &[17])
        .unwrap()
        .equal(&original[1].get(17).unsqueeze(0)));
    outcome.handle.restore(model.as_mut()).unwrap();
    // With the threshold at 1, nothing is left out.
    let config = UpdateConfig {
        shared_threshold: 1.0,
        ..UpdateConfig::default()
    };
    let outcome = update_fact(model.as_mut(), fact, "Italy", &freq, &config).unwrap();
    assert_eq!(outcome.neurons.len(), 3);
    outcome.handle.restore(model.as_mut()).unwrap();
    // All shared: refused, untouched.
    let all = frequencies(&facts, fact.neurons.as_slice());
    let err = update_fact(
        model.as_mut(),
        fact,
        "Italy",
        &all,
        &UpdateConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, EditError::AllNeuronsShared { excluded: 3, .. }),
        "{err}"
    );
    assert!(same(&snapshot(model.as_ref()), &original));
}

#[test]
fn refused_edits_leave_the_weights_untouched() {
    let mut model = tiny_llama();
    let original = snapshot(model.as_ref());
    let facts = llama_facts(model.as_ref());
    let freq = NeuronFrequencies::default();
    let config = UpdateConfig::default();
    // Multi-token target.
    let err = update_fact(model.as_mut(), &facts[0], "Microsoft", &freq, &config).unwrap_err();
    match &err {
        EditError::MultiTokenTarget { count, pieces, .. } => {
            assert!(*count > 1 && pieces.len() == *count)
        }
        other => panic!("expected MultiTokenTarget, got {other}"),
    }
    // Same target.
    let err = update_fact(model.as_mut(), &facts[0], "Paris", &freq, &config).unwrap_err();
    assert!(matches!(err, EditError::SameTarget { .. }), "{err}");
    // Out-of-range neurons, including one valid neuron in another layer (nothing may be written).
    let mut bad = facts[0].clone();
    bad.neurons = NeuronSet::new([(0, 3), (2, 96)]);
    let err = update_fact(model.as_mut(), &bad, "Italy", &freq, &config).unwrap_err();
    assert!(
        matches!(
            err,
            EditError::NeuronOutOfRange {
                layer: 2,
                neuron: 96,
                ..
            }
        ),
        "{err}"
    );
    bad.neurons = NeuronSet::new([(0, 3), (7, 1)]);
    let err = update_fact(model.as_mut(), &bad, "Italy", &freq, &config).unwrap_err();
    assert!(
        matches!(err, EditError::LayerOutOfRange { layer: 7, .. }),
        "{err}"
    );
    // Empty sets.
    bad.neurons = NeuronSet::default();
    let err = update_fact(model.as_mut(), &bad, "Italy", &freq, &config).unwrap_err();
    assert!(matches!(err, EditError::EmptyNeuronSet { .. }), "{err}");
    let err = erase_neurons(
        model.as_mut(),
        &NeuronSet::default(),
        &ErasureValue::Zero,
        "x",
    )
    .unwrap_err();
    assert!(matches!(err, EditError::EmptyNeuronSet { .. }), "{err}");
    let err = erase_relation(
        model.as_mut(),
        "r",
        &NeuronFrequencies::default(),
        &EraseConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, EditError::EmptyNeuronSet { .. }), "{err}");
    let err = edit_value_slots(model.as_mut(), &[], &[], "x").unwrap_err();
    assert!(matches!(err, EditError::EmptyNeuronSet { .. }), "{err}");
    // Bad values and bad tokens.
    let err = edit_value_slots(model.as_mut(), &two_neurons(), &[f32::NAN; 128], "x").unwrap_err();
    assert!(matches!(err, EditError::NonFiniteValues { .. }), "{err}");
    let err = edit_value_slots(model.as_mut(), &two_neurons(), &[0.0; 127], "x").unwrap_err();
    assert!(matches!(err, EditError::InvalidParameter { .. }), "{err}");
    let err = update_tokens(model.as_mut(), &facts[0].neurons, 1, 600, &freq, &config).unwrap_err();
    assert!(
        matches!(
            err,
            EditError::Model(kn_model::ModelError::TokenOutOfRange { .. })
        ),
        "{err}"
    );
    let err = erase_neurons(
        model.as_mut(),
        &facts[0].neurons,
        &ErasureValue::TokenText("no-such-token".into()),
        "x",
    )
    .unwrap_err();
    assert!(matches!(err, EditError::NoErasureToken { .. }), "{err}");
    let bad_config = UpdateConfig {
        lambda_add: f64::NAN,
        ..config
    };
    assert!(update_fact(model.as_mut(), &facts[0], "Italy", &freq, &bad_config).is_err());
    assert!(
        same(&snapshot(model.as_ref()), &original),
        "a refused edit touched the weights"
    );
}

#[test]
fn patch_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edit.kn-patch");
    let mut model = tiny_llama();
    let original = snapshot(model.as_ref());
    let facts = llama_facts(model.as_ref());
    let freq = frequencies(&facts, &[]);
    let outcome = update_fact(
        model.as_mut(),
        &facts[0],
        "Italy",
        &freq,
        &UpdateConfig::default(),
    )
    .unwrap();
    let edited = snapshot(model.as_ref());
    outcome.handle.save(&path).unwrap();
    assert!(
        std::fs::metadata(&path).unwrap().len() < 4096,
        "a 3-neuron patch should be small"
    );
    outcome.handle.restore(model.as_mut()).unwrap();
    assert!(same(&snapshot(model.as_ref()), &original));
    let patch = Patch::load(&path).unwrap();
    assert_eq!(&patch, outcome.handle.patch());
    assert_eq!(patch.model.fingerprint, model.info().fingerprint);
    let handle = apply_patch(model.as_mut(), &patch).unwrap();
    assert!(
        same(&snapshot(model.as_ref()), &edited),
        "applied patch differs from the edit"
    );
    handle.restore(model.as_mut()).unwrap();
    assert!(same(&snapshot(model.as_ref()), &original));
    // The reversed patch undoes an applied one.
    let _applied = apply_patch(model.as_mut(), &patch).unwrap();
    let _undo = apply_patch(model.as_mut(), &patch.reversed()).unwrap();
    assert!(same(&snapshot(model.as_ref()), &original));
    // The same weights in GGUF form have another fingerprint: refused.
    let mut gguf = load("tiny-llama.gguf");
    let gguf_original = snapshot(gguf.as_ref());
    let err = apply_patch(gguf.as_mut(), &patch).unwrap_err();
    assert!(
        matches!(err, EditError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(same(&snapshot(gguf.as_ref()), &gguf_original));
}

#[test]
fn patches_for_other_models_are_refused() {
    let mut llama = tiny_llama();
    let mut bert = tiny_bert();
    let llama_original = snapshot(llama.as_ref());
    let bert_original = snapshot(bert.as_ref());
    let bert_edit = erase_neurons(
        bert.as_mut(),
        &NeuronSet::new([(0, 1), (2, 3)]),
        &ErasureValue::Zero,
        "test",
    )
    .unwrap();
    let err = apply_patch(llama.as_mut(), bert_edit.handle.patch()).unwrap_err();
    assert!(
        matches!(
            err,
            EditError::ModelMismatch {
                field: "architecture",
                ..
            }
        ),
        "{err}"
    );
    let err = bert_edit.handle.restore(llama.as_mut()).unwrap_err();
    assert!(matches!(err, EditError::ModelMismatch { .. }), "{err}");
    assert!(same(&snapshot(llama.as_ref()), &llama_original));
    // A changed fingerprint, through a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.safetensors");
    let mut patch = bert_edit.handle.patch().clone();
    bert_edit.handle.restore(bert.as_mut()).unwrap();
    assert!(same(&snapshot(bert.as_ref()), &bert_original));
    patch.model.fingerprint = "0123456789abcdef".into();
    patch.save(&path).unwrap();
    let err = apply_patch(bert.as_mut(), &Patch::load(&path).unwrap()).unwrap_err();
    assert!(
        matches!(err, EditError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(same(&snapshot(bert.as_ref()), &bert_original));
    // Garbage and missing files.
    std::fs::write(&path, b"not a patch").unwrap();
    assert!(matches!(
        Patch::load(&path),
        Err(EditError::PatchFormat { .. })
    ));
    assert!(matches!(
        Patch::load(&dir.path().join("missing")),
        Err(EditError::Io { .. })
    ));
}

#[test]
fn erasure_writes_the_unknown_token_embedding_and_restores() {
    // BERT: [UNK].
    let mut bert = tiny_bert();
    let original = snapshot(bert.as_ref());
    let unk = erasure_token(bert.as_ref(), &ErasureValue::UnknownToken)
        .unwrap()
        .unwrap();
    assert_eq!(Some(unk as u32), bert.tokenizer().token_to_id("[UNK]"));
    let facts_neurons = [
        NeuronSet::new([(0, 1), (1, 2), (2, 3)]),
        NeuronSet::new([(0, 1), (2, 3)]),
        NeuronSet::new([(0, 1)]),
    ];
    let freq = NeuronFrequencies::from_sets(facts_neurons.iter());
    let outcome = erase_relation(
        bert.as_mut(),
        "P36",
        &freq,
        &EraseConfig {
            top_n: 2,
            ..EraseConfig::default()
        },
    )
    .unwrap();
    assert_eq!(outcome.neurons.as_slice(), &[(0, 1), (2, 3)]);
    assert_eq!(outcome.token, Some(unk));
    let e = bert.output_embedding(unk).unwrap();
    for Neuron { layer: l, index: n } in outcome.neurons.iter() {
        assert!(bert.value_slots(l, &[n]).unwrap().get(0).equal(&e));
    }
    outcome.handle.restore(bert.as_mut()).unwrap();
    assert!(same(&snapshot(bert.as_ref()), &original));
    // Llama: <|endoftext|> (id 0); zeros; a chosen token.
    let mut llama = tiny_llama();
    let original = snapshot(llama.as_ref());
    assert_eq!(
        erasure_token(llama.as_ref(), &ErasureValue::UnknownToken).unwrap(),
        Some(0)
    );
    assert_eq!(
        erasure_token(
            llama.as_ref(),
            &ErasureValue::TokenText("<|im_end|>".into())
        )
        .unwrap(),
        Some(2)
    );
    let zero = erase_relation(
        llama.as_mut(),
        "P36",
        &freq,
        &EraseConfig {
            top_n: 20,
            value: ErasureValue::Zero,
        },
    )
    .unwrap();
    assert_eq!(zero.neurons.len(), 3);
    for Neuron { layer: l, index: n } in zero.neurons.iter() {
        let slot = llama.value_slots(l, &[n]).unwrap();
        assert_eq!(rows(&slot)[0], vec![0.0f32; 64]);
    }
    let chosen = erase_neurons(
        llama.as_mut(),
        &NeuronSet::new([(1, 2)]),
        &ErasureValue::Token(5),
        "x",
    )
    .unwrap();
    assert!(llama
        .value_slots(1, &[2])
        .unwrap()
        .get(0)
        .equal(&llama.output_embedding(5).unwrap()));
    // Stacked edits undo in reverse order.
    chosen.handle.restore(llama.as_mut()).unwrap();
    zero.handle.restore(llama.as_mut()).unwrap();
    assert!(same(&snapshot(llama.as_ref()), &original));
}

/// The checks' oracle: each prompt's top-1 token by a plain forward pass, one prompt at a time.
fn top1(model: &dyn KnowledgeModel, prompts: &[EncodedPrompt]) -> Vec<i64> {
    prompts
        .iter()
        .map(|p| {
            let logits = model
                .forward(std::slice::from_ref(p), &[], false)
                .unwrap()
                .logits;
            logits.argmax(-1, false).int64_value(&[0])
        })
        .collect()
}

/// Share of positions holding the same token.
fn kept(before: &[i64], after: &[i64]) -> f64 {
    before.iter().zip(after).filter(|(a, b)| a == b).count() as f64 / before.len() as f64
}

/// `prompts` with the model's present top-1 token as their answer.
fn answered_as_now(model: &dyn KnowledgeModel, prompts: &[EncodedPrompt]) -> Vec<EncodedPrompt> {
    prompts
        .iter()
        .zip(top1(model, prompts))
        .map(|(p, top)| EncodedPrompt {
            answer_ids: vec![top],
            targets: vec![(p.answer_position, top)],
            ..p.clone()
        })
        .collect()
}

#[test]
fn update_evaluation_reports_the_papers_metrics() {
    let mut model = tiny_llama();
    let original = snapshot(model.as_ref());
    let facts = llama_facts(model.as_ref());
    let freq = frequencies(&facts, &[]);
    let same_relation = facts[1].prompts.clone();
    let other = facts[2].prompts.clone();
    // A strong update on every neuron of the last layer must make "Italy" top-1.
    let mut fact = facts[0].clone();
    fact.neurons = NeuronSet::new((0..96).map(|n| (2, n)));
    let config = UpdateConfig {
        shared_threshold: 1.0,
        ..UpdateConfig::default()
    };
    // The checks: the located prompts again as "held-out" paraphrases with the new answer
    // (generality must then equal reliability), and two reversed prompts answered "Paris".
    let encode = |texts: &[&str], answer: &str| -> Vec<EncodedPrompt> {
        texts
            .iter()
            .map(|t| {
                model
                    .encode(t, Some(answer), AnswerPolicy::FirstToken)
                    .unwrap()
            })
            .collect()
    };
    let located_texts: Vec<&str> = fact.prompts.iter().map(|p| p.text.as_str()).collect();
    let checks = CheckPrompts {
        held_out: encode(&located_texts, "Italy"),
        reversed: Some(encode(&["Italy borders", "Italy is next to"], "Paris")),
    };
    let same_before = top1(model.as_ref(), &same_relation);
    let other_before = top1(model.as_ref(), &other);
    let reversed_before = top1(model.as_ref(), checks.reversed.as_ref().unwrap());
    let (evaluation, outcome) = evaluate_update(
        model.as_mut(),
        &fact,
        "Italy",
        &freq,
        &same_relation,
        &other,
        &config,
        &EvaluationConfig::default(),
        &checks,
    )
    .unwrap();
    let c = &evaluation.checks;
    assert_eq!(c.reliability, Some(evaluation.after.success_rate));
    assert_eq!(c.generality, c.reliability);
    assert_eq!(c.generality_prompts, 3);
    assert_eq!(
        c.locality.same_relation,
        Some(kept(&same_before, &top1(model.as_ref(), &same_relation)))
    );
    assert_eq!(
        c.locality.other_relations,
        Some(kept(&other_before, &top1(model.as_ref(), &other)))
    );
    assert_eq!(c.symmetry_prompts, 2);
    // Symmetry: the share of reversed prompts whose top-1 token is their answer, edit applied.
    let reversed = checks.reversed.as_ref().unwrap();
    let answers: Vec<i64> = reversed.iter().map(|p| p.answer_ids[0]).collect();
    assert_eq!(
        c.symmetry,
        Some(kept(&answers, &top1(model.as_ref(), reversed)))
    );
    assert_eq!(c.symmetry_before, Some(kept(&answers, &reversed_before)));
    assert_eq!(evaluation.before.prompts, 3);
    assert_eq!(evaluation.after.success_rate, 1.0, "{evaluation:?}");
    assert_eq!(evaluation.after.change_rate, 1.0);
    assert_eq!(evaluation.after.top5_rate, 1.0);
    assert_eq!(evaluation.after.mrr, 1.0);
    assert!(evaluation.after.mean_new_prob > evaluation.before.mean_new_prob);
    assert!(evaluation.before.mrr < 1.0);
    let (b, a) = (
        evaluation.before.same_relation.unwrap(),
        evaluation.after.same_relation.unwrap(),
    );
    assert_eq!(b.prompts, 2);
    assert!(b.perplexity.is_finite() && a.perplexity.is_finite());
    assert!(evaluation.after.other_relations.is_some());
    let random = evaluation.random_control.as_ref().unwrap();
    assert_eq!(random.prompts, 3);
    assert_eq!(evaluation.random_neurons.as_ref().unwrap().len(), 96);
    assert_eq!(evaluation.old_text.trim(), "Paris");
    let json = serde_json::to_value(&evaluation).unwrap();
    for key in [
        "before",
        "after",
        "random_control",
        "neurons",
        "excluded",
        "old_token",
        "new_token",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    outcome.handle.restore(model.as_mut()).unwrap();
    assert!(same(&snapshot(model.as_ref()), &original));
}

#[test]
fn erasure_evaluation_measures_both_sides_and_the_control() {
    let mut model = tiny_llama();
    let original = snapshot(model.as_ref());
    let facts = llama_facts(model.as_ref());
    let freq = NeuronFrequencies::from_sets(
        facts
            .iter()
            .filter(|f| f.relation == "capital")
            .map(|f| &f.neurons),
    );
    let relation_prompts: Vec<_> = facts
        .iter()
        .filter(|f| f.relation == "capital")
        .flat_map(|f| f.prompts.clone())
        .collect();
    let other: Vec<_> = facts[2].prompts.clone();
    // The checks' prompts answered as the model answers them now, so that every one counts
    // for forgetting; the held-out ones are another fact's.
    let prompts = ErasurePrompts {
        relation: answered_as_now(model.as_ref(), &relation_prompts),
        held_out: answered_as_now(model.as_ref(), &facts[1].prompts),
        other_relations: other.clone(),
    };
    let other_before = top1(model.as_ref(), &other);
    let (evaluation, outcome) = evaluate_erasure(
        model.as_mut(),
        "capital",
        &freq,
        &prompts,
        &EraseConfig {
            top_n: 4,
            value: ErasureValue::Token(7),
        },
        &EvaluationConfig {
            seed: 3,
            ..EvaluationConfig::default()
        },
    )
    .unwrap();
    // The checks against the oracle, with the erasure applied.
    let forgotten = |prompts: &[EncodedPrompt]| {
        let after = top1(model.as_ref(), prompts);
        let changed = prompts
            .iter()
            .zip(&after)
            .filter(|(p, a)| p.answer_ids[0] != **a);
        changed.count() as f64 / prompts.len() as f64
    };
    let c = &evaluation.checks;
    assert_eq!(c.reliability_prompts, 5);
    assert_eq!(c.reliability, Some(forgotten(&prompts.relation)));
    assert_eq!(c.generality_prompts, prompts.held_out.len());
    assert_eq!(c.held_out_prompts, prompts.held_out.len());
    assert_eq!(c.generality, Some(forgotten(&prompts.held_out)));
    assert_eq!(c.locality.same_relation, None);
    assert_eq!(
        c.locality.other_relations,
        Some(kept(&other_before, &top1(model.as_ref(), &other)))
    );
    assert!(c.reliability.unwrap() > 0.0, "{c:?}");
    assert!(evaluation.random_checks.is_some());
    assert_eq!(evaluation.neurons.len(), 4);
    assert_eq!(evaluation.token, Some(7));
    assert_eq!(evaluation.before.erased_relation.prompts, 5);
    assert_eq!(evaluation.after.other_relations.unwrap().prompts, 2);
    assert_ne!(
        evaluation.before.erased_relation.perplexity,
        evaluation.after.erased_relation.perplexity
    );
    assert!(evaluation.random_control.is_some());
    let random = evaluation.random_neurons.as_ref().unwrap();
    assert_eq!(
        NeuronSet::from(random.clone())
            .by_layer()
            .values()
            .map(Vec::len)
            .collect::<Vec<_>>(),
        NeuronSet::from(evaluation.neurons.clone())
            .by_layer()
            .values()
            .map(Vec::len)
            .collect::<Vec<_>>()
    );
    outcome.handle.restore(model.as_mut()).unwrap();
    assert!(same(&snapshot(model.as_ref()), &original));
    // Without prompts for the erased relation it is refused before anything happens.
    let err = evaluate_erasure(
        model.as_mut(),
        "capital",
        &freq,
        &ErasurePrompts {
            relation: Vec::new(),
            ..prompts
        },
        &EraseConfig::default(),
        &EvaluationConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, EditError::NoPrompts { .. }), "{err}");
    assert!(same(&snapshot(model.as_ref()), &original));
}

#[test]
fn bert_update_and_restore() {
    let mut model = tiny_bert();
    let original = snapshot(model.as_ref());
    let fact = fact(
        model.as_ref(),
        "P36:0",
        "P36",
        &["The capital of France is [MASK] ."],
        "Paris",
        &[(0, 5), (2, 60)],
    );
    let outcome = update_fact(
        model.as_mut(),
        &fact,
        "Rome",
        &NeuronFrequencies::default(),
        &UpdateConfig::default(),
    )
    .unwrap();
    assert_eq!(
        Some(outcome.new_token as u32),
        model.tokenizer().token_to_id("Rome")
    );
    assert_eq!(
        Some(outcome.old_token as u32),
        model.tokenizer().token_to_id("Paris")
    );
    assert!(!same(&snapshot(model.as_ref()), &original));
    outcome.handle.restore(model.as_mut()).unwrap();
    assert!(same(&snapshot(model.as_ref()), &original));
}
