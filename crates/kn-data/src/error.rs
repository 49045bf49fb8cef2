//! The error type of the dataset loaders and fact filters.
//!
//! Every variant names the file (or the relation, or the argument) it is about and says what is
//! wrong in plain words, so that a message printed to a user is enough to find the problem.
//! Paths are kept as [`PathBuf`] so callers can match on them; the messages show them with
//! [`Path::display`](std::path::Path::display).

use std::path::PathBuf;

/// Everything that can go wrong while loading PARAREL, BINGREL or a user fact file, or while
/// selecting facts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or directory the loader needs does not exist.
    #[error("{}: not found", path.display())]
    NotFound {
        /// The missing file or directory.
        path: PathBuf,
    },

    /// A file exists but could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        error: std::io::Error,
    },

    /// A whole-file JSON document is malformed or has the wrong shape.
    #[error("{}: invalid JSON: {error}", path.display())]
    Json {
        /// The file being parsed.
        path: PathBuf,
        /// The parser's error (it carries the line and column).
        #[source]
        error: serde_json::Error,
    },

    /// One line of a JSON Lines file is malformed or has the wrong shape.
    #[error("{}: line {line}: {message}", path.display())]
    Line {
        /// The file being parsed (or a name given to an in-memory source).
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line, e.g. `missing field "object"`.
        message: String,
    },

    /// A template does not contain exactly one `[X]` and one `[Y]`.
    #[error("{}: line {line}: template {pattern:?}: {reason}", path.display())]
    BadTemplate {
        /// The file the template came from.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The offending template.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A relation of `query_pairs.json` has no row in `relations.jsonl`.
    #[error("relation {relation} has facts but no row in {}", path.display())]
    MissingRelationMetadata {
        /// The relation id, e.g. `P36`.
        relation: String,
        /// The `relations.jsonl` file that was searched.
        path: PathBuf,
    },

    /// A relation has facts but its template file holds no template.
    #[error("{}: relation {relation} has no templates", path.display())]
    NoTemplates {
        /// The relation id.
        relation: String,
        /// The template file.
        path: PathBuf,
    },

    /// A relation id that the dataset does not contain.
    #[error("unknown relation {relation:?}; valid relations: {}", valid.join(", "))]
    UnknownRelation {
        /// The id that was asked for.
        relation: String,
        /// Every relation id of the dataset, in natural order.
        valid: Vec<String>,
    },

    /// A relation id that could not safely name a file (see `kn_schema::ids`).
    #[error("{}: {reason}", path.display())]
    BadRelationId {
        /// The file the id came from.
        path: PathBuf,
        /// Which rule it breaks.
        reason: String,
    },

    /// A fact id that is not of the form `RELATION:INDEX`.
    #[error("invalid fact id {0:?}: expected RELATION:INDEX, e.g. P36:12")]
    BadFactId(String),

    /// A shard specification outside `0 <= index < count`.
    #[error("invalid shard {index}/{count}: need count >= 1 and index < count")]
    InvalidShard {
        /// The 0-based shard index.
        index: usize,
        /// The number of shards.
        count: usize,
    },

    /// A BINGREL file whose number of bags differs from the relation's number of facts: the
    /// corpus would be read against the wrong facts.
    #[error(
        "{}: {found} bags but relation {relation} has {expected} facts (misaligned BINGREL corpus)",
        path.display()
    )]
    MisalignedBags {
        /// The BINGREL file.
        path: PathBuf,
        /// The relation id.
        relation: String,
        /// The number of facts the bags should line up with.
        expected: usize,
        /// The number of bags in the file.
        found: usize,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Reads a whole file, mapping a missing file to [`DataError::NotFound`].
pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|error| io_error(path, error))
}

/// Maps an I/O error on `path` to [`DataError::NotFound`] or [`DataError::Io`].
pub(crate) fn io_error(path: &std::path::Path, error: std::io::Error) -> DataError {
    if error.kind() == std::io::ErrorKind::NotFound {
        DataError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        DataError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        let e = DataError::Line {
            path: "facts.jsonl".into(),
            line: 7,
            message: "missing field \"object\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "facts.jsonl: line 7: missing field \"object\""
        );
        let e = DataError::UnknownRelation {
            relation: "P999".into(),
            valid: vec!["P19".into(), "P36".into()],
        };
        assert_eq!(
            e.to_string(),
            "unknown relation \"P999\"; valid relations: P19, P36"
        );
    }

    #[test]
    fn missing_file_is_not_found() {
        let path = std::path::Path::new("/definitely/not/here.json");
        assert!(matches!(
            read_to_string(path),
            Err(DataError::NotFound { .. })
        ));
    }
}
