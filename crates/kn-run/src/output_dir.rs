//! A `kn discover` output directory being written: its configuration (claimed once, a
//! resumed run must match it), `neurons.jsonl` appended a synced line per fact,
//! `selection.json`, the scores files, and the summaries (`relations.json`, `stats.json`)
//! written from every finished line. Held under the directory's lock.

use crate::error::RunError;
use kn_schema::report::discovery::{RelationSummary, StatsFile};
use kn_schema::{write_atomically, FactRecord, RunConfig};
use kn_select::{
    refine_all, summarize, AdaptiveShare, FactCounts, FactNeurons, Neuron, RefineConfig,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file listing the facts a run selected.
pub const SELECTION_FILE: &str = "selection.json";

/// A run directory: config.json, selection.json, neurons.jsonl, relations.json, stats.json,
/// held under its lock for as long as this value lives.
pub struct OutputDir {
    dir: PathBuf,
    _lock: kn_schema::RunLock,
}

impl OutputDir {
    /// Creates `dir` if needed, checks that it takes new files and takes its lock for
    /// `command`: all before any work (see `outputs`).
    pub fn prepare(dir: &Path, command: &str) -> Result<Self, RunError> {
        let lock = crate::outputs::prepare_run_dir(dir, command, kn_schema::Access::Exclusive)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// [`OutputDir::prepare`], then [`OutputDir::claim`].
    pub fn open(dir: &Path, config: &RunConfig, command: &str) -> Result<Self, RunError> {
        let out = Self::prepare(dir, command)?;
        out.claim(config)?;
        Ok(out)
    }

    /// Records `config` in a new directory, or checks that the directory holds a run of the
    /// same configuration.
    pub fn claim(&self, config: &RunConfig) -> Result<(), RunError> {
        let dir = &self.dir;
        let io = |e: std::io::Error| RunError::Internal(format!("{}: {e}", dir.display()));
        let config_path = dir.join("config.json");
        let text =
            serde_json::to_string_pretty(config).map_err(|e| RunError::Internal(e.to_string()))?;
        if config_path.exists() {
            let existing = kn_schema::read_capped_text(
                &config_path,
                kn_schema::CONFIG_FILE_LIMIT,
                "run configuration",
            )
            .map_err(|e| RunError::BadInput(e.to_string()))?;
            let existing: RunConfig = serde_json::from_str(&existing).map_err(|e| {
                RunError::BadInput(format!(
                    "{} is not a kn discover configuration: {e}",
                    config_path.display()
                ))
            })?;
            if &existing != config {
                return Err(RunError::BadInput(format!(
                    "{} holds results of a different configuration ({}); use another --out directory",
                    dir.display(),
                    describe_difference(&existing, config)
                )));
            }
        } else if self.neurons_path().exists() {
            return Err(RunError::BadInput(format!(
                "{} has neurons.jsonl but no config.json: refusing to mix results",
                dir.display()
            )));
        } else {
            write_atomically(&config_path, text.as_bytes()).map_err(io)?;
        }
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run's neurons.jsonl.
    pub fn neurons_path(&self) -> PathBuf {
        self.dir.join("neurons.jsonl")
    }

    /// The finished records (validated by `kn_schema::parse_neurons`: a malformed line, a bad
    /// fact id or a fact written twice is an error naming the line); a torn last line (an
    /// interrupted write) is cut from the file, and `torn_tail` says so (that fact runs again).
    pub fn read_neurons(&self) -> Result<kn_schema::NeuronsFile, RunError> {
        let path = self.neurons_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(RunError::BadInput(format!("{}: {e}", path.display()))),
        };
        let file = kn_schema::parse_neurons(&text, &path, kn_schema::TornTail::Drop)
            .map_err(|e| RunError::BadInput(format!("{e}; refusing to use this run")))?;
        if file.torn_tail {
            write_atomically(&path, &text.as_bytes()[..file.whole_bytes])
                .map_err(|e| RunError::Internal(e.to_string()))?;
        }
        Ok(file)
    }

    /// The finished records (see [`OutputDir::read_neurons`]).
    pub fn records(&self) -> Result<Vec<FactRecord>, RunError> {
        Ok(self.read_neurons()?.records)
    }

    /// Appends one record as one line and syncs it to disk. If the write fails (a full disk),
    /// the file is cut back to its previous length so no partial line survives.
    pub fn append(&self, record: &FactRecord) -> Result<(), RunError> {
        let path = self.neurons_path();
        let io =
            |e: std::io::Error| RunError::Internal(format!("cannot write {}: {e}", path.display()));
        let mut line =
            serde_json::to_string(record).map_err(|e| RunError::Internal(e.to_string()))?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(error) = written {
            // Best effort: the error that matters is the write's.
            let _ = file.set_len(length).and_then(|()| file.sync_data());
            return Err(io(error));
        }
        Ok(())
    }

    /// Writes DIR/selection.json: the ids of the facts this run (or shard) selected, in order,
    /// so that `kn merge` and readers can tell a finished run from an unfinished one.
    pub fn write_selection(&self, facts: &[String]) -> Result<(), RunError> {
        write_json(
            &self.dir.join(SELECTION_FILE),
            &serde_json::json!({ "facts": facts }),
        )
    }

    /// The fact ids of DIR/selection.json (`None` for runs written before it existed).
    pub fn selection(&self) -> Result<Option<Vec<String>>, RunError> {
        read_selection(&self.dir)
    }

    /// The scores files of `relation` already saved in DIR/scores/.
    pub fn saved_scores(&self, relation: &str) -> Result<usize, RunError> {
        let dir = self.dir.join("scores");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(RunError::Internal(format!("{}: {e}", dir.display()))),
        };
        let prefix = format!("{relation}_");
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".npy")
            })
            .count())
    }

    /// Writes `DIR/scores/<fact>.npy` (`:` in the id written as `_`) atomically.
    pub fn save_scores(
        &self,
        fact: &str,
        layers: &[usize],
        scores: &ndarray::Array2<f32>,
    ) -> Result<(), RunError> {
        let dir = self.dir.join("scores");
        std::fs::create_dir_all(&dir)
            .map_err(|e| RunError::Internal(format!("{}: {e}", dir.display())))?;
        let path = dir.join(kn_schema::npy::scores_file_name(fact));
        kn_attribution::save_scores(&path, layers, scores)
            .map_err(|e| RunError::Internal(e.to_string()))
    }
}

