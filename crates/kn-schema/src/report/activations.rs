//! activations.json: what `kn activations` measured (kn-probe's `activation_experiment`, the
//! paper's Figure 5) and where its inputs came from. See kn-probe's docs for the experiment.

use crate::model::ModelInfo;
use crate::neuron::Neuron;
use crate::report::stats::{Paired, SentenceKind, Summary, Triple};
use crate::report::RunSummary;
use crate::DEFAULT_BATCH_SIZE;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of kn-probe's `activation_experiment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationConfig {
    /// Use at most this many head+tail and this many head-only sentences per fact, the first
    /// ones of each bag (0: all, as the paper).
    pub sentences_per_fact: usize,
    /// Seed of the hidden words (T2, T3), the T3 sentences and the random neurons.
    pub seed: u64,
    /// Sentences per forward pass (at least 1).
    pub batch_size: usize,
    /// Also measure random neurons of the same layers.
    pub random_control: bool,
}

impl Default for ActivationConfig {
    fn default() -> Self {
        Self {
            sentences_per_fact: 0,
            seed: 0,
            batch_size: DEFAULT_BATCH_SIZE,
            random_control: true,
        }
    }
}

/// What happened to the sentences of one kind.
///
/// `sentences = target_missing + no_context + too_long + unencodable + fact_skipped + evaluated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentenceCounts {
    /// Sentences looked at.
    pub sentences: usize,
    /// Sentences run through the model and counted in the means.
    pub evaluated: usize,
    /// Skipped: the tail (T1) or an eligible word (T2, T3) was not found.
    pub target_missing: usize,
    /// Skipped: the causal cut left no text.
    pub no_context: usize,
    /// Skipped: longer than the model's context.
    pub too_long: usize,
    /// Skipped: the model could not encode it (e.g. a masked sentence with a second mask).
    pub unencodable: usize,
    /// Encodable, but its fact was skipped for lack of sentences of another kind.
    pub fact_skipped: usize,
}

impl SentenceCounts {
    /// Adds another set of counts to this one.
    pub fn add(&mut self, other: &SentenceCounts) {
        self.sentences += other.sentences;
        self.evaluated += other.evaluated;
        self.target_missing += other.target_missing;
        self.no_context += other.no_context;
        self.too_long += other.too_long;
        self.unencodable += other.unencodable;
        self.fact_skipped += other.fact_skipped;
    }
}

/// Facts left out, by the first reason that applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactSkips {
    /// No knowledge neurons.
    pub no_neurons: usize,
    /// The corpus has no bag at the fact's index.
    pub no_bag: usize,
    /// An empty head+tail bag.
    pub empty_th_bag: usize,
    /// An empty head-only bag.
    pub empty_h_bag: usize,
    /// No evaluable T1 sentence (tail never found, or every sentence too long).
    pub no_t1_sentence: usize,
    /// No evaluable T2 sentence.
    pub no_t2_sentence: usize,
    /// No evaluable T3 sentence.
    pub no_t3_sentence: usize,
}

impl FactSkips {
    /// Adds another set of counts to this one.
    pub fn add(&mut self, other: &FactSkips) {
        self.no_neurons += other.no_neurons;
        self.no_bag += other.no_bag;
        self.empty_th_bag += other.empty_th_bag;
        self.empty_h_bag += other.empty_h_bag;
        self.no_t1_sentence += other.no_t1_sentence;
        self.no_t2_sentence += other.no_t2_sentence;
        self.no_t3_sentence += other.no_t3_sentence;
    }

    /// All skipped facts.
    pub fn total(&self) -> usize {
        self.no_neurons
            + self.no_bag
            + self.empty_th_bag
            + self.empty_h_bag
            + self.no_t1_sentence
            + self.no_t2_sentence
            + self.no_t3_sentence
    }

    /// Counts a fact left without an evaluable sentence of `kind`.
    pub fn missing(&mut self, kind: SentenceKind) {
        match kind {
            SentenceKind::T1 => self.no_t1_sentence += 1,
            SentenceKind::T2 => self.no_t2_sentence += 1,
            SentenceKind::T3 => self.no_t3_sentence += 1,
        }
    }
}

