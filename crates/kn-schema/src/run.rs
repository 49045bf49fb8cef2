//! The records of a `kn discover` run directory: `config.json` ([`RunConfig`]) and
//! `neurons.jsonl` (one [`FactRecord`] a line), and the one reader of `neurons.jsonl`,
//! [`parse_neurons`], which every command that reads a run uses.
//!
//! The reader refuses, naming the line: a line that is not a record, a fact id that is not
//! `RELATION:INDEX` or whose relation is not the record's, and a fact that appears twice (a run
//! never counts a fact twice). [`check_facts_known`] refuses facts outside the run's selection.

use crate::error::{Result, SchemaError};
use crate::ids::parse_fact_id;
use crate::neuron::Neuron;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// The configuration a run directory records; a resumed run must match it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Toolkit version.
    pub version: String,
    /// Model source, architecture and fingerprint.
    pub model: ModelRecord,
    /// Selected relations.
    pub relations: Vec<String>,
    /// Facts per relation.
    pub facts_per_relation: usize,
    /// Sampling seed.
    pub seed: u64,
    /// Data directory.
    pub data: String,
    /// The attribution method of the coarse step (`ig` in runs written before it was
    /// recorded).
    #[serde(default = "integrated_gradients_name")]
    pub method: String,
    /// Attribution steps.
    pub steps: usize,
    /// Attributed layers.
    pub layers: Vec<usize>,
    /// Coarse threshold t.
    pub threshold: f32,
    /// Refinement share p.
    pub share: f64,
    /// Adaptive p.
    pub adaptive: bool,
    /// Minimum prompts.
    pub min_prompts: usize,
    /// Maximum prompts (0: all).
    pub max_prompts: usize,
    /// Correctness filter rank (0: off).
    pub correct_rank: usize,
    /// Correctness filter prompt count.
    pub correct_prompts: usize,
    /// Single-token answers only.
    pub single_token: bool,
    /// Shard `[index, count]`.
    pub shard: Option<(usize, usize)>,
}

/// Which model produced a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Where it was loaded from.
    pub source: String,
    /// Architecture name.
    pub architecture: String,
    /// Weights fingerprint.
    pub fingerprint: String,
    /// The type its weight matrices were held and multiplied in (`--dtype`; runs written
    /// before it was recorded ran in f32).
    #[serde(default = "float32_name")]
    pub dtype: String,
}

/// The method of runs that do not record one.
fn integrated_gradients_name() -> String {
    "ig".into()
}

/// The dtype of runs that do not record one.
fn float32_name() -> String {
    "f32".into()
}

/// One prompt's record in neurons.jsonl.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromptRecord {
    /// The prompt text.
    pub text: String,
    /// Probability of the answer's first token.
    pub prob: f64,
    /// Rank of the answer (1 = top).
    pub rank: usize,
    /// Neurons the coarse selection chose for this prompt.
    pub coarse: Vec<Neuron>,
    /// `--method atp` only: the counterfactual prompt the scores compare with (absent for
    /// the other methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterfactual: Option<String>,
}

/// A neuron with its score: a refined neuron of neurons.jsonl (its mean attribution over the
/// fact's prompts) or one of a prompt's top neurons (`kn attribute`). In JSON
/// `{"layer", "neuron", "score"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredNeuron {
    /// Layer.
    pub layer: usize,
    /// Neuron index within the layer.
    pub neuron: usize,
    /// The score.
    pub score: f32,
}

impl ScoredNeuron {
    /// The neuron scored.
    pub fn id(&self) -> Neuron {
        Neuron::new(self.layer, self.neuron)
    }
}

/// One line of neurons.jsonl: a fact and its knowledge neurons.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FactRecord {
    /// Fact id (`P36:12`).
    pub fact: String,
    /// Relation id.
    pub relation: String,
    /// Subject.
    pub subject: String,
    /// Object (the answer).
    pub object: String,
    /// The prompts used, with clean probabilities and coarse selections.
    pub prompts: Vec<PromptRecord>,
    /// Refined knowledge neurons (share p of the configuration), highest score first.
    pub neurons: Vec<ScoredNeuron>,
    /// Attribution wall time for the fact, seconds.
    pub seconds: f64,
}

/// `neurons.jsonl` as read: its records with their 1-based line numbers.
#[derive(Debug, Clone, Default)]
pub struct NeuronsFile {
    /// The records, in file order.
    pub records: Vec<FactRecord>,
    /// The line of each record.
    pub lines: Vec<usize>,
    /// Bytes of the text made of whole lines (all of it unless the last line was torn).
    pub whole_bytes: usize,
    /// Whether a last line without its newline (an interrupted append) was left out.
    pub torn_tail: bool,
}

/// What to do with a last line that has no newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornTail {
    /// Leave it out (the writer's view: an append was interrupted; resuming repairs it).
    Drop,
    /// Read it like any other line (a reader's view: a complete record without a newline
    /// is accepted, anything else is an error).
    Read,
}

