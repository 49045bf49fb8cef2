//! Helpers shared by the integration tests: loading the committed tiny fixtures, encoding
//! prompts, and snapshots of every value slot to compare weights bit for bit.
#![allow(dead_code)]

use kn_edit::{EncodedFact, NeuronSet};
use kn_model::tch::Tensor;
use kn_model::{load_model, AnswerPolicy, EncodedPrompt, KnowledgeModel};
use std::path::{Path, PathBuf};

/// Path of a committed fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// Loads a fixture model on the CPU.
pub fn load(name: &str) -> Box<dyn KnowledgeModel> {
    let path = fixture(name);
    load_model(
        path.to_str().expect("utf-8 path"),
        kn_model::tch::Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

pub fn tiny_llama() -> Box<dyn KnowledgeModel> {
    load("tiny-llama")
}

pub fn tiny_bert() -> Box<dyn KnowledgeModel> {
    load("tiny-bert")
}

/// Encodes a prompt with its answer (first-token policy).
pub fn prompt(model: &dyn KnowledgeModel, text: &str, answer: &str) -> EncodedPrompt {
    model
        .encode(text, Some(answer), AnswerPolicy::FirstToken)
        .unwrap_or_else(|e| panic!("cannot encode {text:?} / {answer:?}: {e}"))
}

/// A fact with its prompts (all with `answer`) and neurons.
pub fn fact(
    model: &dyn KnowledgeModel,
    id: &str,
    relation: &str,
    texts: &[&str],
    answer: &str,
    neurons: &[(usize, usize)],
) -> EncodedFact {
    EncodedFact {
        id: id.into(),
        relation: relation.into(),
        prompts: texts.iter().map(|t| prompt(model, t, answer)).collect(),
        neurons: NeuronSet::new(neurons.iter().copied()),
        activation_baseline: None,
    }
}

/// Every value slot of every layer, `[ffn_width, hidden]` per layer.
pub fn snapshot(model: &dyn KnowledgeModel) -> Vec<Tensor> {
    let info = model.info();
    let all: Vec<usize> = (0..info.ffn_width).collect();
    (0..info.num_layers)
        .map(|layer| model.value_slots(layer, &all).expect("value slots"))
        .collect()
}

/// Whether two snapshots are equal bit for bit.
pub fn same(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equal(y))
}

/// Tiny-llama prompts of the "capital" relation (answer Paris, single token).
pub const CAPITAL_PROMPTS: &[&str] = &[
    "The capital of France is",
    "France has its capital in",
    "The French capital is",
];
/// Tiny-llama prompts of the "language" relation (answer Spanish, single token).
pub const LANGUAGE_PROMPTS: &[&str] =
    &["The official language of Spain is", "In Spain people speak"];

/// Three synthetic tiny-llama facts over two relations.
pub fn llama_facts(model: &dyn KnowledgeModel) -> Vec<EncodedFact> {
    vec![
        fact(
            model,
            "capital:0",
            "capital",
            CAPITAL_PROMPTS,
            "Paris",
            &[(0, 3), (1, 17), (2, 40)],
        ),
        fact(
            model,
            "capital:1",
            "capital",
            &["Rome is the capital of", "Rome is located in"],
            "Italy",
            &[(1, 17), (2, 41)],
        ),
        fact(
            model,
            "language:0",
            "language",
            LANGUAGE_PROMPTS,
            "Spanish",
            &[(0, 5), (2, 90)],
        ),
    ]
}
