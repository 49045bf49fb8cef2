//! The inputs of the activation and trigger experiments (`kn_probe`): a discovery run, the
//! PARAREL facts it was made from and the BINGREL corpus, checked to line up: a missing
//! relation file, or one whose number of bags differs from the relation's number of facts, is
//! bad input, as is a run fact that PARAREL does not have with the same subject and object.

use crate::error::RunError;
use crate::run_dir::RunDir;
use crate::Message;
use kn_data::{Dataset, FactId, Pararel};
use kn_probe::{Corpus, KnowledgeFact};
use std::path::{Path, PathBuf};

/// A run, its PARAREL data and the corpus, checked against each other.
pub struct ProbeData {
    /// The discover run.
    pub run: RunDir,
    /// The PARAREL directory used.
    pub data_dir: PathBuf,
    /// The PARAREL dataset.
    pub dataset: Dataset,
    /// The BINGREL bags of the relations asked for.
    pub corpus: Corpus,
}

impl ProbeData {
    /// Reads PARAREL (`data`, else the run's data directory, else the bundled copy, with a
    /// warning to `report`) and the BINGREL bags in `corpus` of `relations`, checking that
    /// they line up.
    pub fn load(
        run: RunDir,
        corpus: &Path,
        data: Option<&Path>,
        relations: &[String],
        report: &dyn Fn(Message),
    ) -> Result<Self, RunError> {
        let data_dir = match data {
            Some(dir) => dir.to_path_buf(),
            None => {
                let recorded = PathBuf::from(&run.config.data);
                if recorded.is_dir() {
                    recorded
                } else {
                    report(Message::Warning(format!(
                        "the run's data directory {} is not here; using the bundled PARAREL (pass --data to choose)",
                        recorded.display()
                    )));
                    Pararel::bundled_dir()
                }
            }
        };
        let dataset =
            kn_data::load_facts(&data_dir).map_err(|e| RunError::BadInput(e.to_string()))?;
        if !corpus.is_dir() {
            return Err(RunError::BadInput(format!(
                "--corpus {}: not a directory",
                corpus.display()
            )));
        }
        let corpus = Corpus::load(corpus, &dataset, relations)?;
        Ok(Self {
            run,
            data_dir,
            dataset,
            corpus,
        })
    }

    /// A run record as a fact with knowledge neurons, checked against PARAREL.
    pub fn fact(&self, record: &kn_schema::FactRecord) -> Result<KnowledgeFact, RunError> {
        let id: FactId = record
            .fact
            .parse()
            .map_err(|e| RunError::BadInput(format!("{}: {e}", self.run.neurons_path.display())))?;
        let fact = self.dataset.fact(&id).ok_or_else(|| {
            RunError::BadInput(format!(
                "fact {id} of {} is not in the PARAREL data at {} (pass the run's --data)",
                self.run.neurons_path.display(),
                self.data_dir.display()
            ))
        })?;
        if fact.subject != record.subject || fact.object != record.object {
            return Err(RunError::BadInput(format!(
                "fact {id} is ({}, {}) in {} but ({}, {}) in the PARAREL data at {}: the run was made from other data \
                 (pass its --data)",
                record.subject,
                record.object,
                self.run.neurons_path.display(),
                fact.subject,
                fact.object,
                self.data_dir.display()
            )));
        }
        Ok(KnowledgeFact {
            fact: fact.clone(),
            neurons: record
                .neurons
                .iter()
                .map(kn_schema::ScoredNeuron::id)
                .collect(),
            prompts: record.prompts.iter().map(|p| p.text.clone()).collect(),
        })
    }
}
