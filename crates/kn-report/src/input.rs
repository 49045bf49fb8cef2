//! Reading a run directory: read-side copies of the JSON layouts the `kn` subcommands write,
//! holding only the fields the report uses (unknown fields are ignored, fields that may be
//! absent default), and [`RunData::load`], which reads every file and turns any malformed one
//! into a [`ReportError`] naming it.
//!
//! Writers (the source of truth for the layouts): `kn discover` (config.json, neurons.jsonl,
//! stats.json, relations.json: crates/kn-cli/src/discover.rs, kn-select's `summarize`),
//! `kn suppress` (suppression.json: kn-cli/src/suppress.rs, kn-edit's `ExperimentReport`),
//! `kn activations` (activations.json: kn-cli/src/activations.rs, kn-probe's
//! `ActivationReport`), `kn edit --json` (edit.json: kn-cli/src/edit.rs) and `kn erase --json`
//! (erase-*.json: kn-cli/src/erase.rs).

use crate::chart::{ChartChange, ChartConditions, ChartEffects, ChartReport};
use crate::error::ReportError;
use kn_select::compare_relations;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// config.json of `kn discover` (its `RunConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RunConfig {
    pub version: String,
    pub model: ModelRecord,
    pub relations: Vec<String>,
    pub facts_per_relation: Option<usize>,
    pub seed: Option<u64>,
    pub steps: Option<usize>,
    pub layers: Vec<usize>,
    pub threshold: Option<f64>,
    pub share: Option<f64>,
    pub adaptive: bool,
    pub min_prompts: Option<usize>,
    pub max_prompts: Option<usize>,
    pub correct_rank: Option<usize>,
    pub correct_prompts: Option<usize>,
    pub shard: Option<(usize, usize)>,
}

/// The model of a run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ModelRecord {
    pub source: String,
    pub architecture: String,
    pub fingerprint: String,
}

/// One line of neurons.jsonl.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FactRecord {
    pub fact: String,
    pub relation: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub prompts: Vec<PromptRecord>,
    #[serde(default)]
    pub neurons: Vec<ScoredNeuron>,
    #[serde(default)]
    pub seconds: Option<f64>,
}

impl FactRecord {
    /// The fact's refined neurons as a sorted set of `(layer, neuron)`.
    pub fn neuron_set(&self) -> BTreeSet<(usize, usize)> {
        self.neurons.iter().map(|n| (n.layer, n.neuron)).collect()
    }
}

/// A prompt of a fact (only its existence and clean probability are used).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PromptRecord {
    pub prob: Option<f64>,
}

/// A refined neuron of a fact.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScoredNeuron {
    pub layer: usize,
    pub neuron: usize,
}

/// stats.json of `kn discover`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Stats {
    pub summary: Option<StatsSummary>,
    pub seconds_per_fact: Option<f64>,
    pub prompts_per_fact: Option<f64>,
}

/// kn-select's `Summary` (the parts used).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StatsSummary {
    pub facts: usize,
    pub relations: usize,
    pub neurons_per_fact: CountStats,
    pub sharing: Sharing,
}

/// Neurons per fact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CountStats {
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<usize>,
    pub max: Option<usize>,
    pub total: Option<usize>,
}

/// Intra/inter-relation sharing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Sharing {
    pub intra: PairMean,
    pub inter: PairMean,
}

/// A mean over pairs of facts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PairMean {
    pub pairs: Option<u64>,
    pub mean: Option<f64>,
}

/// One relation of relations.json.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RelationSummary {
    pub facts: usize,
    pub share: Option<f64>,
    pub mean_neurons_per_fact: Option<f64>,
    pub neurons: Vec<RelationNeuron>,
    pub skipped: Vec<serde_json::Value>,
}

/// A relation-level neuron of relations.json.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RelationNeuron {
    pub neuron: (usize, usize),
    #[serde(default)]
    pub facts: usize,
    #[serde(default)]
    pub frequency: Option<f64>,
}

