//! Reading a run directory into [`RunData`]: every file is parsed as the type its writer
//! serializes (kn-schema's run records and reports), so a renamed or missing field is an error
//! naming the file, never a silent "-" in a report. An experiment's file that does not exist
//! is `None` (that section is not run yet).
//!
//! Writers: `kn discover` (config.json, neurons.jsonl, stats.json, relations.json), `kn
//! suppress` (suppression.json), `kn activations` (activations.json), `kn edit --json`
//! (edit.json, either layout), `kn edit --sweep` (edit-sweep.json) and `kn erase --json`
//! (erase-*.json).

use crate::error::ReportError;
pub(crate) use kn_schema::report::activations::{
    ActivationsFile as Activations, GroupReport as ActivationGroup,
};
pub(crate) use kn_schema::report::discovery::{
    RelationSummary, StatsFile as Stats, Summary as StatsSummary,
};
pub(crate) use kn_schema::report::edit::{
    EditChecks, FactEdit, MeanMetrics, PerplexityChange, SampleOutput, SingleOutput, Skipped,
};
pub(crate) use kn_schema::report::erase::{EraseOutput as Erase, ErasureValue};
pub(crate) use kn_schema::report::stats::{Summary as MeanSe, Triple};
pub(crate) use kn_schema::report::suppression::SuppressionFile as Suppression;
pub(crate) use kn_schema::report::suppression::{
    ChangeSummary as Change, GroupReport as SuppressionGroup, OpEffects as Effects,
};
pub(crate) use kn_schema::report::sweep::SweepOutput;
pub(crate) use kn_schema::{FactRecord, Neuron, RunConfig};
#[cfg(test)]
pub(crate) use kn_schema::{PromptRecord, ScoredNeuron};

/// A fact's refined neurons as a sorted set.
pub(crate) fn neuron_set(fact: &FactRecord) -> BTreeSet<Neuron> {
    fact.neurons
        .iter()
        .map(kn_schema::ScoredNeuron::id)
        .collect()
}
use kn_select::compare_relations;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// An edit, normalized: the aggregate of `--facts N` or the one fact of `--fact`.
#[derive(Debug, Clone)]
pub(crate) struct Edit {
    /// Facts updated.
    pub facts: usize,
    /// Facts asked for (`--facts N`), when known.
    pub requested: Option<usize>,
    /// Prompts of the updated facts (the aggregate's count).
    pub prompts: Option<usize>,
    pub before: MeanMetrics,
    pub after: MeanMetrics,
    pub random_control: Option<MeanMetrics>,
    pub perplexity_change_pct: PerplexityChange,
    /// Reliability, generality, locality and symmetry (means over facts for `--facts N`).
    pub checks: EditChecks,
    pub per_fact: Vec<FactEdit>,
    pub skipped: Vec<Skipped>,
}

impl Edit {
    /// The aggregate of `kn edit --facts N --json`.
    fn of_sample(file: SampleOutput) -> Self {
        Self {
            facts: file.aggregate.facts,
            requested: Some(file.requested),
            prompts: Some(file.aggregate.prompts),
            before: file.aggregate.before,
            after: file.aggregate.after,
            random_control: file.aggregate.random_control,
            perplexity_change_pct: file.aggregate.perplexity_change_pct,
            checks: file.aggregate.checks,
            per_fact: file.facts,
            skipped: file.skipped,
        }
    }

    /// The one fact of `kn edit --fact ID --json`, in the aggregate's layout.
    fn of_single(file: SingleOutput) -> Self {
        let evaluation = &file.edit.evaluation;
        Self {
            facts: 1,
            requested: None,
            prompts: Some(evaluation.after.prompts),
            before: MeanMetrics::of(std::iter::once(&evaluation.before)),
            after: MeanMetrics::of(std::iter::once(&evaluation.after)),
            random_control: evaluation
                .random_control
                .as_ref()
                .map(|m| MeanMetrics::of(std::iter::once(m))),
            perplexity_change_pct: file.edit.perplexity_change_pct.clone(),
            checks: evaluation.checks.clone(),
            per_fact: vec![file.edit],
            skipped: Vec::new(),
        }
    }
}

/// What the erased value slots became, in words.
pub(crate) fn erasure_value_text(value: &ErasureValue, token_text: Option<&str>) -> String {
    let token = token_text.map(|t| format!(" ({t:?})")).unwrap_or_default();
    match value {
        ErasureValue::UnknownToken => format!("unknown token{token}"),
        ErasureValue::Zero => "zeros".into(),
        ErasureValue::Token(id) => format!("token id {id}{token}"),
        ErasureValue::TokenText(text) => format!("token {text:?}"),
    }
}

