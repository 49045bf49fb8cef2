//! Merging the run directories of a sharded discovery (`kn discover --shard i/n`) into one
//! run ([`merge_shards`]), checking
//! that every shard used the same configuration and model, that all n shards are there, that
//! every shard finished the facts it selected (its selection.json), and that every fact is
//! present exactly once. The merged neurons.jsonl has the unsharded run's
//! fact order (shard i holds selection positions i, i + n, ...), and relations.json and
//! stats.json are recomputed from all facts. Saved attribution matrices (`scores/*.npy`) are
//! copied from every shard.

use crate::error::RunError;
use crate::output_dir::{write_summaries, OutputDir};
use crate::Message;
use kn_schema::{FactRecord, RunConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What [`merge_shards`] did.
#[derive(Debug, Clone)]
pub struct MergeSummary {
    /// Facts in the merged run.
    pub facts: usize,
    /// Shards merged.
    pub shards: usize,
    /// Saved score matrices copied.
    pub scores: usize,
    /// The merged run's statistics (its stats.json).
    pub stats: kn_schema::report::discovery::StatsFile,
}

/// Merges the run directories `shard_dirs` of one sharded discovery (any order) into `out_dir`,
/// checking everything the module docs list; `report` hears warnings (a shard too old to
/// check).
pub fn merge_shards(
    out_dir: &Path,
    shard_dirs: &[PathBuf],
    report: &dyn Fn(Message),
) -> Result<MergeSummary, RunError> {
    let out = OutputDir::prepare(out_dir, "kn merge")?;
    let mut shards: Vec<(RunConfig, Vec<FactRecord>, PathBuf)> = Vec::new();
    let mut selected: Vec<String> = Vec::new();
    for dir in shard_dirs {
        let config_path = dir.join("config.json");
        let text = kn_schema::read_capped_text(
            &config_path,
            kn_schema::CONFIG_FILE_LIMIT,
            "run configuration",
        )
        .map_err(|e| RunError::BadInput(format!("{e} (not a kn discover run?)")))?;
        let config: RunConfig = serde_json::from_str(&text)
            .map_err(|e| RunError::BadInput(format!("{}: {e}", config_path.display())))?;
        // Locked while read: a shard still being written is refused, naming its process.
        let shard = OutputDir::open(dir, &config, "kn merge")?;
        let records = shard.records()?;
        match shard.selection()? {
            Some(selection) => {
                let finished: BTreeSet<&str> = records.iter().map(|r| r.fact.as_str()).collect();
                let missing = selection
                    .iter()
                    .filter(|f| !finished.contains(f.as_str()))
                    .count();
                if missing > 0 {
                    return Err(RunError::BadInput(format!(
                        "{} is unfinished: {missing} of its {} selected facts are not in neurons.jsonl; \
                         rerun its kn discover command (it resumes), then merge",
                        dir.display(),
                        selection.len()
                    )));
                }
                selected.extend(selection);
            }
            None => report(Message::Warning(format!(
                "{} has no selection.json (an older run): whether it finished cannot be checked",
                dir.display()
            ))),
        }
        shards.push((config, records, dir.clone()));
    }
    let Some((first, _, _)) = shards.first() else {
        return Err(RunError::BadInput("no shard directories given".into()));
    };
    let count = match first.shard {
        Some((_, count)) => count,
        None => {
            return Err(RunError::BadInput(format!(
                "{} is not a sharded run",
                shard_dirs[0].display()
            )))
        }
    };
    let unsharded = RunConfig {
        shard: None,
        ..first.clone()
    };
    let mut by_index: Vec<Option<usize>> = vec![None; count];
    for (k, (config, _, dir)) in shards.iter().enumerate() {
        let Some((index, n)) = config.shard else {
            return Err(RunError::BadInput(format!(
                "{} is not a sharded run",
                dir.display()
            )));
        };
        if n != count
            || (RunConfig {
                shard: None,
                ..config.clone()
            }) != unsharded
        {
            return Err(RunError::BadInput(format!(
                "{} was run with another configuration than {}",
                dir.display(),
                shard_dirs[0].display()
            )));
        }
        if by_index[index].replace(k).is_some() {
            return Err(RunError::BadInput(format!(
                "shard {index}/{count} is given twice"
            )));
        }
    }
    if let Some(missing) = by_index.iter().position(Option::is_none) {
        return Err(RunError::BadInput(format!(
            "shard {missing}/{count} is missing"
        )));
    }
    // Interleave: selection position p lives in shard p % n at row p / n.
    let ordered: Vec<&Vec<FactRecord>> = by_index.iter().flatten().map(|&k| &shards[k].1).collect();
    let longest = ordered.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut merged: Vec<FactRecord> = Vec::new();
    let mut seen = BTreeSet::new();
    for row in 0..longest {
        for records in &ordered {
            if let Some(record) = records.get(row) {
                if !seen.insert(record.fact.clone()) {
                    return Err(RunError::BadInput(format!(
                        "fact {} appears in more than one shard",
                        record.fact
                    )));
                }
                merged.push(record.clone());
            }
        }
    }
    out.claim(&unsharded)?;
    if !out.records()?.is_empty() {
        return Err(RunError::BadInput(format!(
            "{} already holds results; merge into an empty directory",
            out_dir.display()
        )));
    }
    for record in &merged {
        out.append(record)?;
    }
    if !selected.is_empty() {
        out.write_selection(&merged.iter().map(|r| r.fact.clone()).collect::<Vec<_>>())?;
    }
    let stats = write_summaries(&out, &merged, &unsharded)?;
    let scores = copy_scores(shard_dirs, out_dir)?;
    Ok(MergeSummary {
        facts: merged.len(),
        shards: count,
        scores,
        stats,
    })
}

/// Copies every shard's `scores/*.npy` into `out/scores/` (atomically, file by file).
fn copy_scores(shards: &[PathBuf], out: &std::path::Path) -> Result<usize, RunError> {
    let mut copied = 0;
    for shard in shards {
        let Ok(entries) = std::fs::read_dir(shard.join("scores")) else {
            continue;
        };
        let target = out.join("scores");
        std::fs::create_dir_all(&target)
            .map_err(|e| RunError::Internal(format!("{}: {e}", target.display())))?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("npy") {
                continue;
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| RunError::BadInput(format!("{}: {e}", path.display())))?;
            let destination = target.join(entry.file_name());
            kn_schema::write_atomically(&destination, &bytes).map_err(|e| {
                RunError::Internal(format!("cannot write {}: {e}", destination.display()))
            })?;
            copied += 1;
        }
    }
    Ok(copied)
}
