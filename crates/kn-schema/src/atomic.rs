//! The project's one atomic file writer: every file `kn` writes whole (run configurations,
//! summaries, score matrices, reports, figures, patch files) goes through
//! [`write_atomically`].
//!
//! The bytes go to a temporary file in the target's directory, created exclusively under an
//! unpredictable name (the `tempfile` crate: `O_CREAT | O_EXCL`, so a planted file or symlink
//! is never followed or overwritten), synced, then renamed over the target, and the directory
//! is synced. On any failure (a full disk, a file-size limit, a rename onto a directory) the
//! temporary file is removed and the target is left as it was: an interrupted run never leaves
//! a partial file behind, at worst the previous version.

use std::io::Write;
use std::path::Path;

/// Writes `value` as pretty JSON to `path` atomically (see [`write_atomically`]); a value
/// that cannot be serialized is an `InvalidData` error.
pub fn write_json_atomically<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    write_atomically(path, text.as_bytes())
}

/// Writes `bytes` to `path` atomically (see the module docs). The target's directory must
/// exist.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    // Dropping `temporary` on an early return removes the file. Created with the mode any new
    // file gets (0666 less the umask), not tempfile's private 0600: results are meant to be read.
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut temporary = builder.tempfile_in(directory)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|error| error.error)?;
    sync_dir(directory);
    Ok(())
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable by syncing the directory (best effort: not every platform or
/// file system lets a directory be opened and synced).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
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

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_mode_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let atomic = dir.path().join("atomic");
        write_atomically(&atomic, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }

    #[cfg(unix)]
    #[test]
    fn planted_symlinks_at_the_old_temporary_names_are_never_followed() {
        // The names the writers used before (`P.tmp`, `.P.partial`) and this one's prefix:
        // a symlink planted at any of them must not redirect the write.
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let target = dir.path().join("patch.safetensors");
        for planted in ["patch.safetensors.tmp", ".patch.safetensors.partial"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        write_atomically(&target, b"new patch").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(&target).unwrap(), b"new patch");
        // The planted links are left alone, and no temporary file stays.
        assert_eq!(
            names(dir.path()),
            [
                ".patch.safetensors.partial",
                "patch.safetensors",
                "patch.safetensors.tmp",
                "victim"
            ]
        );
    }
}
