//! The paper's activation experiment (Dai et al. 2022, Figure 5): do a fact's knowledge neurons
//! fire when the fact is expressed?
//!
//! For each fact with knowledge neurons and BINGREL bags, probe sentences are built with
//! [`kn_data::fact_probes`] (T1: head+tail sentences with the tail hidden; T2: head-only
//! sentences with a random non-head word hidden; T3: as many random sentences of other facts as
//! T1 kept, a random word hidden). "Hidden" is the mask token for masked LMs and a cut just
//! before the word for causal LMs, whose activations are read at the last kept token. Every
//! probe goes through the model once (batched, no gradients, sentences sorted by length to
//! limit padding) and the FFN activations at the hidden position are read.
//!
//! A fact's value for a kind is the mean activation of its knowledge neurons, averaged over its
//! neurons and over its sentences of that kind. Relations and the whole run report the mean of
//! their facts' values with its standard error (facts weigh equally), and
//! [`ActivationReport::mean_of_relations`] the mean of the relation means (the aggregation of
//! the paper's figure). The same is computed for a random control: per knowledge neuron, a
//! random neuron of the same layer ([`KnowledgeFact::random_neurons`]).
//!
//! When a fact comes with its own PARAREL prompts ([`KnowledgeFact::prompts`]), they are run
//! too, and [`SignAligned`] values are reported beside the raw ones: each neuron's activation
//! multiplied by the sign of its mean activation on those prompts. Gated FFNs (SwiGLU) have
//! signed activations and knowledge neurons that fire negatively; the raw mean mixes them.
//!
//! What is skipped is counted, never silently dropped:
//! - facts ([`FactSkips`]): without knowledge neurons, without a bag, with an empty head+tail
//!   or head-only bag (as the authors' code, which needs both), or left without an evaluable
//!   sentence of some kind;
//! - sentences ([`SentenceCounts`]): the tail or an eligible word not found, no context left by
//!   a causal cut, longer than the model's context, not encodable, or belonging to a skipped
//!   fact.

use std::collections::BTreeMap;

use kn_data::{fact_probes, FactBags, ProbeSet, PromptStyle};
use kn_model::{AnswerPolicy, EncodedPrompt, KnowledgeModel, ModelError, ModelInfo, ModelKind};

use crate::corpus::{Corpus, KnowledgeFact};
use crate::error::{ProbeError, Result};
use crate::stats::{Paired, SentenceKind, Summary, Triple};
pub use kn_schema::report::activations::{
    ActivationConfig, ActivationReport, ActivationsFile, AlignedGroup, FactActivation, FactSkips,
    GroupReport, RelationMeans, SentenceCounts, SignAligned,
};
use kn_schema::Neuron;
pub use kn_schema::DEFAULT_BATCH_SIZE;

/// A probe sentence (or, with no kind, one of the fact's own prompts) ready for the model.
struct Job {
    fact: usize,
    kind: Option<SentenceKind>,
    prompt: EncodedPrompt,
}

/// Per-neuron sums of activations over some sentences.
#[derive(Debug, Clone, Default)]
struct Sums {
    knowledge: Vec<f64>,
    random: Vec<f64>,
    count: usize,
}

impl Sums {
    fn add(&mut self, row: &[f32], knowledge: &[usize], random: &[usize]) {
        let add = |sums: &mut Vec<f64>, indices: &[usize]| {
            sums.resize(indices.len(), 0.0);
            for (sum, &i) in sums.iter_mut().zip(indices) {
                *sum += row.get(i).map_or(f64::NAN, |&v| f64::from(v));
            }
        };
        add(&mut self.knowledge, knowledge);
        add(&mut self.random, random);
        self.count += 1;
    }

    /// Per-neuron means.
    fn means(&self, random: bool) -> Vec<f64> {
        let sums = if random {
            &self.random
        } else {
            &self.knowledge
        };
        sums.iter().map(|s| s / self.count as f64).collect()
    }

    /// Mean over neurons of `sign * per-neuron mean` (all signs +1 without `signs`); NaN when
    /// empty.
    fn mean(&self, random: bool, signs: Option<&[f64]>) -> f64 {
        let means = self.means(random);
        if means.is_empty() || self.count == 0 {
            return f64::NAN;
        }
        let total: f64 = means
            .iter()
            .enumerate()
            .map(|(i, m)| m * signs.and_then(|s| s.get(i)).unwrap_or(&1.0))
            .sum();
        total / means.len() as f64
    }
}