/// suppression.json of `kn suppress` (kn-edit's `ExperimentReport` plus the run).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Suppression {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub config: SuppressionConfig,
    #[serde(default)]
    pub activation_baseline_layers: Option<Vec<usize>>,
    pub overall: SuppressionGroup,
    pub relations: BTreeMap<String, SuppressionGroup>,
}

/// The experiment's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SuppressionConfig {
    pub suppress_factor: Option<f64>,
    pub amplify_factor: Option<f64>,
    pub other_relation_facts: Option<usize>,
    pub random_control: Option<bool>,
    pub seed: Option<u64>,
}

/// A relation's (or all facts') results.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SuppressionGroup {
    pub facts: usize,
    pub facts_evaluated: usize,
    pub facts_without_neurons: usize,
    pub prompts: usize,
    pub conditions: Conditions,
}

/// The four conditions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Conditions {
    pub own: Effects,
    pub other_relations: Effects,
    pub random: Effects,
    pub activation_baseline: Effects,
}

/// Suppression and amplification of one condition.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Effects {
    pub suppress: Change,
    pub amplify: Change,
}

/// kn-edit's `ChangeSummary` (the parts used).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Change {
    pub prompts: usize,
    pub mean_prob_before: Option<f64>,
    pub mean_prob_after: Option<f64>,
    pub change_pct: Option<f64>,
    pub mean_relative_change_pct: Option<f64>,
}

impl ChartChange for Change {
    fn change_pct(&self) -> Option<f64> {
        self.change_pct
    }
    fn mean_relative_change_pct(&self) -> Option<f64> {
        self.mean_relative_change_pct
    }
}

impl ChartEffects for Effects {
    type Change = Change;
    fn suppress(&self) -> &Change {
        &self.suppress
    }
    fn amplify(&self) -> &Change {
        &self.amplify
    }
}

impl ChartConditions for SuppressionGroup {
    type Effects = Effects;
    fn own(&self) -> &Effects {
        &self.conditions.own
    }
    fn random(&self) -> &Effects {
        &self.conditions.random
    }
    fn other_relations(&self) -> &Effects {
        &self.conditions.other_relations
    }
    fn activation_baseline(&self) -> &Effects {
        &self.conditions.activation_baseline
    }
}

impl ChartReport for Suppression {
    type Group = SuppressionGroup;
    /// Relations in natural order (P27 before P101).
    fn relation_groups(&self) -> Vec<(&str, &SuppressionGroup)> {
        let mut groups: Vec<(&str, &SuppressionGroup)> = self
            .relations
            .iter()
            .map(|(r, g)| (r.as_str(), g))
            .collect();
        groups.sort_by(|a, b| compare_relations(a.0, b.0));
        groups
    }
    fn overall_group(&self) -> &SuppressionGroup {
        &self.overall
    }
}

/// activations.json of `kn activations` (kn-probe's `ActivationReport` plus the run).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Activations {
    pub overall: ActivationGroup,
    #[serde(default)]
    pub relations: BTreeMap<String, ActivationGroup>,
    #[serde(default)]
    pub mean_of_relations: Option<RelationMeans>,
}

/// A group's activations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ActivationGroup {
    pub facts: usize,
    pub knowledge: Triple<MeanSe>,
    pub random: Option<Triple<MeanSe>>,
    pub aligned: Option<AlignedGroup>,
}

/// Sign-aligned activations of a group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AlignedGroup {
    pub facts: usize,
    pub knowledge: Triple<MeanSe>,
    pub random: Option<Triple<MeanSe>>,
}

/// The mean of relation means.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RelationMeans {
    pub relations: usize,
    pub knowledge: Triple<Option<f64>>,
    pub random: Option<Triple<Option<f64>>>,
}

/// T1, T2, T3 values.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Triple<T> {
    pub t1: T,
    pub t2: T,
    pub t3: T,
}

