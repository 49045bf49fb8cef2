//! Reading small files with a cap on their size, so that a configuration given as `/dev/zero`,
//! a FIFO that never ends or a multi-gigabyte file is refused after reading at most the cap
//! instead of growing memory without bound.

use crate::error::{Result, SchemaError};
use std::io::Read;
use std::path::Path;

/// The most a configuration file (a `--config` TOML, a model's `config.json`, a run's
/// `config.json`) may hold: 4 MiB, far above any real one.
pub const CONFIG_FILE_LIMIT: u64 = 4 << 20;

/// Reads at most `limit` bytes of `path` as UTF-8 text; a longer file is
/// [`SchemaError::TooLarge`], naming it as a `what`.
pub fn read_capped_text(path: &Path, limit: u64, what: &'static str) -> Result<String> {
    let bytes = read_capped(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| SchemaError::BadFile {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 text ({e})"),
    })
}

/// Reads at most `limit` bytes of `path`; a longer file is [`SchemaError::TooLarge`].
pub fn read_capped(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    let io = |source| SchemaError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(SchemaError::TooLarge {
            path: path.to_path_buf(),
            what,
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn an_endless_file_is_refused_after_the_cap() {
        let error = read_capped(Path::new("/dev/zero"), 1 << 16, "configuration").unwrap_err();
        assert!(
            error.to_string().contains("larger than 65536 bytes"),
            "{error}"
        );
    }

    #[test]
    fn files_up_to_the_cap_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_capped_text(&path, 10, "x").unwrap(), "0123456789");
        assert!(read_capped(&path, 9, "x").is_err());
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_capped_text(&path, 10, "x").is_err());
    }
}
