//! Erasing a relation through its knowledge neurons (Dai et al. 2022, §5.2) on the default
//! model (SmolLM2-135M-Instruct): discover the knowledge neurons of a few facts of one relation
//! (default P36, "capital") that the model answers correctly, count how many facts hold each
//! neuron, set the value slots of the most frequent ones to the unknown token's output
//! embedding, and compare accuracy and perplexity of the correct answers on that relation and
//! on other relations, before and after, beside random neurons erased instead. The weights are
//! restored at the end.
//!
//! Run: `cargo run --release --example erase_relation -- [--relation P36] [--facts 4]
//! [--others P1376,P103] [--top 20] [--steps 10] [--max-prompts 4] [--seed 0] [--model default]`
//!
//! Runtime with the defaults: estimated 1 to 3 minutes on 2 CPU cores (not yet timed;
//! integrated gradients on 4 facts x 4 prompts dominate; 2 steps, 2 facts and 3 prompts took
//! 67 s on a busy machine). The paper erases P19, P27, P106 and P937 of BERT with the
//! relation-level neurons of all their facts; with so few facts the counts here are coarse.
//! Over a `kn discover` run the same is `kn erase --neurons DIR/neurons.jsonl --relation ID`.

use kn_data::{Dataset, Fact, Pararel};
use kn_edit::{
    answer_quality, evaluate_erasure, AnswerQuality, EraseConfig, ErasurePrompts, EvaluationConfig,
    NeuronFrequencies,
};
use kn_model::{load_model, tch::Device, EncodedPrompt, KnowledgeModel};
use std::error::Error;

mod common;
use common::{knowledge_neurons, option, single_token_prompts};
use std::time::Instant;

/// A fact with its encoded prompts.
type Encoded<'a> = (&'a Fact, Vec<EncodedPrompt>);

/// Up to `n` facts of `relation` the model answers correctly (top-1 on a prompt), among the
/// first 80 of a seeded order.
fn correct_facts<'a>(
    model: &dyn KnowledgeModel,
    dataset: &'a Dataset,
    relation: &str,
    n: usize,
    max_prompts: usize,
    seed: u64,
) -> Result<Vec<Encoded<'a>>, Box<dyn Error>> {
    let mut order: Vec<&Fact> = dataset.facts_of(relation)?.iter().collect();
    order.sort_by_key(|f| kn_edit::derive_seed(seed, &f.id.to_string()));
    let mut chosen = Vec::new();
    for fact in order.into_iter().take(80) {
        if chosen.len() >= n {
            break;
        }
        let Some(prompts) = single_token_prompts(model, dataset, fact, max_prompts) else {
            continue;
        };
        if answer_quality(model, &prompts, 16)?.accuracy > 0.0 {
            chosen.push((fact, prompts));
        }
    }
    Ok(chosen)
}

fn row(name: &str, before: &AnswerQuality, after: &AnswerQuality, random: Option<&AnswerQuality>) {
    let change = 100.0 * (after.perplexity / before.perplexity - 1.0);
    let random = random
        .map(|r| {
            format!(
                "{:.3} / {:.2} ({:+.1}%)",
                r.accuracy,
                r.perplexity,
                100.0 * (r.perplexity / before.perplexity - 1.0)
            )
        })
        .unwrap_or_else(|| "-".into());
    println!(
        "{name:<16} {:>5} {:>8.3} {:>8.3} {:>10.2} {:>10.2} {:>9.1}%   {random}",
        before.prompts,
        before.accuracy,
        after.accuracy,
        before.perplexity,
        after.perplexity,
        change
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let relation = option("relation", "P36");
    let facts: usize = option("facts", "4").parse()?;
    let others = option("others", "P1376,P103");
    let top: usize = option("top", "20").parse()?;
    let steps: usize = option("steps", "10").parse()?;
    let max_prompts: usize = option("max-prompts", "4").parse()?;
    let seed: u64 = option("seed", "0").parse()?;
    let mut model = load_model(&option("model", "default"), Device::Cpu)?;
    let dataset = Pararel::load_bundled()?;

    let chosen = correct_facts(
        model.as_ref(),
        &dataset,
        &relation,
        facts,
        max_prompts,
        seed,
    )?;
    if chosen.is_empty() {
        return Err(format!(
            "the model answers no fact of {relation} correctly: try another --relation"
        )
        .into());
    }
    let mut sets = Vec::new();
    let mut relation_prompts = Vec::new();
    for (fact, prompts) in chosen {
        let neurons = knowledge_neurons(model.as_ref(), fact, &prompts, steps)?;
        eprintln!(
            "{} {} -> {}: {} knowledge neurons ({:.0} s)",
            fact.id,
            fact.subject,
            fact.object,
            neurons.len(),
            started.elapsed().as_secs_f64()
        );
        sets.push(neurons);
        relation_prompts.extend(prompts);
    }
    let frequencies = NeuronFrequencies::from_sets(sets.iter());
    let mut other_prompts = Vec::new();
    for other in others.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        for (_, prompts) in
            correct_facts(model.as_ref(), &dataset, other, facts, max_prompts, seed)?
        {
            other_prompts.extend(prompts);
        }
    }

    let config = EraseConfig {
        top_n: top,
        ..EraseConfig::default()
    };
    let eval = EvaluationConfig {
        seed,
        ..EvaluationConfig::default()
    };
    let (evaluation, outcome) = evaluate_erasure(
        model.as_mut(),
        &relation,
        &frequencies,
        &ErasurePrompts {
            relation: relation_prompts,
            held_out: Vec::new(),
            other_relations: other_prompts,
        },
        &config,
        &eval,
    )?;
    outcome.handle.restore(model.as_mut())?;
    println!(
        "erased {relation}: {} neurons (of {} counted over {} facts) set to the embedding of {:?}",
        evaluation.neurons.len(),
        frequencies.ranked().len(),
        frequencies.facts(),
        evaluation.token_text.as_deref().unwrap_or("zeros")
    );
    println!(
        "{:<16} {:>5} {:>8} {:>8} {:>10} {:>10} {:>10}   random neurons: acc / PPL (change)",
        "prompts", "n", "acc bef", "acc aft", "PPL bef", "PPL aft", "PPL chg"
    );
    let random = evaluation.random_control.as_ref();
    row(
        &format!("{relation} (erased)"),
        &evaluation.before.erased_relation,
        &evaluation.after.erased_relation,
        random.map(|r| &r.erased_relation),
    );
    if let (Some(before), Some(after)) = (
        &evaluation.before.other_relations,
        &evaluation.after.other_relations,
    ) {
        row(
            "other relations",
            before,
            after,
            random.and_then(|r| r.other_relations.as_ref()),
        );
    }
    println!(
        "weights restored; {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