/// Parses the text of `neurons.jsonl` (see the module docs for what is refused). Blank lines
/// are skipped.
pub fn parse_neurons(text: &str, path: &Path, tail: TornTail) -> Result<NeuronsFile> {
    let mut file = NeuronsFile::default();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let bad = |line: usize, reason: String| SchemaError::BadLine {
        path: path.to_path_buf(),
        line,
        reason,
    };
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let line = index + 1;
        if !raw.ends_with('\n') && tail == TornTail::Drop {
            file.torn_tail = true;
            break;
        }
        file.whole_bytes += raw.len();
        if raw.trim().is_empty() {
            continue;
        }
        let record: FactRecord = serde_json::from_str(raw.trim_end()).map_err(|e| {
            bad(
                line,
                format!(
                    "not a kn discover fact record ({e}); a torn last line from an interrupted run is \
                     repaired by resuming kn discover"
                ),
            )
        })?;
        let (relation, _) = parse_fact_id(&record.fact).map_err(|why| bad(line, why))?;
        if relation != record.relation {
            return Err(bad(
                line,
                format!(
                    "fact {} is filed under relation {:?}",
                    record.fact, record.relation
                ),
            ));
        }
        file.records.push(record);
        file.lines.push(line);
    }
    for (record, &line) in file.records.iter().zip(&file.lines) {
        if !seen.insert(record.fact.as_str()) {
            let first = file
                .records
                .iter()
                .zip(&file.lines)
                .find(|(r, _)| r.fact == record.fact)
                .map_or(0, |(_, &l)| l);
            return Err(bad(
                line,
                format!(
                    "fact {} appears twice (first on line {first}): a run counts each fact once; \
                     remove one of the lines",
                    record.fact
                ),
            ));
        }
    }
    Ok(file)
}

/// Refuses a record whose fact is not in `known` (the facts the run selected, or the data's),
/// naming its line; `what` says what `known` is, for the message.
pub fn check_facts_known(
    file: &NeuronsFile,
    known: &BTreeSet<String>,
    what: &str,
    path: &Path,
) -> Result<()> {
    for (record, &line) in file.records.iter().zip(&file.lines) {
        if !known.contains(&record.fact) {
            return Err(SchemaError::BadLine {
                path: path.to_path_buf(),
                line,
                reason: format!("fact {} is not one of {what}", record.fact),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(fact: &str, relation: &str) -> String {
        format!(
            r#"{{"fact":"{fact}","relation":"{relation}","subject":"France","object":"Paris","prompts":[{{"text":"The capital of France is","prob":0.1,"rank":1,"coarse":[[0,1]]}}],"neurons":[{{"layer":0,"neuron":1,"score":0.5}}],"seconds":1.0}}"#
        )
    }

    fn parse(text: &str, tail: TornTail) -> Result<NeuronsFile> {
        parse_neurons(text, Path::new("neurons.jsonl"), tail)
    }

    #[test]
    fn records_parse_with_their_lines() {
        let text = format!("{}\n\n{}\n", line("P36:1", "P36"), line("P36:2", "P36"));
        let file = parse(&text, TornTail::Drop).unwrap();
        assert_eq!(file.lines, [1, 3]);
        assert_eq!(file.whole_bytes, text.len());
        assert!(!file.torn_tail);
        assert_eq!(file.records[1].neurons[0].neuron, 1);
    }

    #[test]
    fn bad_lines_are_refused_naming_the_line() {
        let good = line("P36:1", "P36");
        for (text, fragment) in [
            (
                format!("{good}\n{good}\n"),
                "line 2: fact P36:1 appears twice (first on line 1)",
            ),
            (
                format!("{good}\n{}\n", line("garbage", "P36")),
                "line 2: fact id \"garbage\"",
            ),
            (format!("{}\n", line("../x:1", "../x")), "line 1: fact id"),
            (
                format!("{}\n", line("P19:1", "P36")),
                "filed under relation",
            ),
            (
                format!("{good}\n{{\"fact\":1}}\n"),
                "line 2: not a kn discover fact record",
            ),
        ] {
            let error = parse(&text, TornTail::Read).unwrap_err().to_string();
            assert!(error.contains(fragment), "{error}");
        }
    }

    #[test]
    fn a_torn_tail_is_dropped_or_read_as_asked() {
        let good = line("P36:1", "P36");
        let torn = format!("{good}\n{}", &good[..40]);
        let file = parse(&torn, TornTail::Drop).unwrap();
        assert!(file.torn_tail);
        assert_eq!((file.records.len(), file.whole_bytes), (1, good.len() + 1));
        assert!(parse(&torn, TornTail::Read).is_err());
        // A whole record without its newline is fine for a reader.
        assert_eq!(parse(&good, TornTail::Read).unwrap().records.len(), 1);
    }

    #[test]
    fn facts_outside_the_known_set_are_refused_naming_the_line() {
        let text = format!("{}\n{}\n", line("P36:1", "P36"), line("P36:999999", "P36"));
        let file = parse(&text, TornTail::Read).unwrap();
        let known = ["P36:1".to_string()].into_iter().collect();
        let error = check_facts_known(&file, &known, "the selection", Path::new("n.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 2: fact P36:999999 is not one of the selection"),
            "{error}"
        );
    }

    proptest! {
        /// Whatever the lines, a file that parses holds each fact once.
        #[test]
        fn a_parsed_file_never_counts_a_fact_twice(
            facts in prop::collection::vec((prop::sample::select(vec!["P36", "P19", "x"]), 0usize..4), 0..8),
            torn in any::<bool>(),
        ) {
            let mut text: String = facts
                .iter()
                .map(|(relation, index)| line(&format!("{relation}:{index}"), relation) + "\n")
                .collect();
            if torn {
                text.push_str("{\"fact\": \"P3");
            }
            if let Ok(file) = parse(&text, TornTail::Drop) {
                let unique: BTreeSet<&str> = file.records.iter().map(|r| r.fact.as_str()).collect();
                prop_assert_eq!(unique.len(), file.records.len());
                prop_assert_eq!(file.torn_tail, torn);
            }
        }
    }
}
