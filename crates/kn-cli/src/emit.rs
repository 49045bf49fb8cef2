//! How a subcommand delivers its result: pretty JSON to a file (atomically), one JSON line on
//! stdout with `--json`, or a human table; and the percentages of those tables.

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
    let text =
        serde_json::to_string_pretty(value).map_err(|e| CliError::Internal(e.to_string()))?;
    kn_attribution::write_atomically(path, text.as_bytes())
        .map_err(|e| CliError::Internal(format!("cannot write {}: {e}", path.display())))
}

/// A percentage for tables: `+12.34%`, or `-` when absent.
pub fn pct(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:+.2}%"))
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(pct(Some(-29.034)), "-29.03%");
        assert_eq!(pct(None), "-");
    }
}
