//! How a subcommand delivers its result: pretty JSON to a file (atomically), one JSON line on
//! stdout with `--json`, or a human table (kn-report's `terminal` tables).

use crate::exit::CliError;
use serde::Serialize;
use std::path::Path;

/// Serializes `value` as one line of JSON.
pub fn to_json<T: Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string(value).map_err(|e| CliError::Internal(e.to_string()))
}

/// Delivers a subcommand's result: pretty JSON to `out` (atomically) when given, then one JSON
/// line on stdout with `json`, or the human table otherwise.
pub fn emit<T: Serialize>(
    value: &T,
    json: bool,
    out: Option<&Path>,
    table: impl FnOnce() -> String,
) -> Result<(), CliError> {
    if let Some(path) = out {
        write_json(path, value)?;
    }
    if json {
        println!("{}", to_json(value)?);
    } else {
        print!("{}", crate::text::printable_lines(&table()));
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path` (atomically).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    kn_schema::write_json_atomically(path, value)
        .map_err(|e| CliError::Internal(format!("cannot write {}: {e}", path.display())))
}