/// Per fact: what is being measured and the running sums.
struct Plan {
    input: usize,
    neurons: Vec<usize>,
    random: Vec<usize>,
    random_neurons: Vec<Neuron>,
    sums: Triple<Sums>,
    reference: Sums,
}

/// The prompt style of a model: the mask token for masked LMs, cuts for causal ones.
pub fn prompt_style(info: &ModelInfo) -> PromptStyle {
    match info.kind {
        ModelKind::Masked => PromptStyle::Masked {
            mask_token: "[MASK]".into(),
        },
        ModelKind::Causal => PromptStyle::Causal,
    }
}

/// The first `n` head+tail and head-only sentences of a bag (all for `n == 0`).
pub fn truncate_bags(bags: &FactBags, n: usize) -> FactBags {
    let take = |v: &Vec<String>| {
        if n == 0 {
            v.clone()
        } else {
            v.iter().take(n).cloned().collect()
        }
    };
    FactBags {
        th_bags: take(&bags.th_bags),
        h_bags: take(&bags.h_bags),
    }
}

/// Encodes probe texts without an answer; counts what could not be encoded.
pub(crate) fn encode_all<'a>(
    model: &dyn KnowledgeModel,
    texts: impl IntoIterator<Item = &'a str>,
    counts: &mut SentenceCounts,
) -> Result<Vec<Option<EncodedPrompt>>> {
    let mut out = Vec::new();
    for text in texts {
        match model.encode(text, None, AnswerPolicy::FirstToken) {
            Ok(prompt) => out.push(Some(prompt)),
            Err(ModelError::PromptTooLong { .. }) => {
                counts.too_long += 1;
                out.push(None);
            }
            Err(error @ (ModelError::Torch(_) | ModelError::OutOfMemory(_))) => {
                return Err(ProbeError::Model(error))
            }
            Err(_) => {
                counts.unencodable += 1;
                out.push(None);
            }
        }
    }
    Ok(out)
}

/// Flat indices `layer * width + neuron`.
fn flat(neurons: &[Neuron], width: usize) -> Vec<usize> {
    neurons.iter().map(|n| n.layer * width + n.index).collect()
}

/// Runs `prompts` through the model in batches sorted by length and calls `each(i, row)` with
/// each prompt's index and its activations at the answer position, flattened
/// `[layers * ffn_width]`. `progress(done, total)` is called after each batch.
pub(crate) fn for_each_activation(
    model: &dyn KnowledgeModel,
    prompts: &[&EncodedPrompt],
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
    mut each: impl FnMut(usize, &[f32]),
) -> Result<()> {
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| prompts[i].token_ids.len());
    let mut done = 0;
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<EncodedPrompt> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let output = model.forward(&batch, &[], true)?;
        let activations = output.activations.ok_or_else(|| {
            ModelError::InvalidArgument("the model returned no activations".into())
        })?;
        let values: Vec<f32> = kn_model::guard(|| {
            let flat = activations
                .to_device(tch::Device::Cpu)
                .to_kind(tch::Kind::Float)
                .contiguous()
                .view([-1]);
            Vec::<f32>::try_from(&flat).map_err(|e| ModelError::Torch(e.to_string()))
        })?;
        let row = values.len() / chunk.len().max(1);
        for (k, &i) in chunk.iter().enumerate() {
            if let Some(slice) = values.get(k * row..(k + 1) * row) {
                each(i, slice);
            }
        }
        done += chunk.len();
        progress(done, prompts.len());
    }
    Ok(())
}

fn skipped_sentences(set: &ProbeSet) -> SentenceCounts {
    SentenceCounts {
        sentences: set.counts.sentences,
        target_missing: set.counts.target_missing,
        no_context: set.counts.no_context,
        ..SentenceCounts::default()
    }
}

