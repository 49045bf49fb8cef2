//! Atomic file writes: every file of a report is written to a temporary file in the target's
//! directory, synced, and renamed over the target, so an interrupted run or a full disk never
//! leaves a partial report, figure or chart behind (at worst the previous version stays).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writes within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling of `path` used while writing it: hidden, named after the target, the
/// process and a counter, ending in `.tmp`.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{count}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, synced to
/// disk, then renamed over `path` (and the directory synced where the platform allows). On
/// any failure the temporary file is removed and `path` is left as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = temporary_path(path);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
        return result;
    }
    sync_parent(path);
    Ok(())
}

/// Makes the rename durable by syncing the directory (best effort: not every platform or file
/// system lets a directory be opened and synced).
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_replace_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(names(dir.path()), vec!["report.html".to_string()]);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file_and_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails after the data was written.
        let target = dir.path().join("busy");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"x").unwrap();
        assert!(write_atomically(&target, b"data").is_err());
        assert_eq!(names(dir.path()), vec!["busy".to_string()]);
        assert!(target.is_dir());
        // A missing directory fails before anything is written.
        assert!(write_atomically(&dir.path().join("no/such/file"), b"x").is_err());
        assert_eq!(names(dir.path()), vec!["busy".to_string()]);
    }

    #[test]
    fn temporary_names_are_hidden_siblings() {
        let t = temporary_path(Path::new("/a/b/report.md"));
        assert_eq!(t.parent(), Some(Path::new("/a/b")));
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".report.md.") && name.ends_with(".tmp"));
        assert_ne!(
            temporary_path(Path::new("x")),
            temporary_path(Path::new("x"))
        );
    }
}
