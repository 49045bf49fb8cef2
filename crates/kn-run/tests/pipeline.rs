//! The pipeline's steps on the tiny Llama and the bundled PARAREL: fact selection, the
//! per-fact discovery, and a resumable output directory written and read back.

use kn_attribution::AttributionConfig;
use kn_data::Pararel;
use kn_model::{load_model, tch::Device};
use kn_run::{
    discover_fact, discover_facts, prompt_style, select_facts, write_summaries, FactSelection,
    FactSteps, OutputDir, RunDir, RunError,
};
use kn_schema::{ModelRecord, RunConfig};
use kn_select::{CoarseRule, RefineConfig};
use std::path::Path;

fn tiny_llama() -> Box<dyn kn_model::KnowledgeModel> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-llama");
    load_model(dir.to_str().unwrap(), Device::Cpu).unwrap()
}

fn config(relations: &[String], threshold: f32) -> RunConfig {
    RunConfig {
        version: "test".into(),
        model: ModelRecord {
            source: "tiny-llama".into(),
            architecture: "llama".into(),
            fingerprint: "0".into(),
            dtype: "f32".into(),
        },
        relations: relations.to_vec(),
        facts_per_relation: 2,
        seed: 7,
        data: "bundled".into(),
        method: "ig".into(),
        steps: 4,
        layers: vec![0, 1, 2],
        threshold,
        share: 0.7,
        adaptive: false,
        min_prompts: 3,
        max_prompts: 0,
        correct_rank: 0,
        correct_prompts: 1,
        single_token: false,
        shard: None,
    }
}

#[test]
fn facts_are_selected_discovered_and_written_resumably() {
    let model = tiny_llama();
    let dataset = kn_data::load_facts(&Pararel::bundled_dir()).unwrap();
    let relations = vec!["P36".to_string()];
    let selection = FactSelection {
        seed: 7,
        facts_per_relation: 2,
        single_token: false,
        correct_rank: 0,
        ..FactSelection::default()
    };
    let heard = std::cell::RefCell::new(Vec::new());
    let style = prompt_style(model.as_ref());
    let facts = select_facts(
        model.as_ref(),
        &dataset,
        &relations,
        &style,
        &selection,
        &|m| heard.borrow_mut().push(m),
    )
    .unwrap();
    assert_eq!(facts.len(), 2);
    assert!(
        heard.borrow()[0].starts_with("P36: 2 facts kept"),
        "{:?}",
        heard.borrow()
    );
    // The same seed selects the same facts; a shard takes every n-th of them.
    let again = select_facts(
        model.as_ref(),
        &dataset,
        &relations,
        &style,
        &selection,
        &|_| {},
    )
    .unwrap();
    assert_eq!(
        facts
            .iter()
            .map(|(f, _)| f.id.to_string())
            .collect::<Vec<_>>(),
        again
            .iter()
            .map(|(f, _)| f.id.to_string())
            .collect::<Vec<_>>()
    );
    let sharded = FactSelection {
        shard: Some((1, 2)),
        ..selection.clone()
    };
    let second = select_facts(
        model.as_ref(),
        &dataset,
        &relations,
        &style,
        &sharded,
        &|_| {},
    )
    .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].0.id, facts[1].0.id);

    let attribution = AttributionConfig {
        steps: 4,
        ..AttributionConfig::default()
    };
    let rule = CoarseRule::Relative { ratio: 0.2 };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let config = config(&relations, 0.2);
    {
        let out = OutputDir::open(&run, &config, "test").unwrap();
        for (fact, prompts) in &facts {
            let steps = FactSteps {
                method: kn_attribution::Method::Ig,
                attribution: &attribution,
                rule: &rule,
                refine: &RefineConfig::default(),
                save_scores: 0,
                counterfactuals: None,
            };
            let (record, mean) = discover_fact(model.as_ref(), fact, prompts, &steps).unwrap();
            assert_eq!(record.prompts.len(), prompts.len());
            assert!(record.prompts.iter().all(|p| !p.coarse.is_empty()));
            assert_eq!(mean.dim(), (3, model.info().ffn_width));
            out.append(&record).unwrap();
        }
        write_summaries(&out, &out.records().unwrap(), &config).unwrap();
        // A second writer of the same directory is refused while this one holds it.
        let busy = OutputDir::open(&run, &config, "test")
            .err()
            .expect("locked");
        assert!(matches!(busy, RunError::BadInput(_)), "{busy}");
    }
    // Resuming with the same configuration reads the finished facts; another is refused.
    let out = OutputDir::open(&run, &config, "test").unwrap();
    assert_eq!(out.records().unwrap().len(), 2);
    drop(out);
    let other = OutputDir::open(&run, &self::config(&relations, 0.3), "test")
        .err()
        .expect("a different configuration");
    assert!(other.to_string().contains("threshold"), "{other}");
    // The finished run reads back for the experiments.
    let read = RunDir::load(&run).unwrap();
    assert_eq!(read.records.len(), 2);
    assert!(run.join("relations.json").exists() && run.join("stats.json").exists());

    // The run loop: asked to stop before the second fact, it keeps the first and says how to
    // resume; resumed, it finishes; each fact reported, one relation's scores saved.
    let looped = dir.path().join("looped");
    let out = OutputDir::open(&looped, &config, "test").unwrap();
    let todo: Vec<&(&kn_data::Fact, Vec<String>)> = facts.iter().collect();
    let steps = FactSteps {
        method: kn_attribution::Method::Ig,
        attribution: &attribution,
        rule: &rule,
        refine: &RefineConfig::default(),
        save_scores: 1,
        counterfactuals: None,
    };
    let asked = std::cell::Cell::new(0);
    let stop_second = || {
        asked.set(asked.get() + 1);
        asked.get() > 1
    };
    let messages = std::cell::RefCell::new(Vec::new());
    let report = |m: kn_run::Message| messages.borrow_mut().push(m);
    let stopped = discover_facts(model.as_ref(), &out, &todo, &steps, &stop_second, &report)
        .err()
        .expect("stopped");
    assert!(matches!(stopped, RunError::Interrupted(_)), "{stopped}");
    assert!(
        stopped.to_string().contains("after 1 of 2 facts"),
        "{stopped}"
    );
    assert_eq!(out.records().unwrap().len(), 1);
    discover_facts(model.as_ref(), &out, &todo[1..], &steps, &|| false, &report).unwrap();
    assert_eq!(out.records().unwrap().len(), 2);
    assert_eq!(messages.borrow().len(), 2);
    assert_eq!(out.saved_scores("P36").unwrap(), 1);
}