/// Runs the activation experiment on `facts` (see the module docs). `progress(done, total)`
/// reports sentences processed.
///
/// Errors: neurons out of the model's range, facts of relations the corpus has not loaded,
/// `batch_size == 0`, and model failures.
pub fn activation_experiment(
    model: &dyn KnowledgeModel,
    facts: &[KnowledgeFact],
    corpus: &Corpus,
    config: &ActivationConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ActivationReport> {
    if config.batch_size == 0 {
        return Err(ProbeError::BadConfig(
            "batch_size must be at least 1".into(),
        ));
    }
    let info = model.info().clone();
    for fact in facts {
        fact.validate(&info)?;
    }
    let style = prompt_style(&info);
    let pool = corpus.pool();
    let width = info.ffn_width;

    let mut skips: BTreeMap<String, FactSkips> = BTreeMap::new();
    let mut counts: BTreeMap<String, Triple<SentenceCounts>> = BTreeMap::new();
    let mut plans: Vec<Plan> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    for (input, fact) in facts.iter().enumerate() {
        let relation = fact.fact.id.relation.clone();
        let skip = skips.entry(relation.clone()).or_default();
        let count = counts.entry(relation).or_default();
        if fact.neurons.is_empty() {
            skip.no_neurons += 1;
            continue;
        }
        let Some(bags) = corpus.bags(&fact.fact.id)? else {
            skip.no_bag += 1;
            continue;
        };
        if bags.th_bags.is_empty() {
            skip.empty_th_bag += 1;
            continue;
        }
        if bags.h_bags.is_empty() {
            skip.empty_h_bag += 1;
            continue;
        }
        let bags = truncate_bags(bags, config.sentences_per_fact);
        let probes = fact_probes(&fact.fact, &bags, &pool, &style, config.seed);
        let sets = Triple {
            t1: &probes.tail,
            t2: &probes.head_only,
            t3: &probes.random,
        };
        let mut fact_counts = sets.map(|_, set| skipped_sentences(set));
        let mut encoded: Vec<(SentenceKind, EncodedPrompt)> = Vec::new();
        for kind in SentenceKind::ALL {
            let set = sets.get(kind);
            let prompts = encode_all(
                model,
                set.probes.iter().map(|p| p.text.as_str()),
                fact_counts.get_mut(kind),
            )?;
            encoded.extend(prompts.into_iter().flatten().map(|p| (kind, p)));
        }
        let missing = SentenceKind::ALL
            .into_iter()
            .find(|&k| !encoded.iter().any(|(kind, _)| *kind == k));
        if let Some(kind) = missing {
            skip.missing(kind);
            for (k, _) in &encoded {
                fact_counts.get_mut(*k).fact_skipped += 1;
            }
        } else {
            let random_neurons = if config.random_control {
                fact.random_neurons(width, config.seed)
            } else {
                Vec::new()
            };
            let index = plans.len();
            plans.push(Plan {
                input,
                neurons: flat(&fact.neurons, width),
                random: flat(&random_neurons, width),
                random_neurons,
                sums: Triple::default(),
                reference: Sums::default(),
            });
            for (kind, prompt) in encoded {
                fact_counts.get_mut(kind).evaluated += 1;
                jobs.push(Job {
                    fact: index,
                    kind: Some(kind),
                    prompt,
                });
            }
            // The fact's own prompts give each neuron its sign; prompts that cannot be
            // encoded are left out (they only lower `SignAligned::prompts`).
            let mut ignored = SentenceCounts::default();
            let prompts = encode_all(model, fact.prompts.iter().map(String::as_str), &mut ignored)?;
            for prompt in prompts.into_iter().flatten() {
                jobs.push(Job {
                    fact: index,
                    kind: None,
                    prompt,
                });
            }
        }
        for kind in SentenceKind::ALL {
            count.get_mut(kind).add(fact_counts.get(kind));
        }
    }

    let prompts: Vec<&EncodedPrompt> = jobs.iter().map(|j| &j.prompt).collect();
    for_each_activation(model, &prompts, config.batch_size, progress, |i, row| {
        let Some(job) = jobs.get(i) else { return };
        if let Some(plan) = plans.get_mut(job.fact) {
            let sums = match job.kind {
                Some(kind) => plan.sums.get_mut(kind),
                None => &mut plan.reference,
            };
            sums.add(row, &plan.neurons, &plan.random);
        }
    })?;

    let control = config.random_control;
    let fact_results: Vec<FactActivation> = plans
        .iter()
        .filter_map(|plan| {
            let fact = facts.get(plan.input)?;
            let aligned = (plan.reference.count > 0).then(|| {
                let signs = |random: bool| -> Vec<f64> {
                    plan.reference
                        .means(random)
                        .iter()
                        .map(|m| if *m < 0.0 { -1.0 } else { 1.0 })
                        .collect()
                };
                let (kn_signs, rnd_signs) = (signs(false), signs(true));
                SignAligned {
                    prompts: plan.reference.count,
                    knowledge_on_prompts: plan.reference.mean(false, None),
                    random_on_prompts: control.then(|| plan.reference.mean(true, None)),
                    knowledge: plan.sums.map(|_, s| s.mean(false, Some(&kn_signs))),
                    random: control.then(|| plan.sums.map(|_, s| s.mean(true, Some(&rnd_signs)))),
                    knowledge_prompts: plan.reference.mean(false, Some(&kn_signs)),
                    random_prompts: control.then(|| plan.reference.mean(true, Some(&rnd_signs))),
                }
            });
            Some(FactActivation {
                fact: fact.fact.id.to_string(),
                relation: fact.fact.id.relation.clone(),
                subject: fact.fact.subject.clone(),
                object: fact.fact.object.clone(),
                neurons: fact.neurons.clone(),
                random_neurons: plan.random_neurons.clone(),
                knowledge: plan.sums.map(|_, s| s.mean(false, None)),
                random: control.then(|| plan.sums.map(|_, s| s.mean(true, None))),
                aligned,
                sentences: plan.sums.map(|_, s| s.count),
            })
        })
        .collect();

    let group = |members: &[&FactActivation],
                 skipped: FactSkips,
                 sentences: Triple<SentenceCounts>| {
        let summary = |pick: &dyn Fn(&FactActivation, SentenceKind) -> Option<f64>| {
            Triple::<()>::default().map(|kind, _| {
                let values: Vec<f64> = members.iter().filter_map(|f| pick(f, kind)).collect();
                Summary::of(&values)
            })
        };
        let aligned_members: Vec<&SignAligned> =
            members.iter().filter_map(|f| f.aligned.as_ref()).collect();
        let over = |pick: &dyn Fn(&SignAligned) -> Option<f64>| {
            Summary::of(
                &aligned_members
                    .iter()
                    .filter_map(|a| pick(a))
                    .collect::<Vec<_>>(),
            )
        };
        let aligned = (!aligned_members.is_empty()).then(|| AlignedGroup {
            facts: aligned_members.len(),
            knowledge_on_prompts: over(&|a| Some(a.knowledge_on_prompts)),
            random_on_prompts: control.then(|| over(&|a| a.random_on_prompts)),
            knowledge: summary(&|f, kind| f.aligned.as_ref().map(|a| *a.knowledge.get(kind))),
            knowledge_paired: Paired::of(
                &aligned_members
                    .iter()
                    .map(|a| a.knowledge)
                    .collect::<Vec<_>>(),
            ),
            random: control.then(|| {
                summary(&|f, kind| {
                    f.aligned
                        .as_ref()
                        .and_then(|a| a.random.map(|r| *r.get(kind)))
                })
            }),
            knowledge_prompts: over(&|a| Some(a.knowledge_prompts)),
            random_prompts: control.then(|| over(&|a| a.random_prompts)),
        });
        GroupReport {
            facts: members.len(),
            knowledge: summary(&|f, kind| Some(*f.knowledge.get(kind))),
            knowledge_paired: Paired::of(&members.iter().map(|f| f.knowledge).collect::<Vec<_>>()),
            random: control.then(|| summary(&|f, kind| f.random.map(|r| *r.get(kind)))),
            aligned,
            skipped,
            sentences,
        }
    };
    let mut relations = BTreeMap::new();
    let mut all_skips = FactSkips::default();
    let mut all_counts: Triple<SentenceCounts> = Triple::default();
    for (relation, skipped) in &skips {
        let members: Vec<&FactActivation> = fact_results
            .iter()
            .filter(|f| &f.relation == relation)
            .collect();
        let sentences = counts.get(relation).copied().unwrap_or_default();
        all_skips.add(skipped);
        for kind in SentenceKind::ALL {
            all_counts.get_mut(kind).add(sentences.get(kind));
        }
        relations.insert(relation.clone(), group(&members, *skipped, sentences));
    }
    let everyone: Vec<&FactActivation> = fact_results.iter().collect();
    let overall = group(&everyone, all_skips, all_counts);
    let mean_of_relations = mean_of_relations(&relations, config.random_control);
    Ok(ActivationReport {
        model: info,
        config: config.clone(),
        overall,
        mean_of_relations,
        relations,
        facts: fact_results,
    })
}

fn mean_of_relations(
    relations: &BTreeMap<String, GroupReport>,
    random_control: bool,
) -> RelationMeans {
    let used: Vec<&GroupReport> = relations.values().filter(|g| g.facts > 0).collect();
    let average = |pick: &dyn Fn(&GroupReport) -> Option<f64>| {
        let values: Vec<f64> = used.iter().filter_map(|g| pick(g)).collect();
        Summary::of(&values).mean
    };
    let knowledge = Triple::<()>::default().map(|kind, _| average(&|g| g.knowledge.get(kind).mean));
    let random = random_control.then(|| {
        Triple::<()>::default()
            .map(|kind, _| average(&|g| g.random.as_ref().and_then(|r| r.get(kind).mean)))
    });
    RelationMeans {
        relations: used.len(),
        knowledge,
        random,
    }
}
