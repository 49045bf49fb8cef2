//! Reading a JSON file as the type its writer serialized, refusing files that lack any field
//! the type writes ([`from_json_complete`]).
//!
//! serde reads a missing `Option` field as `None`, so a renamed or dropped field would come
//! back as "no value" and show as "-" in a report. Here the parsed value is serialized again
//! and every key it writes must be in the file (objects key by key, arrays element by element);
//! the only exceptions are the fields later versions added ([`ADDED_FIELDS`], each declared
//! `#[serde(default)]` with what older files mean).

use serde::de::{DeserializeOwned, Error as _};
use serde::Serialize;
use serde_json::Value;

/// Fields files of earlier versions may lack: `kn_version` (reports), `dtype` (models and
/// runs, f32 before it was recorded), `method` (runs, ig before it was recorded),
/// `max_positions` and `source` (models in patches written before patches recorded them),
/// `checks` (edit and erase reports before the edit checks), `random_checks` (erase reports
/// before them).
pub const ADDED_FIELDS: &[&str] = &[
    "kn_version",
    "dtype",
    "method",
    "max_positions",
    "source",
    "checks",
    "random_checks",
];

/// `text` parsed as `T`; an error (serde_json's, naming the field's path) when the JSON does
/// not parse as `T` or lacks a field `T` writes.
pub fn from_json_complete<T: Serialize + DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    let found: Value = serde_json::from_str(text)?;
    let parsed: T = serde_json::from_value(found.clone())?;
    let written = serde_json::to_value(&parsed)?;
    match first_missing(&written, &found, "") {
        Some(path) => Err(serde_json::Error::custom(format!(
            "missing field `{path}` (renamed, or written by another version)"
        ))),
        None => Ok(parsed),
    }
}

/// The path of the first key `written` has that `found` lacks, if any.
fn first_missing(written: &Value, found: &Value, at: &str) -> Option<String> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match (written, found) {
        (Value::Object(written), Value::Object(found)) => {
            written
                .iter()
                .find_map(|(key, value)| match found.get(key) {
                    Some(inner) => first_missing(value, inner, &join(key)),
                    None if ADDED_FIELDS.contains(&key.as_str()) => None,
                    None => Some(join(key)),
                })
        }
        (Value::Array(written), Value::Array(found)) => written
            .iter()
            .zip(found)
            .enumerate()
            .find_map(|(i, (w, f))| first_missing(w, f, &join(&i.to_string()))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        mean: Option<f64>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Outer {
        groups: Vec<Inner>,
        #[serde(default)]
        kn_version: String,
    }

    #[test]
    fn complete_files_read_and_missing_options_are_refused() {
        let read: Outer =
            from_json_complete(r#"{"groups": [{"mean": null}, {"mean": 1.0}]}"#).unwrap();
        assert_eq!(read.groups[1].mean, Some(1.0));
        let error = from_json_complete::<Outer>(r#"{"groups": [{"mean": 1}, {"average": 2}]}"#)
            .unwrap_err();
        assert!(error.to_string().contains("`groups.1.mean`"), "{error}");
        assert!(from_json_complete::<Outer>("[1]").is_err());
    }
}
