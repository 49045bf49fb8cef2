//! Trigger sentences (the paper's Table 4): the sentences of a fact's corpus that activate its
//! knowledge neurons most.
//!
//! The candidates are the fact's head+tail sentences in two forms:
//! - **without the tail**: the T1 form (tail masked for masked LMs; for causal LMs the sentence
//!   cut before the tail, read at the last kept token);
//! - **with the tail**: the sentence as written, read at the tail (masked LMs: the mask of the
//!   T1 form replaced by the tail's tokens, read at the tail's first token; causal LMs: the
//!   sentence cut just after the tail, read at its last token).
//!
//! Each is scored by the summed activation of the fact's knowledge neurons at that position
//! (with [`TriggerConfig::aligned`], each neuron's activation signed by its mean on the fact's
//! own prompts, for gated FFNs whose knowledge neurons may fire negatively), and each form is
//! ranked on its own. Sentences where the tail is not found, or where either form
//! is too long for the model or cannot be encoded, are skipped and counted.

use kn_data::probe::tail_probes;
use kn_data::{FactBags, Probe, PromptStyle};
use kn_model::{EncodedPrompt, KnowledgeModel, ModelError};
use serde::{Deserialize, Serialize};

use crate::activations::{
    encode_all, for_each_activation, prompt_style, SentenceCounts, DEFAULT_BATCH_SIZE,
};
use crate::corpus::KnowledgeFact;
use crate::error::{ProbeError, Result};

/// Settings of [`trigger_sentences`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerConfig {
    /// How many sentences to return per form.
    pub top: usize,
    /// Look at most at this many head+tail sentences, the first of the bag (0: all).
    pub max_sentences: usize,
    /// Sentences per forward pass (at least 1).
    pub batch_size: usize,
    /// Score with each neuron's activation multiplied by the sign of its mean activation on the
    /// fact's own prompts ([`KnowledgeFact::prompts`], which must then encode), as the
    /// sign-aligned values of the activation experiment ([`crate::SignAligned`]). Off: the
    /// plain sum, as the paper.
    pub aligned: bool,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            top: 5,
            max_sentences: 0,
            batch_size: DEFAULT_BATCH_SIZE,
            aligned: false,
        }
    }
}

/// One ranked sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerSentence {
    /// Position of the source sentence in the fact's head+tail bag.
    pub sentence: usize,
    /// What the model read: the T1 form, or the sentence up to the tail (causal) / as written
    /// (masked).
    pub text: String,
    /// The tail as it appears in the sentence.
    pub tail: String,
    /// Sum of the knowledge neurons' activations at the read position (each signed, when
    /// [`TriggerConfig::aligned`]).
    pub score: f64,
    /// Their mean.
    pub mean: f64,
}

/// The trigger sentences of one fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerReport {
    /// Fact id.
    pub fact: String,
    /// Subject (head).
    pub subject: String,
    /// Object (tail).
    pub object: String,
    /// Its knowledge neurons.
    pub neurons: Vec<kn_schema::Neuron>,
    /// With [`TriggerConfig::aligned`]: each neuron's sign (+1 or -1, from its mean activation on
    /// the fact's prompts), in the order of `neurons`; empty otherwise.
    pub signs: Vec<f64>,
    /// The top sentences with the tail, highest score first.
    pub with_tail: Vec<TriggerSentence>,
    /// The top sentences with the tail hidden (T1 forms), highest score first.
    pub without_tail: Vec<TriggerSentence>,
    /// What happened to the head+tail sentences (`evaluated`: both forms ranked).
    pub sentences: SentenceCounts,
}

/// The form of a T1 probe with the tail present, read at the tail (see the module docs).
fn with_tail_prompt(
    model: &dyn KnowledgeModel,
    probe: &Probe,
    without: &EncodedPrompt,
    original: &str,
    style: &PromptStyle,
) -> std::result::Result<EncodedPrompt, ModelError> {
    match style {
        PromptStyle::Causal => {
            // The T1 text is the sentence before the tail, trailing whitespace removed.
            let rest = original.get(probe.text.len()..).unwrap_or("");
            let gap = rest.len() - rest.trim_start().len();
            let end = probe.text.len() + gap + probe.hidden.len();
            let cut = original
                .get(..end)
                .filter(|cut| cut.ends_with(probe.hidden.as_str()))
                .ok_or_else(|| {
                    ModelError::InvalidArgument(format!(
                        "tail {:?} not after the cut",
                        probe.hidden
                    ))
                })?;
            model.encode(cut, None, kn_model::AnswerPolicy::FirstToken)
        }
        PromptStyle::Masked { .. } => {
            let tail: Vec<i64> = model
                .tokenizer()
                .encode(&probe.hidden)?
                .into_iter()
                .map(i64::from)
                .collect();
            if tail.is_empty() {
                return Err(ModelError::InvalidArgument(format!(
                    "tail {:?} has no tokens",
                    probe.hidden
                )));
            }
            let p = without.answer_position;
            let mut ids = Vec::with_capacity(without.token_ids.len() + tail.len());
            ids.extend_from_slice(without.token_ids.get(..p).unwrap_or(&[]));
            ids.extend_from_slice(&tail);
            ids.extend_from_slice(without.token_ids.get(p + 1..).unwrap_or(&[]));
            let max = model.info().max_positions;
            if ids.len() > max {
                return Err(ModelError::PromptTooLong {
                    tokens: ids.len(),
                    max,
                });
            }
            Ok(EncodedPrompt {
                text: original.to_string(),
                token_ids: ids,
                answer_position: p,
                answer_ids: Vec::new(),
                targets: Vec::new(),
            })
        }
    }
}