impl<T> Triple<T> {
    pub fn as_array(&self) -> [&T; 3] {
        [&self.t1, &self.t2, &self.t3]
    }
}

/// A mean with its standard error.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MeanSe {
    pub n: usize,
    pub mean: Option<f64>,
    pub se: Option<f64>,
}

/// edit.json: the output of `kn edit --facts N --json` (an aggregate), or of
/// `kn edit --fact ID --json` (one fact's metrics at the top level).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EditFile {
    pub requested: Option<usize>,
    pub aggregate: Option<EditAggregate>,
    pub facts: Vec<FactEdit>,
    pub skipped: Vec<EditSkip>,
    // The single-fact layout.
    pub fact: Option<String>,
    pub relation: Option<String>,
    pub subject: Option<String>,
    pub old_answer: Option<String>,
    pub new_answer: Option<String>,
    pub before: Option<UpdateMetrics>,
    pub after: Option<UpdateMetrics>,
    pub random_control: Option<UpdateMetrics>,
    pub perplexity_change_pct: Option<PerplexityChange>,
}

/// Means over the edited facts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EditAggregate {
    pub facts: usize,
    pub prompts: usize,
    pub before: MeanMetrics,
    pub after: MeanMetrics,
    pub random_control: Option<MeanMetrics>,
    pub perplexity_change_pct: PerplexityChange,
}

/// kn-cli's `MeanMetrics` of `kn edit`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MeanMetrics {
    pub success_rate: Option<f64>,
    pub change_rate: Option<f64>,
    pub top5_rate: Option<f64>,
    pub mrr: Option<f64>,
    pub mean_old_prob: Option<f64>,
    pub mean_new_prob: Option<f64>,
    pub same_relation_perplexity: Option<f64>,
    pub other_relations_perplexity: Option<f64>,
    pub same_relation_accuracy: Option<f64>,
    pub other_relations_accuracy: Option<f64>,
}

/// Relative perplexity changes (%).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PerplexityChange {
    pub same_relation: Option<f64>,
    pub other_relations: Option<f64>,
    pub random_same_relation: Option<f64>,
    pub random_other_relations: Option<f64>,
}

/// kn-edit's `UpdateMetrics` of one fact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UpdateMetrics {
    pub success_rate: Option<f64>,
    pub change_rate: Option<f64>,
    pub top5_rate: Option<f64>,
    pub mrr: Option<f64>,
    pub mean_old_prob: Option<f64>,
    pub mean_new_prob: Option<f64>,
    pub same_relation: Option<AnswerQuality>,
    pub other_relations: Option<AnswerQuality>,
}

impl UpdateMetrics {
    /// The same numbers in the aggregate's layout.
    pub fn to_means(&self) -> MeanMetrics {
        MeanMetrics {
            success_rate: self.success_rate,
            change_rate: self.change_rate,
            top5_rate: self.top5_rate,
            mrr: self.mrr,
            mean_old_prob: self.mean_old_prob,
            mean_new_prob: self.mean_new_prob,
            same_relation_perplexity: self.same_relation.as_ref().and_then(|q| q.perplexity),
            other_relations_perplexity: self.other_relations.as_ref().and_then(|q| q.perplexity),
            same_relation_accuracy: self.same_relation.as_ref().and_then(|q| q.accuracy),
            other_relations_accuracy: self.other_relations.as_ref().and_then(|q| q.accuracy),
        }
    }
}

/// Accuracy and perplexity of some prompts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AnswerQuality {
    pub prompts: usize,
    pub accuracy: Option<f64>,
    pub perplexity: Option<f64>,
}

/// One updated fact of `kn edit --facts N`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FactEdit {
    pub fact: String,
    pub relation: String,
    pub subject: String,
    pub old_answer: String,
    pub new_answer: String,
    pub before: UpdateMetrics,
    pub after: UpdateMetrics,
}

/// A fact `kn edit` could not update.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EditSkip {
    pub fact: String,
    pub reason: String,
}

