//! A directory of generated files (a random-weight model) that is written once and reused: its
//! stamp file says which generator and settings wrote it, and a directory whose stamp matches is
//! used as it is. The files are written into a temporary sibling directory that is renamed into
//! place at the end, so an interrupted run never leaves a half-written model behind. Shared by
//! `random_bert.rs` and `llama_shaped.rs`.

use std::path::Path;

/// `path: error`.
pub fn io_error(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Whether `dir` holds a complete directory stamped `stamp` (in `stamp_file`) with `files`.
pub fn is_complete(dir: &Path, stamp_file: &str, stamp: &str, files: &[&str]) -> bool {
    std::fs::read_to_string(dir.join(stamp_file))
        .map(|s| s == stamp)
        .unwrap_or(false)
        && files.iter().all(|f| dir.join(f).is_file())
}

/// Makes sure `dir` holds what `write` writes, stamped `stamp`: reused when complete, else
/// written by `write` into a temporary directory renamed to `dir`. Returns whether it was
/// written. Refuses to touch a directory that exists, is not empty and has no stamp file.
pub fn ensure(
    dir: &Path,
    stamp_file: &str,
    stamp: &str,
    files: &[&str],
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<bool, String> {
    if is_complete(dir, stamp_file, stamp, files) {
        return Ok(false);
    }
    if dir.exists() {
        let ours = dir.join(stamp_file).is_file();
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !ours && !empty {
            return Err(format!(
                "{} exists and was not written by this generator; not touching it",
                dir.display()
            ));
        }
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "generated".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
    let result = write(&tmp).and_then(|()| {
        std::fs::write(tmp.join(stamp_file), stamp).map_err(|e| io_error(&tmp, e))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| io_error(dir, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|()| true)
}
