//! Reading a `kn discover` run for the editing subcommands (`kn suppress`, `kn edit`,
//! `kn erase`): `DIR/config.json` and `DIR/neurons.jsonl` (read only, never repaired), the
//! check that the loaded model is the run's model, and the conversion of its records into
//! `kn_edit::EncodedFact` (each prompt re-encoded with the fact's object as answer, first
//! token, as discover attributed it).
//!
//! Also what every editing experiment shares: seeded orders without a random-number crate,
//! prompt caps, and the means and percentages of changes.

use crate::error::RunError;
use kn_edit::{EncodedFact, NeuronFrequencies, NeuronSet};
use kn_model::{AnswerPolicy, EncodedPrompt, KnowledgeModel, ModelError, ModelInfo};
pub use kn_schema::report::{change_pct, mean, RunSummary};
use kn_schema::{FactRecord, RunConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A `kn discover` run directory, as read from disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its neurons.jsonl.
    pub neurons_path: PathBuf,
    /// Its config.json.
    pub config: RunConfig,
    /// Every line of neurons.jsonl, in file order.
    pub records: Vec<FactRecord>,
}

impl RunDir {
    /// Reads the run that `path` names: a `neurons.jsonl` file (its directory must hold the
    /// run's `config.json`) or the run directory itself. Every line must be a fact record and
    /// every fact id unique; an empty file is refused.
    pub fn load(path: &Path) -> Result<Self, RunError> {
        let neurons_path = if path.is_dir() {
            path.join("neurons.jsonl")
        } else {
            path.to_path_buf()
        };
        let dir = neurons_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let text = std::fs::read_to_string(&neurons_path).map_err(|e| {
            RunError::BadInput(format!(
                "cannot read {}: {e} (give the neurons.jsonl of a kn discover run)",
                neurons_path.display()
            ))
        })?;
        let config_path = dir.join("config.json");
        let config_text = kn_schema::read_capped_text(
            &config_path,
            kn_schema::CONFIG_FILE_LIMIT,
            "run configuration",
        )
        .map_err(|e| {
            RunError::BadInput(format!(
                "cannot read {e}; the neurons file must sit in its kn discover run directory beside config.json"
            ))
        })?;
        let config: RunConfig = serde_json::from_str(&config_text).map_err(|e| {
            RunError::BadInput(format!(
                "{} is not a kn discover configuration: {e}",
                config_path.display()
            ))
        })?;
        let records = parse_records(&text, &neurons_path, &dir)?;
        Ok(Self {
            dir,
            neurons_path,
            config,
            records,
        })
    }

    /// Refuses a model other than the one the run was made with (architecture or weights
    /// fingerprint differ).
    pub fn check_model(&self, info: &ModelInfo) -> Result<(), RunError> {
        let run = &self.config.model;
        if run.fingerprint != info.fingerprint || run.architecture != info.architecture {
            return Err(RunError::BadInput(format!(
                "{} was made with another model: {} {} (fingerprint {}), but --model loaded {} {} (fingerprint {}); \
                 knowledge neurons only mean something for the model they were found in: pass --model {}",
                self.neurons_path.display(),
                run.architecture,
                run.source,
                run.fingerprint,
                info.architecture,
                info.source,
                info.fingerprint,
                run.source
            )));
        }
        Ok(())
    }

    /// The relations of the run's facts, in order of first appearance.
    pub fn relations(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.records
            .iter()
            .filter(|r| seen.insert(r.relation.clone()))
            .map(|r| r.relation.clone())
            .collect()
    }