/// An edit, normalized: the aggregate of `--facts N` or the one fact of `--fact`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Edit {
    /// Facts updated.
    pub facts: usize,
    /// Facts asked for (`--facts N`), when known.
    pub requested: Option<usize>,
    pub prompts: Option<usize>,
    pub before: MeanMetrics,
    pub after: MeanMetrics,
    pub random_control: Option<MeanMetrics>,
    pub perplexity_change_pct: PerplexityChange,
    pub per_fact: Vec<FactEdit>,
    pub skipped: Vec<EditSkip>,
}

/// erase-*.json: the output of `kn erase --json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Erase {
    #[serde(default)]
    pub relation: String,
    #[serde(default)]
    pub config: EraseConfig,
    #[serde(default)]
    pub neurons: Vec<serde_json::Value>,
    #[serde(default)]
    pub token_text: Option<String>,
    pub summary: EraseSummary,
}

/// kn-edit's `EraseConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EraseConfig {
    pub top_n: Option<usize>,
    pub value: serde_json::Value,
}

impl EraseConfig {
    /// What the value slots became, in words.
    pub fn value_text(&self, token_text: Option<&str>) -> String {
        use serde_json::Value;
        let token = token_text.map(|t| format!(" ({t:?})")).unwrap_or_default();
        match &self.value {
            Value::String(s) if s == "unknown_token" => format!("unknown token{token}"),
            Value::String(s) if s == "zero" => "zeros".into(),
            Value::String(s) => s.clone(),
            Value::Object(map) => match map.iter().next() {
                Some((k, v)) if k == "token" => format!("token id {v}{token}"),
                Some((k, Value::String(t))) if k == "token_text" => format!("token {t:?}"),
                _ => self.value.to_string(),
            },
            Value::Null => "?".into(),
            other => other.to_string(),
        }
    }
}

/// The erasure's summary: the erased relation and the others.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EraseSummary {
    pub erased_relation: QualityChange,
    #[serde(default)]
    pub other_relations: Option<QualityChange>,
}

/// Before/after of one group of prompts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct QualityChange {
    pub prompts: usize,
    pub accuracy_before: Option<f64>,
    pub accuracy_after: Option<f64>,
    pub perplexity_before: Option<f64>,
    pub perplexity_after: Option<f64>,
    pub perplexity_change_pct: Option<f64>,
    pub random_accuracy: Option<f64>,
    pub random_perplexity: Option<f64>,
    pub random_perplexity_change_pct: Option<f64>,
}

/// Everything read from a run directory.
#[derive(Debug, Clone)]
pub(crate) struct RunData {
    pub dir: PathBuf,
    pub config: RunConfig,
    /// neurons.jsonl, file order.
    pub facts: Vec<FactRecord>,
    /// True when the last line of neurons.jsonl was a torn write (no newline, not JSON) and
    /// was left out.
    pub torn_last_line: bool,
    pub stats: Option<Stats>,
    pub relations: Option<BTreeMap<String, RelationSummary>>,
    pub suppression: Option<Suppression>,
    pub activations: Option<Activations>,
    pub edit: Option<Edit>,
    /// `(file name, report)` of each erase-*.json, by file name.
    pub erasures: Vec<(String, Erase)>,
}

