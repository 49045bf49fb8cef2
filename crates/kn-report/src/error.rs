//! The error type of report building: every failure caused by a file names that file.

use std::path::PathBuf;

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A required input (config.json, neurons.jsonl) is absent.
    #[error("{path} is missing: {hint}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What writes it.
        hint: &'static str,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read`, `write` or `create`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file does not parse into the expected layout.
    #[error("{path} is not a valid {what}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the file should be (e.g. "kn suppress report").
        what: &'static str,
        /// The parse error (with line and column).
        source: serde_json::Error,
    },
    /// A line of neurons.jsonl is not a fact record (or repeats a fact, or files it under
    /// another relation).
    #[error("{path} line {line}: {reason}")]
    JsonLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A file parses but its content cannot be used (empty run, duplicate fact, wrong shape).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `.npy` scores file is malformed or of an unsupported kind.
    #[error("{path}: {source}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: crate::npy::NpyError,
    },
    /// The fact asked for the heatmap is not in the run.
    #[error("fact {fact:?} is not in {path}")]
    UnknownFact {
        /// The fact id asked for.
        fact: String,
        /// The neurons.jsonl searched.
        path: PathBuf,
    },
    /// The fact asked for the heatmap has no scores file.
    #[error(
        "fact {fact} has no attribution scores: {path} does not exist (kn discover writes it)"
    )]
    NoScores {
        /// The fact id.
        fact: String,
        /// The scores file expected.
        path: PathBuf,
    },
    /// A figure could not be drawn.
    #[error("cannot draw the {figure} figure: {reason}")]
    Figure {
        /// The figure's name.
        figure: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An option of [`crate::ReportOptions`] is unusable.
    #[error("invalid report option: {0}")]
    Option(String),
}

impl ReportError {
    /// The file the error is about, when it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ReportError::Missing { path, .. }
            | ReportError::Io { path, .. }
            | ReportError::Json { path, .. }
            | ReportError::JsonLine { path, .. }
            | ReportError::Invalid { path, .. }
            | ReportError::Npy { path, .. }
            | ReportError::UnknownFact { path, .. }
            | ReportError::NoScores { path, .. } => Some(path),
            ReportError::Figure { .. } | ReportError::Option(_) => None,
        }
    }
}

impl From<crate::npy::ReadNpyError> for ReportError {
    fn from(error: crate::npy::ReadNpyError) -> Self {
        match error {
            crate::npy::ReadNpyError::Io { path, source } => ReportError::Io {
                action: "read",
                path,
                source,
            },
            crate::npy::ReadNpyError::Npy { path, source } => ReportError::Npy { path, source },
        }
    }
}
