//! Errors of reading and writing run-directory files. Every message names the file and, for
//! line-based files, the 1-based line.

use std::path::PathBuf;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process holds the run directory's lock.
    #[error("{} is in use by {holder}: wait for it to finish, or use another directory", dir.display())]
    Busy {
        /// The run directory.
        dir: PathBuf,
        /// Who holds it (`process PID (COMMAND)`).
        holder: String,
    },
    /// A file is larger than such a file can be.
    #[error("{} is larger than {limit} bytes: not a {what}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What it was expected to be.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// A line of a JSON Lines file is not a valid record.
    #[error("{} line {line}: {reason}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A whole file is not what it should be.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SchemaError>;
