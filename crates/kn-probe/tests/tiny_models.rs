//! The activation experiment and trigger sentences on the tiny Llama and BERT fixtures with the
//! committed BINGREL excerpt: counts add up, skips are counted, batched results equal one
//! prompt at a time, results are seeded, triggers are ranked and read at the right position.

use kn_schema::Neuron;
use std::path::{Path, PathBuf};

use kn_data::{Bingrel, FactId, Pararel, PromptStyle};
use kn_model::{load_model, tch::Device, AnswerPolicy};
use kn_probe::{
    activation_experiment, prompt_style, trigger_sentences, ActivationConfig, Corpus,
    KnowledgeFact, ProbeError, SentenceKind, TriggerConfig,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

fn corpus() -> Corpus {
    let dir = Bingrel::fixture_dir();
    Corpus::from_bags(
        ["P36", "P47", "P176"]
            .iter()
            .map(|r| Bingrel::load_relation(&dir, r, 5).unwrap())
            .collect(),
    )
}

/// The 15 facts of the excerpt with `neurons` (P36:4 none), and their PARAREL prompts in
/// `style` (P176 facts none).
fn facts_with(neurons: &[(usize, usize)], style: &PromptStyle) -> Vec<KnowledgeFact> {
    let dataset = Pararel::load_bundled().unwrap();
    let mut out = Vec::new();
    for relation in ["P36", "P47", "P176"] {
        for index in 0..5 {
            let fact = dataset.fact(&FactId::new(relation, index)).unwrap().clone();
            // P36:4 gets no neurons, to be skipped.
            let neurons = if relation == "P36" && index == 4 {
                Vec::new()
            } else {
                neurons.to_vec()
            };
            let prompts = if relation == "P176" {
                Vec::new()
            } else {
                dataset
                    .prompts(&fact, style)
                    .into_iter()
                    .map(|p| p.text)
                    .collect()
            };
            out.push(KnowledgeFact {
                fact,
                neurons: neurons.into_iter().map(Neuron::from).collect(),
                prompts,
            });
        }
    }
    out
}

fn facts(neurons: &[(usize, usize)]) -> Vec<KnowledgeFact> {
    facts_with(neurons, &PromptStyle::Causal)
}

fn check_counts(report: &kn_probe::ActivationReport) {
    for group in report
        .relations
        .values()
        .chain(std::iter::once(&report.overall))
    {
        for kind in SentenceKind::ALL {
            let c = group.sentences.get(kind);
            assert_eq!(
                c.sentences,
                c.evaluated
                    + c.target_missing
                    + c.no_context
                    + c.too_long
                    + c.unencodable
                    + c.fact_skipped,
                "{kind:?}: {c:?}"
            );
            assert_eq!(group.knowledge.get(kind).n, group.facts);
        }
    }
    let overall = &report.overall;
    assert_eq!(
        overall.facts,
        report.relations.values().map(|g| g.facts).sum::<usize>()
    );
    assert_eq!(overall.facts, report.facts.len());
    assert_eq!(overall.facts + overall.skipped.total(), 15);
    let evaluated: usize = report
        .facts
        .iter()
        .map(|f| f.sentences.t1 + f.sentences.t2 + f.sentences.t3)
        .sum();
    assert_eq!(
        evaluated,
        overall.sentences.t1.evaluated
            + overall.sentences.t2.evaluated
            + overall.sentences.t3.evaluated
    );
}

#[test]
fn llama_activations_add_up_and_match_single_passes() {
    let model = load_model(fixture("tiny-llama").to_str().unwrap(), Device::Cpu).unwrap();
    let config = ActivationConfig {
        seed: 3,
        batch_size: 5,
        ..ActivationConfig::default()
    };
    let facts = facts(&[(0, 1), (2, 95)]);
    let mut calls = 0;
    let report = activation_experiment(
        model.as_ref(),
        &facts,
        &corpus(),
        &config,
        &mut |done, total| {
            calls += 1;
            assert!(done <= total);
        },
    )
    .unwrap();
    assert!(calls > 0);
    check_counts(&report);
    let skipped = &report.overall.skipped;
    assert_eq!(skipped.no_neurons, 1, "P36:4 has no neurons");
    assert_eq!(skipped.empty_th_bag, 1, "P47:3 has no head+tail sentence");
    assert_eq!(report.relations["P36"].skipped.no_neurons, 1);
    assert!(report.overall.random.is_some() && report.facts.iter().all(|f| f.random.is_some()));
    assert!(report.mean_of_relations.relations >= 1);

    // Seeded: the same report again; another seed moves T2/T3 words but not T1.
    let again =
        activation_experiment(model.as_ref(), &facts, &corpus(), &config, &mut |_, _| {}).unwrap();
    assert_eq!(
        serde_json::to_string(&report).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
    let other = ActivationConfig {
        seed: 4,
        ..config.clone()
    };
    let other =
        activation_experiment(model.as_ref(), &facts, &corpus(), &other, &mut |_, _| {}).unwrap();
    // (Batches differ, so only up to float noise.)
    let (a, b) = (report.overall.knowledge.t1, other.overall.knowledge.t1);
    assert_eq!(a.n, b.n);
    assert!(
        (a.mean.unwrap() - b.mean.unwrap()).abs() < 1e-5,
        "{a:?} vs {b:?}"
    );
    assert_ne!(
        serde_json::to_string(&report.overall.knowledge.t3).unwrap(),
        serde_json::to_string(&other.overall.knowledge.t3).unwrap()
    );

    // Batched and padded passes give the same T1 values as one prompt at a time.
    let first = &report.facts[0];
    let fact = facts
        .iter()
        .find(|f| f.fact.id.to_string() == first.fact)
        .unwrap();
    let bags = corpus().bags(&fact.fact.id).unwrap().unwrap().clone();
    let probes = kn_data::probe::tail_probes(
        &bags.th_bags,
        &fact.fact.subject,
        &fact.fact.object,
        &prompt_style(model.info()),
    );
    let mut values = Vec::new();
    for probe in &probes.probes {
        let prompt = model
            .encode(&probe.text, None, AnswerPolicy::FirstToken)
            .unwrap();
        let acts = model
            .forward(&[prompt], &[], true)
            .unwrap()
            .activations
            .unwrap();
        let mean: f64 = fact
            .neurons
            .iter()
            .map(|&Neuron { layer: l, index: n }| acts.double_value(&[0, l as i64, n as i64]))
            .sum::<f64>()
            / fact.neurons.len() as f64;
        values.push(mean);
    }
    assert_eq!(values.len(), first.sentences.t1);
    let expected = values.iter().sum::<f64>() / values.len() as f64;
    assert!(
        (expected - first.knowledge.t1).abs() < 1e-4,
        "{expected} vs {}",
        first.knowledge.t1
    );

    // Sign-aligned values: each neuron signed by its mean on the fact's own prompts.
    let per_neuron = |texts: &[String]| -> Vec<f64> {
        let mut sums = vec![0.0; fact.neurons.len()];
        for text in texts {
            let prompt = model.encode(text, None, AnswerPolicy::FirstToken).unwrap();
            let acts = model
                .forward(&[prompt], &[], true)
                .unwrap()
                .activations
                .unwrap();
            for (sum, &Neuron { layer: l, index: n }) in sums.iter_mut().zip(&fact.neurons) {
                *sum += acts.double_value(&[0, l as i64, n as i64]) / texts.len() as f64;
            }
        }
        sums
    };
    let on_prompts = per_neuron(&fact.prompts);
    let on_t1 = per_neuron(
        &probes
            .probes
            .iter()
            .map(|p| p.text.clone())
            .collect::<Vec<_>>(),
    );
    let n = fact.neurons.len() as f64;
    let aligned_t1: f64 = on_prompts
        .iter()
        .zip(&on_t1)
        .map(|(p, t)| p.signum() * t)
        .sum::<f64>()
        / n;
    let aligned = first.aligned.as_ref().expect("P36 facts come with prompts");
    assert_eq!(aligned.prompts, fact.prompts.len());
    assert!(
        (aligned.knowledge.t1 - aligned_t1).abs() < 1e-4,
        "{aligned_t1} vs {:?}",
        aligned.knowledge
    );
    let abs_mean: f64 = on_prompts.iter().map(|p| p.abs()).sum::<f64>() / n;
    assert!((aligned.knowledge_prompts - abs_mean).abs() < 1e-4);
    assert!(aligned.knowledge_prompts + 1e-9 >= aligned.knowledge_on_prompts.abs());
    // Facts without prompts have no aligned values; groups count those that do.
    for f in &report.facts {
        assert_eq!(f.aligned.is_some(), f.relation != "P176", "{}", f.fact);
    }
    assert!(report.relations["P176"].aligned.is_none());
    let with_prompts = report.facts.iter().filter(|f| f.aligned.is_some()).count();
    assert_eq!(report.overall.aligned.as_ref().unwrap().facts, with_prompts);
    assert_eq!(
        report.overall.aligned.as_ref().unwrap().knowledge.t2.n,
        with_prompts
    );

    // Capping the sentences per fact caps T1 and T2.
    let capped = ActivationConfig {
        sentences_per_fact: 1,
        ..config
    };
    let capped =
        activation_experiment(model.as_ref(), &facts, &corpus(), &capped, &mut |_, _| {}).unwrap();
    check_counts(&capped);
    assert!(capped
        .facts
        .iter()
        .all(|f| f.sentences.t1 <= 1 && f.sentences.t2 <= 1 && f.sentences.t3 <= 1));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let model = load_model(fixture("tiny-llama").to_str().unwrap(), Device::Cpu).unwrap();
    let out_of_range = facts(&[(3, 0)]);
    assert!(matches!(
        activation_experiment(
            model.as_ref(),
            &out_of_range,
            &corpus(),
            &ActivationConfig::default(),
            &mut |_, _| {}
        ),
        Err(ProbeError::LayerOutOfRange { layer: 3, .. })
    ));
    let zero = ActivationConfig {
        batch_size: 0,
        ..ActivationConfig::default()
    };
    assert!(matches!(
        activation_experiment(
            model.as_ref(),
            &facts(&[(0, 0)]),
            &corpus(),
            &zero,
            &mut |_, _| {}
        ),
        Err(ProbeError::BadConfig(_))
    ));
    let only_p36 = Corpus::from_bags(vec![Bingrel::load_relation(
        &Bingrel::fixture_dir(),
        "P36",
        5,
    )
    .unwrap()]);
    assert!(matches!(
        activation_experiment(
            model.as_ref(),
            &facts(&[(0, 0)]),
            &only_p36,
            &ActivationConfig::default(),
            &mut |_, _| {}
        ),
        Err(ProbeError::RelationNotLoaded { .. })
    ));
    let dataset = Pararel::load_bundled().unwrap();
    assert!(matches!(
        Corpus::load(&Bingrel::fixture_dir(), &dataset, &["P36".into()]),
        Err(ProbeError::Data(kn_data::DataError::MisalignedBags { .. }))
    ));
}

#[test]
fn bert_counts_sentences_longer_than_its_context() {
    let model = load_model(fixture("tiny-bert").to_str().unwrap(), Device::Cpu).unwrap();
    let style = prompt_style(model.info());
    let report = activation_experiment(
        model.as_ref(),
        &facts_with(&[(1, 5), (2, 63)], &style),
        &corpus(),
        &ActivationConfig::default(),
        &mut |_, _| {},
    )
    .unwrap();
    check_counts(&report);
    assert!(report.overall.aligned.as_ref().is_some_and(|a| a.facts > 0));
    let too_long: usize = SentenceKind::ALL
        .iter()
        .map(|&k| report.overall.sentences.get(k).too_long)
        .sum();
    assert!(
        too_long > 0,
        "the tiny BERT has 64 positions: some BINGREL sentences must be too long"
    );
    assert!(report.facts.iter().all(|f| f.knowledge.t1.is_finite()));
}

#[test]
fn aligned_triggers_sign_each_neuron_by_its_prompts() {
    let model = load_model(fixture("tiny-llama").to_str().unwrap(), Device::Cpu).unwrap();
    let fact = facts(&[(0, 3), (1, 7), (2, 11)]).remove(0);
    let bags = corpus().bags(&fact.fact.id).unwrap().unwrap().clone();
    let config = TriggerConfig {
        top: 10,
        aligned: true,
        ..TriggerConfig::default()
    };
    let report = trigger_sentences(model.as_ref(), &fact, &bags, &config).unwrap();
    assert_eq!(report.signs.len(), 3);
    assert!(report.signs.iter().all(|s| s.abs() == 1.0));
    // The signs are those of the neurons' mean activation on the fact's prompts.
    let mut means = [0.0f64; 3];
    for text in &fact.prompts {
        let prompt = model.encode(text, None, AnswerPolicy::FirstToken).unwrap();
        let acts = model
            .forward(&[prompt], &[], true)
            .unwrap()
            .activations
            .unwrap();
        for (m, &Neuron { layer: l, index: n }) in means.iter_mut().zip(&fact.neurons) {
            *m += acts.double_value(&[0, l as i64, n as i64]);
        }
    }
    let expected: Vec<f64> = means
        .iter()
        .map(|m| if *m < 0.0 { -1.0 } else { 1.0 })
        .collect();
    assert_eq!(report.signs, expected);
    for t in &report.with_tail {
        let prompt = model
            .encode(&t.text, None, AnswerPolicy::FirstToken)
            .unwrap();
        let acts = model
            .forward(&[prompt], &[], true)
            .unwrap()
            .activations
            .unwrap();
        let score: f64 = fact
            .neurons
            .iter()
            .zip(&expected)
            .map(|(&Neuron { layer: l, index: n }, s)| {
                s * acts.double_value(&[0, l as i64, n as i64])
            })
            .sum();
        assert!((score - t.score).abs() < 1e-4, "{score} vs {}", t.score);
    }
    let plain = trigger_sentences(
        model.as_ref(),
        &fact,
        &bags,
        &TriggerConfig {
            top: 10,
            ..TriggerConfig::default()
        },
    )
    .unwrap();
    assert!(plain.signs.is_empty());
    // Without prompts there is nothing to sign by.
    let bare = kn_probe::KnowledgeFact {
        prompts: Vec::new(),
        ..fact.clone()
    };
    assert!(matches!(
        trigger_sentences(model.as_ref(), &bare, &bags, &config),
        Err(ProbeError::BadConfig(_))
    ));
}

#[test]
fn triggers_are_ranked_with_and_without_the_tail() {
    for name in ["tiny-llama", "tiny-bert"] {
        let model = load_model(fixture(name).to_str().unwrap(), Device::Cpu).unwrap();
        let fact = facts(&[(0, 3), (1, 7)]).remove(0);
        let bags = corpus().bags(&fact.fact.id).unwrap().unwrap().clone();
        let config = TriggerConfig {
            top: 3,
            ..TriggerConfig::default()
        };
        let report = trigger_sentences(model.as_ref(), &fact, &bags, &config).unwrap();
        let c = report.sentences;
        assert_eq!(
            c.sentences,
            c.evaluated + c.target_missing + c.no_context + c.too_long + c.unencodable
        );
        assert_eq!(report.with_tail.len(), c.evaluated.min(3), "{name}");
        assert_eq!(report.without_tail.len(), c.evaluated.min(3), "{name}");
        for list in [&report.with_tail, &report.without_tail] {
            assert!(
                list.windows(2).all(|w| w[0].score >= w[1].score),
                "{name}: not sorted"
            );
        }
        for t in &report.with_tail {
            assert!((t.mean * 2.0 - t.score).abs() < 1e-9);
            match model.info().kind {
                kn_model::ModelKind::Causal => {
                    assert!(
                        t.text.ends_with(&t.tail),
                        "{name}: {:?} should end with the tail",
                        t.text
                    );
                    // Read at the tail's last token: the same as encoding the cut text.
                    let prompt = model
                        .encode(&t.text, None, AnswerPolicy::FirstToken)
                        .unwrap();
                    let acts = model
                        .forward(&[prompt], &[], true)
                        .unwrap()
                        .activations
                        .unwrap();
                    let score = acts.double_value(&[0, 0, 3]) + acts.double_value(&[0, 1, 7]);
                    assert!((score - t.score).abs() < 1e-4, "{score} vs {}", t.score);
                }
                kn_model::ModelKind::Masked => {
                    assert_eq!(
                        t.text, bags.th_bags[t.sentence],
                        "{name}: the sentence as written"
                    );
                }
            }
        }
        for t in &report.without_tail {
            assert!(
                !t.text.contains(&format!("{} ", t.tail))
                    || model.info().kind == kn_model::ModelKind::Masked
            );
        }
    }
}