/// The fact ids of `dir`/selection.json (`None` for runs written before it existed).
pub fn read_selection(dir: &Path) -> Result<Option<Vec<String>>, RunError> {
    let path = dir.join(SELECTION_FILE);
    if !path.exists() {
        return Ok(None);
    }
    // A selection lists at most every PARAREL fact (27,738): far below this cap.
    let text = kn_schema::read_capped_text(&path, 64 << 20, "selection file")
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    #[derive(Deserialize)]
    struct Selection {
        facts: Vec<String>,
    }
    let selection: Selection = serde_json::from_str(&text)
        .map_err(|e| RunError::BadInput(format!("{}: {e}", path.display())))?;
    Ok(Some(selection.facts))
}

fn describe_difference(old: &RunConfig, new: &RunConfig) -> String {
    let old = serde_json::to_value(old).unwrap_or_default();
    let new = serde_json::to_value(new).unwrap_or_default();
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return "unknown".into();
    };
    let keys: Vec<&String> = new.keys().filter(|k| old.get(*k) != new.get(*k)).collect();
    format!(
        "differs in {}",
        keys.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The refinement a run's configuration asks for (its p and minimum of prompts).
pub fn refine_config(config: &RunConfig) -> RefineConfig {
    RefineConfig {
        share: config.share,
        min_prompts: config.min_prompts,
        ..RefineConfig::default()
    }
}

/// Writes relations.json and stats.json from all finished records (refined as `config` says);
/// returns the statistics.
pub fn write_summaries(
    out: &OutputDir,
    records: &[FactRecord],
    config: &RunConfig,
) -> Result<StatsFile, RunError> {
    let counts: Vec<FactCounts> = records
        .iter()
        .map(|r| {
            let coarse: Vec<Vec<Neuron>> = r.prompts.iter().map(|p| p.coarse.clone()).collect();
            FactCounts::from_coarse(r.fact.clone(), r.relation.clone(), &coarse)
        })
        .collect();
    let adaptive = config.adaptive.then(AdaptiveShare::paper_code);
    let refined = refine_all(&counts, &refine_config(config), adaptive.as_ref())
        .map_err(|e| RunError::Internal(e.to_string()))?;
    let mut relations = BTreeMap::new();
    let mut all_facts: Vec<FactNeurons> = Vec::new();
    for relation in &refined {
        relations.insert(
            relation.relation.clone(),
            RelationSummary {
                facts: relation.facts.len(),
                skipped: relation.skipped.clone(),
                share: relation.share,
                mean_neurons_per_fact: relation.mean_neurons,
                neurons: relation.relation_neurons(0.1),
            },
        );
        all_facts.extend(relation.facts.iter().cloned());
    }
    let per_fact = |total: f64| total / records.len().max(1) as f64;
    let stats = StatsFile {
        summary: summarize(&all_facts),
        seconds_per_fact: per_fact(records.iter().map(|r| r.seconds).sum()),
        prompts_per_fact: per_fact(records.iter().map(|r| r.prompts.len() as f64).sum()),
        config: config.clone(),
    };
    write_json(&out.dir.join("relations.json"), &relations)?;
    write_json(&out.dir.join("stats.json"), &stats)?;
    Ok(stats)
}

/// Writes `value` as pretty JSON to `path`, atomically.
fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), RunError> {
    kn_schema::write_json_atomically(path, value)
        .map_err(|e| RunError::Internal(format!("{}: {e}", path.display())))
}