impl RunData {
    /// Reads the run in `dir` (see the crate docs for the files).
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let config_path = dir.join("config.json");
        let config: RunConfig =
            read_json(&config_path, "kn discover configuration")?.ok_or(ReportError::Missing {
                path: config_path.clone(),
                hint: "not a kn discover run directory (kn discover --out DIR writes config.json)",
            })?;
        let neurons_path = dir.join("neurons.jsonl");
        let text = read_text(&neurons_path)?.ok_or(ReportError::Missing {
            path: neurons_path.clone(),
            hint: "kn discover writes one line per fact there",
        })?;
        let (facts, torn_last_line) = parse_facts(&text, &neurons_path)?;
        let edit = read_json::<EditFile>(&dir.join("edit.json"), "kn edit --json report")?
            .map(|file| normalize_edit(file, &dir.join("edit.json")))
            .transpose()?;
        let mut erasures = Vec::new();
        for path in erase_files(dir)? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(erase) = read_json::<Erase>(&path, "kn erase --json report")? {
                erasures.push((name, erase));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            facts,
            torn_last_line,
            stats: read_json(&dir.join("stats.json"), "kn discover stats.json")?,
            relations: read_json(&dir.join("relations.json"), "kn discover relations.json")?,
            suppression: read_json(&dir.join("suppression.json"), "kn suppress report")?,
            activations: read_json(&dir.join("activations.json"), "kn activations report")?,
            edit,
            erasures,
        })
    }

    /// The relations of the facts, in natural order.
    pub fn relations(&self) -> Vec<String> {
        let mut relations: Vec<String> = self
            .facts
            .iter()
            .map(|f| f.relation.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        relations.sort_by(|a, b| compare_relations(a, b));
        relations
    }

    /// The attributed layers, ascending: config.json's `layers`, or (when absent) every layer
    /// holding a knowledge neuron.
    pub fn layers(&self) -> Vec<usize> {
        let mut layers: Vec<usize> = if self.config.layers.is_empty() {
            self.facts
                .iter()
                .flat_map(|f| f.neurons.iter().map(|n| n.layer))
                .collect()
        } else {
            self.config.layers.clone()
        };
        layers.sort_unstable();
        layers.dedup();
        layers
    }
}

/// The text of `path`, `None` when it does not exist.
fn read_text(path: &Path) -> Result<Option<String>, ReportError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReportError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `path` parsed as `T`, `None` when it does not exist.
fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, ReportError> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ReportError::Json {
            path: path.to_path_buf(),
            what,
            source,
        })
}