    /// The relations named by `spec` (comma-separated; `None` or `all`: every relation of the
    /// run). A relation without facts in the run is bad input.
    pub fn select_relations(&self, spec: Option<&str>) -> Result<Vec<String>, RunError> {
        let present = self.relations();
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty() && *s != "all") else {
            return Ok(present);
        };
        let mut chosen = Vec::new();
        for relation in spec.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            if !present.iter().any(|p| p == relation) {
                return Err(RunError::BadInput(format!(
                    "relation {relation} has no facts in {} (it has: {})",
                    self.neurons_path.display(),
                    present.join(", ")
                )));
            }
            if !chosen.iter().any(|c: &String| c == relation) {
                chosen.push(relation.to_string());
            }
        }
        Ok(chosen)
    }

    /// The one relation `spec` names (as `kn erase --relation` takes it: the first of a list;
    /// empty or `all` is the run's first relation; one without facts is bad input).
    pub fn select_relation(&self, spec: &str) -> Result<String, RunError> {
        self.select_relations(Some(spec))?
            .into_iter()
            .next()
            .ok_or_else(|| RunError::BadInput("--relation is empty".into()))
    }

    /// The record of fact `id` (bad input if the run has none).
    pub fn find(&self, id: &str) -> Result<&FactRecord, RunError> {
        self.records
            .iter()
            .find(|r| r.fact == id.trim())
            .ok_or_else(|| {
                let examples: Vec<&str> = self
                    .records
                    .iter()
                    .take(5)
                    .map(|r| r.fact.as_str())
                    .collect();
                RunError::BadInput(format!(
                    "fact {id:?} is not in {} (facts there include {})",
                    self.neurons_path.display(),
                    examples.join(", ")
                ))
            })
    }

    /// The records of `relations`, in file order.
    pub fn records_of(&self, relations: &[String]) -> Vec<&FactRecord> {
        self.records
            .iter()
            .filter(|r| relations.contains(&r.relation))
            .collect()
    }

    /// The layers the run attributed (the layers its knowledge neurons can be in).
    pub fn layers(&self) -> &[usize] {
        &self.config.layers
    }

    /// What the JSON reports say about the run.
    pub fn describe(&self) -> RunSummary {
        RunSummary {
            neurons: self.neurons_path.display().to_string(),
            facts: self.records.len(),
            relations: self.relations(),
            model_source: self.config.model.source.clone(),
            fingerprint: self.config.model.fingerprint.clone(),
            kn_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Parses neurons.jsonl with `kn_schema::parse_neurons` (a bad line, a bad fact id or a fact
/// written twice is refused, naming the line), checks its facts against the run's
/// selection.json when the run has one, and refuses a file without facts.
fn parse_records(text: &str, path: &Path, dir: &Path) -> Result<Vec<FactRecord>, RunError> {
    let bad = |e: kn_schema::SchemaError| RunError::BadInput(e.to_string());
    let file = kn_schema::parse_neurons(text, path, kn_schema::TornTail::Read).map_err(bad)?;
    if let Some(selected) = crate::output_dir::read_selection(dir)? {
        let known = selected.into_iter().collect();
        kn_schema::check_facts_known(
            &file,
            &known,
            "the facts the run selected (selection.json)",
            path,
        )
        .map_err(bad)?;
    }
    if file.records.is_empty() {
        return Err(RunError::BadInput(format!(
            "{} holds no facts",
            path.display()
        )));
    }
    Ok(file.records)
}

/// The knowledge neurons of a record.
pub fn record_neurons(record: &FactRecord) -> NeuronSet {
    record.neurons.iter().map(|n| (n.layer, n.neuron)).collect()
}

/// A record as `EncodedFact`: its prompts encoded with its object as answer (first token), its
/// knowledge neurons checked against the model.
pub fn encode_fact(
    model: &dyn KnowledgeModel,
    record: &FactRecord,
) -> Result<EncodedFact, RunError> {
    let mut prompts = Vec::with_capacity(record.prompts.len());
    for prompt in &record.prompts {
        let encoded = model
            .encode(&prompt.text, Some(&record.object), AnswerPolicy::FirstToken)
            .map_err(|e| match e {
                ModelError::Torch(_) | ModelError::OutOfMemory(_) => RunError::from(e),
                other => RunError::BadInput(format!(
                    "fact {}: prompt {:?}: {other}",
                    record.fact, prompt.text
                )),
            })?;
        prompts.push(encoded);
    }
    if prompts.is_empty() {
        return Err(RunError::BadInput(format!(
            "fact {} has no prompts in the neurons file",
            record.fact
        )));
    }
    let neurons = record_neurons(record);
    neurons
        .validate(model.info())
        .map_err(|e| RunError::BadInput(format!("fact {}: {e}", record.fact)))?;
    Ok(EncodedFact {
        id: record.fact.clone(),
        relation: record.relation.clone(),
        prompts,
        neurons,
        activation_baseline: None,
    })
}

/// [`encode_fact`] for every record.
pub fn encode_facts(
    model: &dyn KnowledgeModel,
    records: &[&FactRecord],
) -> Result<Vec<EncodedFact>, RunError> {
    records.iter().map(|r| encode_fact(model, r)).collect()
}

/// Every record of `run` encoded ([`encode_fact`]), by fact id.
pub fn encode_run(
    model: &dyn KnowledgeModel,
    run: &RunDir,
) -> Result<std::collections::BTreeMap<String, EncodedFact>, RunError> {
    run.records
        .iter()
        .map(|r| Ok((r.fact.clone(), encode_fact(model, r)?)))
        .collect()
}

/// Relation-level neuron counts over the knowledge neurons of `relation`'s records.
pub fn relation_frequencies(records: &[FactRecord], relation: &str) -> NeuronFrequencies {
    let sets: Vec<NeuronSet> = records
        .iter()
        .filter(|r| r.relation == relation)
        .map(record_neurons)
        .collect();
    NeuronFrequencies::from_sets(sets.iter())
}

/// `items` in a seeded order: sorted by `derive_seed(seed, "<purpose>/<key>")` (the same
/// order on every platform, independent of the other items).
pub fn seeded_order<T>(
    items: Vec<T>,
    seed: u64,
    purpose: &str,
    key: impl Fn(&T) -> String,
) -> Vec<T> {
    let mut keyed: Vec<(u64, T)> = items
        .into_iter()
        .map(|item| {
            (
                kn_edit::derive_seed(seed, &format!("{purpose}/{}", key(&item))),
                item,
            )
        })
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, item)| item).collect()
}

/// At most `max` of `prompts` (all when `max` is 0 or enough), chosen in a seeded order and
/// returned in their original order.
pub fn cap_prompts(
    prompts: Vec<EncodedPrompt>,
    max: usize,
    seed: u64,
    purpose: &str,
) -> Vec<EncodedPrompt> {
    if max == 0 || prompts.len() <= max {
        return prompts;
    }
    let indexed: Vec<(usize, EncodedPrompt)> = prompts.into_iter().enumerate().collect();
    let mut kept: Vec<(usize, EncodedPrompt)> =
        seeded_order(indexed, seed, purpose, |(i, p)| format!("{i}/{}", p.text))
            .into_iter()
            .take(max)
            .collect();
    kept.sort_by_key(|(i, _)| *i);
    kept.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"fact":"P36:1","relation":"P36","subject":"France","object":"Paris","prompts":[{"text":"The capital of France is","prob":0.1,"rank":1,"coarse":[[0,1]]}],"neurons":[{"layer":0,"neuron":1,"score":0.5}],"seconds":1.0}"#;

    #[test]
    fn records_parse_and_refuse_garbage_and_duplicates() {
        let path = Path::new("n.jsonl");
        let records = parse_records(&format!("{LINE}\n\n"), path, Path::new(".")).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(record_neurons(&records[0]).as_slice(), &[(0, 1)]);
        assert!(parse_records("", path, Path::new(".")).is_err());
        let error =
            parse_records(&format!("{LINE}\n{{not json\n"), path, Path::new(".")).unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(
            parse_records(&format!("{LINE}\n{LINE}\n"), path, Path::new("."))
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let freq = relation_frequencies(&records, "P36");
        assert_eq!((freq.facts(), freq.count(0, 1)), (1, 1));
        assert_eq!(relation_frequencies(&records, "P19").facts(), 0);
    }

    #[test]
    fn seeded_orders_are_stable_and_caps_keep_order() {
        let a = seeded_order((0..20).collect::<Vec<_>>(), 3, "x", |i| i.to_string());
        let b = seeded_order((0..20).collect::<Vec<_>>(), 3, "x", |i| i.to_string());
        assert_eq!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<_>>());
        let prompt = |i: usize| EncodedPrompt {
            text: format!("p{i}"),
            token_ids: vec![1],
            answer_position: 0,
            answer_ids: vec![2],
            targets: vec![(0, 2)],
        };
        let capped = cap_prompts((0..10).map(prompt).collect(), 4, 1, "c");
        assert_eq!(capped.len(), 4);
        let numbers: Vec<usize> = capped
            .iter()
            .map(|p| p.text[1..].parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            cap_prompts((0..3).map(prompt).collect(), 0, 1, "c").len(),
            3
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(change_pct(2.0, 3.0), Some(50.0));
        assert_eq!(change_pct(0.0, 3.0), None);
        assert_eq!(mean([Some(1.0), None, Some(3.0)]), Some(2.0));
        assert_eq!(mean([None]), None);
    }
}