/// Activations against each neuron's own sign.
///
/// FFN activations of gated units (SwiGLU, as in Llama) are signed, and a knowledge neuron may
/// carry its fact with a strongly negative activation; the raw mean of several such neurons
/// mixes signs. Here each neuron's sign is the sign of its mean activation on the fact's own
/// PARAREL prompts (those it was found with), and the aligned value of a sentence is the mean
/// over neurons of `sign * activation`. For GELU models (BERT), whose firing neurons are
/// mostly positive, the aligned and raw values nearly agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignAligned {
    /// Reference prompts evaluated.
    pub prompts: usize,
    /// Mean activation of the knowledge neurons on the prompts (raw, like T1-T3).
    pub knowledge_on_prompts: f64,
    /// The same for the random neurons.
    pub random_on_prompts: Option<f64>,
    /// Sign-aligned mean activation of the knowledge neurons, per kind.
    pub knowledge: Triple<f64>,
    /// The same for the random neurons (each with the sign of its own mean on the prompts).
    pub random: Option<Triple<f64>>,
    /// Sign-aligned mean on the prompts themselves: the mean over neurons of the absolute
    /// value of their mean activation on the prompts.
    pub knowledge_prompts: f64,
    /// The same for the random neurons.
    pub random_prompts: Option<f64>,
}

/// One evaluated fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactActivation {
    /// Fact id (`P36:12`).
    pub fact: String,
    /// Relation id.
    pub relation: String,
    /// Subject (head).
    pub subject: String,
    /// Object (tail).
    pub object: String,
    /// Its knowledge neurons.
    pub neurons: Vec<Neuron>,
    /// The random control neurons (empty without the control).
    pub random_neurons: Vec<Neuron>,
    /// Mean activation of the knowledge neurons (over neurons and sentences), per kind.
    pub knowledge: Triple<f64>,
    /// The same for the random neurons.
    pub random: Option<Triple<f64>>,
    /// Sign-aligned values, when the fact came with prompts that could be encoded.
    pub aligned: Option<SignAligned>,
    /// Sentences evaluated, per kind.
    pub sentences: Triple<usize>,
}

/// [`SignAligned`] values of a group of facts: means over its facts that have them, with
/// standard errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignedGroup {
    /// Facts with sign-aligned values.
    pub facts: usize,
    /// Raw mean activation of the knowledge neurons on the facts' own prompts.
    pub knowledge_on_prompts: Summary,
    /// The same for the random neurons.
    pub random_on_prompts: Option<Summary>,
    /// Sign-aligned knowledge-neuron activation, per kind.
    pub knowledge: Triple<Summary>,
    /// Paired differences between kinds of the sign-aligned knowledge-neuron activation.
    pub knowledge_paired: Paired,
    /// The same for the random neurons.
    pub random: Option<Triple<Summary>>,
    /// Sign-aligned knowledge-neuron activation on the prompts.
    pub knowledge_prompts: Summary,
    /// The same for the random neurons.
    pub random_prompts: Option<Summary>,
}

/// Results of a group of facts (a relation, or all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Facts evaluated.
    pub facts: usize,
    /// Mean over facts of their knowledge-neuron activation, with standard errors, per kind.
    pub knowledge: Triple<Summary>,
    /// Paired differences between kinds of the knowledge-neuron activation.
    pub knowledge_paired: Paired,
    /// The same for the random control.
    pub random: Option<Triple<Summary>>,
    /// Sign-aligned values (facts that came with prompts only).
    pub aligned: Option<AlignedGroup>,
    /// Facts skipped.
    pub skipped: FactSkips,
    /// What happened to the sentences, per kind.
    pub sentences: Triple<SentenceCounts>,
}

/// The mean of relation means, the aggregation of the paper's figure (each relation weighs
/// equally); relations without an evaluated fact are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationMeans {
    /// Relations averaged.
    pub relations: usize,
    /// Knowledge neurons, per kind.
    pub knowledge: Triple<Option<f64>>,
    /// Random control, per kind.
    pub random: Option<Triple<Option<f64>>>,
}

/// The result of kn-probe's `activation_experiment`; serializes to the `activations.json` layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationReport {
    /// The model.
    pub model: ModelInfo,
    /// The settings.
    pub config: ActivationConfig,
    /// All facts together.
    pub overall: GroupReport,
    /// The paper's aggregation: the mean of relation means.
    pub mean_of_relations: RelationMeans,
    /// Per relation.
    pub relations: BTreeMap<String, GroupReport>,
    /// Every evaluated fact, in input order.
    pub facts: Vec<FactActivation>,
}

/// activations.json: the report with where its inputs came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationsFile {
    /// The discovery run whose neurons were probed.
    pub run: RunSummary,
    /// The BINGREL directory read.
    pub corpus: String,
    /// The PARAREL directory the corpus was lined up with.
    pub data: String,
    /// What was measured.
    #[serde(flatten)]
    pub report: ActivationReport,
}