/// The erase-*.json files of `dir`, sorted by name.
fn erase_files(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ReportError::Io {
        action: "read",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ReportError::Io {
            action: "read",
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("erase-") && name.ends_with(".json") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Parses neurons.jsonl: one fact per non-empty line, unique ids, at least one fact. A last
/// line without a newline that does not parse is a torn write of an interrupted run: it is
/// left out (and reported) rather than refused.
pub(crate) fn parse_facts(text: &str, path: &Path) -> Result<(Vec<FactRecord>, bool), ReportError> {
    let mut facts = Vec::new();
    let mut seen = BTreeSet::new();
    let mut torn = false;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: FactRecord = match serde_json::from_str(line.trim_end()) {
            Ok(record) => record,
            Err(_) if !line.ends_with('\n') => {
                torn = true;
                break;
            }
            Err(source) => {
                return Err(ReportError::JsonLine {
                    path: path.to_path_buf(),
                    line: index + 1,
                    source,
                })
            }
        };
        if !seen.insert(record.fact.clone()) {
            return Err(ReportError::Invalid {
                path: path.to_path_buf(),
                reason: format!("line {}: fact {} appears twice", index + 1, record.fact),
            });
        }
        facts.push(record);
    }
    if facts.is_empty() {
        return Err(ReportError::Invalid {
            path: path.to_path_buf(),
            reason: "holds no facts".into(),
        });
    }
    Ok((facts, torn))
}

/// The edit of either layout of edit.json.
fn normalize_edit(file: EditFile, path: &Path) -> Result<Edit, ReportError> {
    if let Some(aggregate) = file.aggregate {
        return Ok(Edit {
            facts: aggregate.facts,
            requested: file.requested,
            prompts: Some(aggregate.prompts),
            before: aggregate.before,
            after: aggregate.after,
            random_control: aggregate.random_control,
            perplexity_change_pct: aggregate.perplexity_change_pct,
            per_fact: file.facts,
            skipped: file.skipped,
        });
    }
    match (&file.fact, &file.before, &file.after) {
        (Some(fact), Some(before), Some(after)) => Ok(Edit {
            facts: 1,
            requested: None,
            prompts: None,
            before: before.to_means(),
            after: after.to_means(),
            random_control: file.random_control.as_ref().map(UpdateMetrics::to_means),
            perplexity_change_pct: file.perplexity_change_pct.clone().unwrap_or_default(),
            per_fact: vec![FactEdit {
                fact: fact.clone(),
                relation: file.relation.clone().unwrap_or_default(),
                subject: file.subject.clone().unwrap_or_default(),
                old_answer: file.old_answer.clone().unwrap_or_default(),
                new_answer: file.new_answer.clone().unwrap_or_default(),
                before: before.clone(),
                after: after.clone(),
            }],
            skipped: Vec::new(),
        }),
        _ => Err(ReportError::Invalid {
            path: path.to_path_buf(),
            reason: "neither an \"aggregate\" (kn edit --facts N --json) nor a fact's \
                     \"before\"/\"after\" (kn edit --fact ID --json)"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_parse_with_unknown_fields_and_torn_last_lines() {
        let path = Path::new("neurons.jsonl");
        let line = |id: &str| {
            format!(
                "{{\"fact\":\"{id}\",\"relation\":\"P1\",\"extra\":[1,2],\"neurons\":[{{\"layer\":1,\"neuron\":2,\"score\":0.5}}]}}\n"
            )
        };
        let text = format!(
            "{}\n{}{{\"fact\":\"P1:3\",\"rel",
            line("P1:1"),
            line("P1:2")
        );
        let (facts, torn) = parse_facts(&text, path).unwrap();
        assert_eq!(facts.len(), 2);
        assert!(torn);
        assert_eq!(
            facts[0].neuron_set().into_iter().collect::<Vec<_>>(),
            vec![(1, 2)]
        );
        // A bad line in the middle is an error naming the line.
        let bad = format!("{}not json\n{}", line("P1:1"), line("P1:2"));
        let error = parse_facts(&bad, path).unwrap_err();
        assert!(
            matches!(error, ReportError::JsonLine { line: 2, .. }),
            "{error}"
        );
        let twice = format!("{}{}", line("P1:1"), line("P1:1"));
        assert!(matches!(
            parse_facts(&twice, path),
            Err(ReportError::Invalid { .. })
        ));
        assert!(matches!(
            parse_facts("\n", path),
            Err(ReportError::Invalid { .. })
        ));
    }

    #[test]
    fn erase_values_read_well() {
        let config = |v: serde_json::Value| EraseConfig {
            top_n: Some(20),
            value: v,
        };
        assert_eq!(
            config(serde_json::json!("unknown_token")).value_text(Some("<unk>")),
            "unknown token (\"<unk>\")"
        );
        assert_eq!(config(serde_json::json!("zero")).value_text(None), "zeros");
        assert_eq!(
            config(serde_json::json!({"token": 5})).value_text(None),
            "token id 5"
        );
        assert_eq!(
            config(serde_json::json!({"token_text": "x"})).value_text(None),
            "token \"x\""
        );
    }

    #[test]
    fn single_fact_edits_are_normalized() {
        let file: EditFile = serde_json::from_value(serde_json::json!({
            "fact": "P1:1", "relation": "P1", "subject": "s", "old_answer": "a", "new_answer": "b",
            "before": {"success_rate": 0.0, "same_relation": {"prompts": 3, "accuracy": 1.0, "perplexity": 2.0}},
            "after": {"success_rate": 0.5},
        }))
        .unwrap();
        let edit = normalize_edit(file, Path::new("edit.json")).unwrap();
        assert_eq!(edit.facts, 1);
        assert_eq!(edit.after.success_rate, Some(0.5));
        assert_eq!(edit.before.same_relation_perplexity, Some(2.0));
        let empty: EditFile = serde_json::from_str("{}").unwrap();
        assert!(normalize_edit(empty, Path::new("edit.json")).is_err());
    }
}
