//! The lock a command holds on a run directory while it works on it, so that two runs on one
//! directory cannot interleave their results (two `kn discover --out D` would otherwise each
//! append every fact).
//!
//! A command that changes the run's results (`kn discover`, `kn merge`) holds it
//! [`Access::Exclusive`]; a command that reads the run and adds a report file beside it (`kn
//! suppress`, `kn report`, ...) holds it [`Access::Shared`], so such commands run side by side
//! (each report file is written atomically) but never while the results change.
//!
//! The lock is an advisory `flock` on `DIR/.kn-lock` (the file stays; only the lock matters,
//! and the kernel drops it when the process ends, also on a crash or `kill -9`). Each holder
//! writes its process id and command into the file, so a refused command can say who holds
//! the directory (with several shared holders, the latest one).

use crate::error::{Result, SchemaError};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside a run directory.
pub const LOCK_FILE: &str = ".kn-lock";

/// How a command uses the run directory it locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Changes the run's results: no other command may hold the directory.
    Exclusive,
    /// Reads the results and adds files beside them: other shared holders are welcome.
    Shared,
}

/// A held lock on a run directory; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    dir: PathBuf,
    // Held open for the lock's lifetime: closing it releases the lock.
    _file: File,
}

impl RunLock {
    /// Takes the lock on `dir` (which must exist) for `command` (e.g. `kn discover`), or fails
    /// with [`SchemaError::Busy`] naming the process that holds it.
    pub fn acquire(dir: &Path, command: &str, access: Access) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let io = |source| SchemaError::Io {
            path: path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Never follow a symlink planted in place of the lock file.
            options.custom_flags(libc::O_NOFOLLOW);
        }
        let mut file = options.open(&path).map_err(io)?;
        let locked = match access {
            Access::Exclusive => file.try_lock(),
            Access::Shared => file.try_lock_shared(),
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(SchemaError::Busy {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "another process".into()
                    } else {
                        holder.chars().take(200).collect()
                    },
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let note = format!("process {} ({command})\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all(note.as_bytes()))
            .map_err(io)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "kn discover", Access::Exclusive).unwrap();
        for access in [Access::Exclusive, Access::Shared] {
            assert!(RunLock::acquire(dir.path(), "kn report", access).is_err());
        }
        let error = RunLock::acquire(dir.path(), "kn discover", Access::Exclusive).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("process {}", std::process::id()))
                && message.contains("kn discover"),
            "{message}"
        );
        drop(first);
        let again = RunLock::acquire(dir.path(), "kn merge", Access::Exclusive).unwrap();
        assert_eq!(again.dir(), dir.path());
    }

    #[test]
    fn shared_holders_run_side_by_side_but_keep_a_writer_out() {
        let dir = tempfile::tempdir().unwrap();
        let report = RunLock::acquire(dir.path(), "kn report", Access::Shared).unwrap();
        let suppress = RunLock::acquire(dir.path(), "kn suppress", Access::Shared).unwrap();
        let error = RunLock::acquire(dir.path(), "kn discover", Access::Exclusive).unwrap_err();
        assert!(error.to_string().contains("(kn suppress)"), "{error}");
        drop((report, suppress));
        RunLock::acquire(dir.path(), "kn discover", Access::Exclusive).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(LOCK_FILE)).unwrap();
        assert!(RunLock::acquire(dir.path(), "kn discover", Access::Exclusive).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    }
}