/// Ranks the head+tail sentences of `fact` (from `bags`) by the summed activation of its
/// knowledge neurons, with and without the tail (see the module docs).
///
/// Errors: neurons out of range, `batch_size == 0`, model failures.
pub fn trigger_sentences(
    model: &dyn KnowledgeModel,
    fact: &KnowledgeFact,
    bags: &FactBags,
    config: &TriggerConfig,
) -> Result<TriggerReport> {
    if config.batch_size == 0 {
        return Err(ProbeError::BadConfig(
            "batch_size must be at least 1".into(),
        ));
    }
    let info = model.info().clone();
    fact.validate(&info)?;
    let style = prompt_style(&info);
    let sentences: Vec<&String> = if config.max_sentences == 0 {
        bags.th_bags.iter().collect()
    } else {
        bags.th_bags.iter().take(config.max_sentences).collect()
    };
    let set = tail_probes(&sentences, &fact.fact.subject, &fact.fact.object, &style);
    let mut counts = SentenceCounts {
        sentences: set.counts.sentences,
        target_missing: set.counts.target_missing,
        no_context: set.counts.no_context,
        ..SentenceCounts::default()
    };
    let without = encode_all(
        model,
        set.probes.iter().map(|p| p.text.as_str()),
        &mut counts,
    )?;
    let mut pairs: Vec<(&Probe, EncodedPrompt, EncodedPrompt)> = Vec::new();
    for (probe, without) in set.probes.iter().zip(without) {
        let Some(without) = without else { continue };
        let original = sentences
            .get(probe.sentence)
            .map(|s| s.as_str())
            .unwrap_or("");
        match with_tail_prompt(model, probe, &without, original, &style) {
            Ok(with) => pairs.push((probe, with, without)),
            Err(ModelError::PromptTooLong { .. }) => counts.too_long += 1,
            Err(error @ (ModelError::Torch(_) | ModelError::OutOfMemory(_))) => {
                return Err(ProbeError::Model(error))
            }
            Err(_) => counts.unencodable += 1,
        }
    }
    counts.evaluated = pairs.len();

    let indices: Vec<usize> = fact
        .neurons
        .iter()
        .map(|n| n.layer * info.ffn_width + n.index)
        .collect();
    let references: Vec<EncodedPrompt> = if config.aligned {
        let mut ignored = SentenceCounts::default();
        let encoded = encode_all(model, fact.prompts.iter().map(String::as_str), &mut ignored)?;
        let encoded: Vec<EncodedPrompt> = encoded.into_iter().flatten().collect();
        if encoded.is_empty() {
            return Err(ProbeError::BadConfig(format!(
                "aligned scores need the prompts of fact {}, and it has none that encode",
                fact.fact.id
            )));
        }
        encoded
    } else {
        Vec::new()
    };
    let prompts: Vec<&EncodedPrompt> = pairs
        .iter()
        .flat_map(|(_, with, without)| [with, without])
        .chain(references.iter())
        .collect();
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); prompts.len()];
    for_each_activation(
        model,
        &prompts,
        config.batch_size,
        &mut |_, _| {},
        |i, row| {
            if let Some(slot) = values.get_mut(i) {
                *slot = indices
                    .iter()
                    .map(|&k| row.get(k).map_or(f64::NAN, |&v| f64::from(v)))
                    .collect();
            }
        },
    )?;
    let signs: Vec<f64> = if config.aligned {
        let reference = values.get(2 * pairs.len()..).unwrap_or(&[]);
        (0..indices.len())
            .map(|n| {
                let mean = reference.iter().filter_map(|v| v.get(n)).sum::<f64>()
                    / reference.len().max(1) as f64;
                if mean < 0.0 {
                    -1.0
                } else {
                    1.0
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let sums: Vec<f64> = values
        .iter()
        .map(|v| {
            v.iter()
                .enumerate()
                .map(|(n, a)| a * signs.get(n).copied().unwrap_or(1.0))
                .sum()
        })
        .collect();
    let count = indices.len().max(1) as f64;
    let ranked = |offset: usize| {
        let mut list: Vec<TriggerSentence> = pairs
            .iter()
            .enumerate()
            .map(|(k, (probe, with, without))| {
                let score = sums.get(2 * k + offset).copied().unwrap_or(f64::NAN);
                let text = if offset == 0 {
                    with.text.clone()
                } else {
                    without.text.clone()
                };
                TriggerSentence {
                    sentence: probe.sentence,
                    text,
                    tail: probe.hidden.clone(),
                    score,
                    mean: score / count,
                }
            })
            .collect();
        list.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.sentence.cmp(&b.sentence))
        });
        list.truncate(config.top);
        list
    };
    Ok(TriggerReport {
        fact: fact.fact.id.to_string(),
        subject: fact.fact.subject.clone(),
        object: fact.fact.object.clone(),
        neurons: fact.neurons.clone(),
        signs,
        with_tail: ranked(0),
        without_tail: ranked(1),
        sentences: counts,
    })
}