/// Everything read from a run directory.
#[derive(Debug, Clone)]
pub(crate) struct RunData {
    pub dir: PathBuf,
    pub config: RunConfig,
    /// neurons.jsonl, file order.
    pub facts: Vec<FactRecord>,
    /// True when the last line of neurons.jsonl was a torn write (no newline) and was left
    /// out.
    pub torn_last_line: bool,
    pub stats: Option<Stats>,
    pub relations: Option<BTreeMap<String, RelationSummary>>,
    pub suppression: Option<Suppression>,
    pub activations: Option<Activations>,
    pub edit: Option<Edit>,
    /// edit-sweep.json (`kn edit --facts N --sweep ...`).
    pub sweep: Option<SweepOutput>,
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
        let edit = read_edit(&dir.join("edit.json"))?;
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
            sweep: read_json(&dir.join("edit-sweep.json"), "kn edit --sweep report")?,
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
fn read_json<T: Serialize + DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, ReportError> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    kn_schema::from_json_complete(&text)
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

/// Parses neurons.jsonl with kn-schema's reader (a bad line, a bad fact id or a fact written
/// twice is an error naming the line); a last line without its newline is an interrupted
/// append: it is left out and reported. A file without facts is refused.
pub(crate) fn parse_facts(text: &str, path: &Path) -> Result<(Vec<FactRecord>, bool), ReportError> {
    let file =
        kn_schema::parse_neurons(text, path, kn_schema::TornTail::Drop).map_err(|e| match e {
            kn_schema::SchemaError::BadLine { path, line, reason } => {
                ReportError::JsonLine { path, line, reason }
            }
            other => ReportError::Invalid {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        })?;
    if file.records.is_empty() {
        return Err(ReportError::Invalid {
            path: path.to_path_buf(),
            reason: "holds no facts".into(),
        });
    }
    Ok((file.records, file.torn_tail))
}

/// edit.json in either layout: the aggregate of `--facts N` (it has an "aggregate") or one
/// fact of `--fact ID`; `None` when there is no such file.
fn read_edit(path: &Path) -> Result<Option<Edit>, ReportError> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    let parse_error = |source| ReportError::Json {
        path: path.to_path_buf(),
        what: "kn edit --json report",
        source,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(parse_error)?;
    let edit = if value.get("aggregate").is_some() {
        Edit::of_sample(kn_schema::from_json_complete(&text).map_err(parse_error)?)
    } else {
        Edit::of_single(kn_schema::from_json_complete(&text).map_err(parse_error)?)
    };
    Ok(Some(edit))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"fact":"P1:1","relation":"P1","subject":"s","object":"o","prompts":[],"neurons":[{"layer":1,"neuron":2,"score":0.5}],"seconds":1.0}"#;

    #[test]
    fn facts_parse_and_torn_last_lines_are_left_out() {
        let path = Path::new("neurons.jsonl");
        let second = LINE.replace("P1:1", "P1:2");
        let text = format!("{LINE}\n{second}\n{{\"fact\":\"P1:3\",\"rel");
        let (facts, torn) = parse_facts(&text, path).unwrap();
        assert_eq!(facts.len(), 2);
        assert!(torn);
        // A bad line in the middle, a renamed field, a fact twice and no fact are errors.
        let bad = format!("{LINE}\nnot json\n{second}\n");
        assert!(parse_facts(&bad, path)
            .unwrap_err()
            .to_string()
            .contains("line 2"));
        let renamed = format!("{}\n", LINE.replace("\"neurons\"", "\"neuron_list\""));
        assert!(parse_facts(&renamed, path).is_err());
        let twice = format!("{LINE}\n{LINE}\n");
        assert!(parse_facts(&twice, path).is_err());
        assert!(parse_facts("\n", path).is_err());
    }

    #[test]
    fn erase_values_read_well() {
        assert_eq!(
            erasure_value_text(&ErasureValue::UnknownToken, Some("<unk>")),
            "unknown token (\"<unk>\")"
        );
        assert_eq!(erasure_value_text(&ErasureValue::Zero, None), "zeros");
        assert_eq!(
            erasure_value_text(&ErasureValue::Token(5), None),
            "token id 5"
        );
        assert_eq!(
            erasure_value_text(&ErasureValue::TokenText("x".into()), None),
            "token \"x\""
        );
    }
}
