//! Outputs are checked before any work: a command whose output cannot be written says so at
//! once with exit 2 (the path is the user's input), instead of failing with exit 3 after
//! minutes of attribution. A command that works on a run directory holds the directory's lock
//! ([`kn_schema::RunLock`]) while it runs: exclusively when it changes the results (discover,
//! merge), shared when it only adds a report beside them, so two commands never interleave
//! their writes and no report is made from results that are changing.

use crate::error::RunError;
use kn_schema::{Access, RunLock, SchemaError};
use std::path::Path;

/// Creates the output directory `dir` if needed, checks that files can be created in it and
/// takes its lock for `command` with `access`.
pub fn prepare_run_dir(dir: &Path, command: &str, access: Access) -> Result<RunLock, RunError> {
    if dir.exists() && !dir.is_dir() {
        return Err(RunError::BadInput(format!(
            "--out {} is an existing file, not a directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        RunError::BadInput(format!(
            "cannot create the output directory {}: {e}",
            dir.display()
        ))
    })?;
    check_writable_dir(dir, "--out")?;
    lock(dir, command, access)
}

/// Checks that the file `path` can be written (atomically, beside itself): it is not a
/// directory, and its directory exists and takes new files. `option` names the option for the
/// message.
pub fn check_output_file(path: &Path, option: &str) -> Result<(), RunError> {
    if path.is_dir() {
        return Err(RunError::BadInput(format!(
            "{option} {} is a directory; give a file name",
            path.display()
        )));
    }
    let parent = kn_schema::atomic::parent_dir(path);
    if !parent.is_dir() {
        return Err(RunError::BadInput(format!(
            "{option} {}: the directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    check_writable_dir(parent, option)
}

/// When `path` (a file about to be written) lies in a run directory (one that holds a
/// `config.json` and a `neurons.jsonl`), takes that directory's lock for `command`, shared.
pub fn lock_run_of(path: &Path, command: &str) -> Result<Option<RunLock>, RunError> {
    let dir = kn_schema::atomic::parent_dir(path);
    if dir.join("config.json").is_file() && dir.join("neurons.jsonl").is_file() {
        return lock(dir, command, Access::Shared).map(Some);
    }
    Ok(None)
}

/// [`check_output_file`] and [`lock_run_of`] for each output file given (`(path, option)`
/// pairs); the locks taken.
pub fn prepare_outputs(
    outputs: &[(Option<&Path>, &str)],
    command: &str,
) -> Result<Vec<RunLock>, RunError> {
    let mut locks = Vec::new();
    for (path, option) in outputs {
        if let Some(path) = path {
            check_output_file(path, option)?;
            locks.extend(lock_run_of(path, command)?);
        }
    }
    Ok(locks)
}

fn lock(dir: &Path, command: &str, access: Access) -> Result<RunLock, RunError> {
    RunLock::acquire(dir, command, access).map_err(|e| match e {
        SchemaError::Busy { .. } => RunError::BadInput(e.to_string()),
        other => RunError::BadInput(format!("cannot lock {}: {other}", dir.display())),
    })
}

/// Creates and removes a probe file in `dir`: the one reliable test of whether files can be
/// created there (permissions, read-only mounts, ACLs).
fn check_writable_dir(dir: &Path, option: &str) -> Result<(), RunError> {
    tempfile::Builder::new()
        .prefix(".kn-write-check.")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            RunError::BadInput(format!(
                "{option}: cannot create files in {}: {e}",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_output_paths_are_refused_as_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        for error in [
            prepare_run_dir(&file, "kn discover", Access::Exclusive).unwrap_err(),
            prepare_run_dir(&file.join("below"), "kn discover", Access::Exclusive).unwrap_err(),
            check_output_file(dir.path(), "--out").unwrap_err(),
            check_output_file(&dir.path().join("no/such.json"), "--out").unwrap_err(),
        ] {
            assert!(matches!(error, RunError::BadInput(_)), "{error}");
        }
        check_output_file(&dir.path().join("fine.json"), "--out").unwrap();
        let run = dir.path().join("run");
        let lock = prepare_run_dir(&run, "kn discover", Access::Exclusive).unwrap();
        let busy = prepare_run_dir(&run, "kn report", Access::Shared).unwrap_err();
        assert!(busy.to_string().contains("is in use by process"), "{busy}");
        drop(lock);
        // Only what the check created is left behind: the lock file.
        let names: Vec<_> = std::fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            [std::ffi::OsString::from(kn_schema::lock::LOCK_FILE)]
        );
    }
}
