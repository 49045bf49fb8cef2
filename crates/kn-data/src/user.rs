//! User fact files: JSON Lines, one fact a line.
//!
//! Each non-blank line is an object with
//! - `"relation"`, `"subject"`, `"object"`: non-empty strings (required);
//! - exactly one of `"templates"` (non-empty list of templates, each with one `[X]` and one
//!   `[Y]`) or `"prompts"` (non-empty list of ready prompts: subject already written out, `[Y]`
//!   marking the answer slot; a prompt without `[Y]` is a causal-LM prompt whose answer follows
//!   the text, see [`crate::Dataset::prompts`]);
//! - optionally `"label"` (a name for the relation) and `"type"` (`1-1`, `N-1` or `N-M`); a
//!   relation given a label or type on several lines must be given the same one each time.
//!
//! Any other field is an error (to catch typos). Errors carry the 1-based line number, e.g.
//! `facts.jsonl: line 7: missing field "object"`. Facts get ids `RELATION:INDEX`, the index
//! counting that relation's lines in file order from 0.
//!
//! ```
//! let text = r#"{"relation": "capital", "subject": "France", "object": "Paris", "templates": ["The capital of [X] is [Y]."]}"#;
//! let data = kn_data::UserFacts::parse(text, "inline.jsonl").unwrap();
//! assert_eq!(data.facts()[0].id.to_string(), "capital:0");
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::dataset::{Dataset, PromptSource};
use crate::error::{read_to_string, DataError, Result};
use crate::fact::{Fact, FactId, Relation, RelationType, Template, OBJECT_SLOT};

/// The loader for user fact files.
#[derive(Debug, Clone, Copy)]
pub struct UserFacts;

/// The fields a line may have.
const KNOWN_FIELDS: [&str; 7] = [
    "relation",
    "subject",
    "object",
    "templates",
    "prompts",
    "label",
    "type",
];

impl UserFacts {
    /// Loads a user fact file (see the module docs for the format).
    pub fn load(path: &Path) -> Result<Dataset> {
        let text = read_to_string(path)?;
        Self::parse(&text, path)
    }

    /// Parses user facts from text; `name` is used in error messages.
    pub fn parse(text: &str, name: impl AsRef<Path>) -> Result<Dataset> {
        let path = name.as_ref().to_path_buf();
        let mut relations: Vec<Relation> = Vec::new();
        // Line on which each relation's label / type was first given, for conflict messages.
        let mut given: HashMap<String, (Option<usize>, Option<usize>)> = HashMap::new();
        let mut facts = Vec::new();
        let mut own = HashMap::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let err = |message: String| DataError::Line {
                path: path.clone(),
                line,
                message,
            };
            let parsed = parse_line(raw).map_err(err)?;
            let relation_pos = match relations.iter().position(|r| r.id == parsed.relation) {
                Some(p) => p,
                None => {
                    relations.push(Relation {
                        id: parsed.relation.clone(),
                        label: parsed.relation.clone(),
                        kind: None,
                        description: None,
                    });
                    relations.len() - 1
                }
            };
            let (label_line, kind_line) = given.entry(parsed.relation.clone()).or_default();
            if let Some(relation) = relations.get_mut(relation_pos) {
                if let Some(label) = parsed.label {
                    match label_line {
                        Some(first) if relation.label != label => {
                            return Err(err(format!(
                                "relation {} was given label {:?} on line {first}, now {label:?}",
                                relation.id, relation.label
                            )))
                        }
                        Some(_) => {}
                        None => {
                            relation.label = label;
                            *label_line = Some(line);
                        }
                    }
                }
                if let Some(kind) = parsed.kind {
                    match (*kind_line, relation.kind) {
                        (Some(first), Some(old)) if old != kind => {
                            return Err(err(format!(
                                "relation {} was given type {old} on line {first}, now {kind}",
                                relation.id
                            )))
                        }
                        (Some(_), _) => {}
                        (None, _) => {
                            relation.kind = Some(kind);
                            *kind_line = Some(line);
                        }
                    }
                }
            }
            let index = counts.entry(parsed.relation.clone()).or_insert(0);
            let id = FactId::new(parsed.relation, *index);
            *index += 1;
            own.insert(id.clone(), parsed.source);
            facts.push(Fact {
                id,
                subject: parsed.subject,
                object: parsed.object,
            });
        }
        Ok(Dataset::assemble(relations, facts, HashMap::new(), own))
    }
}

/// The validated content of one line.
struct ParsedLine {
    relation: String,
    subject: String,
    object: String,
    label: Option<String>,
    kind: Option<RelationType>,
    source: PromptSource,
}

/// Parses and validates one non-blank line; the error is the message without the line number.
fn parse_line(raw: &str) -> std::result::Result<ParsedLine, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| describe_json_error(&e))?;
    let Value::Object(map) = value else {
        return Err("expected a JSON object".to_string());
    };
    if let Some(unknown) = map.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {unknown:?} (expected one of {})",
            KNOWN_FIELDS.join(", ")
        ));
    }
    let relation = required_string(&map, "relation")?;
    kn_schema::check_relation_id(&relation)?;
    let subject = required_string(&map, "subject")?;
    let object = required_string(&map, "object")?;
    let label = optional_string(&map, "label")?;
    let kind = optional_string(&map, "type")?
        .map(|t| t.parse::<RelationType>())
        .transpose()?;
    let source = match (map.get("templates"), map.get("prompts")) {
        (Some(_), Some(_)) => {
            return Err("give either \"templates\" or \"prompts\", not both".to_string())
        }
        (None, None) => return Err("missing field \"templates\" or \"prompts\"".to_string()),
        (Some(value), None) => {
            let list = string_list(value, "templates")?;
            let mut templates = Vec::with_capacity(list.len());
            for (index, pattern) in list.into_iter().enumerate() {
                Template::validate(&pattern)
                    .map_err(|reason| format!("template {index} ({pattern:?}): {reason}"))?;
                templates.push(Template { index, pattern });
            }
            PromptSource::Templates(templates)
        }
        (None, Some(value)) => {
            let list = string_list(value, "prompts")?;
            for (index, prompt) in list.iter().enumerate() {
                if prompt.trim().is_empty() {
                    return Err(format!("prompt {index} is empty"));
                }
                let y = prompt.matches(OBJECT_SLOT).count();
                if y > 1 {
                    return Err(format!(
                        "prompt {index} ({prompt:?}) has {y} {OBJECT_SLOT}; at most one is allowed"
                    ));
                }
            }
            PromptSource::Ready(list)
        }
    };
    Ok(ParsedLine {
        relation,
        subject,
        object,
        label,
        kind,
        source,
    })
}

fn required_string(map: &Map<String, Value>, field: &str) -> std::result::Result<String, String> {
    optional_string(map, field)?.ok_or_else(|| format!("missing field {field:?}"))
}

fn optional_string(
    map: &Map<String, Value>,
    field: &str,
) -> std::result::Result<Option<String>, String> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(format!("field {field:?} must not be empty"))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "field {field:?} must be a string, found {}",
            kind_of(other)
        )),
    }
}

fn string_list(value: &Value, field: &str) -> std::result::Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "field {field:?} must be a list of strings, found {}",
            kind_of(value)
        ));
    };
    if items.is_empty() {
        return Err(format!("field {field:?} must not be empty"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!(
                "field {field:?}: item {i} must be a string, found {}",
                kind_of(other)
            )),
        })
        .collect()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Describes a JSON error of a single line: the parser's message without its "at line 1"
/// position (the caller adds the file's line number), plus the column for syntax errors;
/// serde's backticks around field names become double quotes.
pub(crate) fn describe_json_error(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m)
        .replace('`', "\"");
    if error.is_data() {
        message
    } else {
        format!("invalid JSON at column {}: {message}", error.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact::PromptStyle;

    fn line_error(text: &str) -> (usize, String) {
        match UserFacts::parse(text, "f.jsonl") {
            Err(DataError::Line { line, message, .. }) => (line, message),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    const GOOD: &str = r#"{"relation": "capital", "subject": "France", "object": "Paris", "templates": ["The capital of [X] is [Y] ."]}"#;

    #[test]
    fn parses_templates_and_prompts() {
        let text = format!(
            "{GOOD}\n\n{}\n{}\n",
            r#"{"relation": "capital", "subject": "Italy", "object": "Rome", "prompts": ["Italy's capital is", "[Y] is Italy's capital."], "type": "1-1", "label": "capital city"}"#,
            r#"{"relation": "P19", "subject": "Dante", "object": "Florence", "templates": ["[X] was born in [Y]"]}"#
        );
        let d = UserFacts::parse(&text, "f.jsonl").unwrap();
        let ids: Vec<String> = d.facts().iter().map(|f| f.id.to_string()).collect();
        assert_eq!(ids, ["P19:0", "capital:0", "capital:1"]);
        let capital = d.relation("capital").unwrap();
        assert_eq!(capital.label, "capital city");
        assert_eq!(capital.kind, Some(RelationType::OneToOne));
        let italy = d.fact(&FactId::new("capital", 1)).unwrap();
        let causal = d.prompts(italy, &PromptStyle::Causal);
        assert_eq!(
            causal.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(),
            ["Italy's capital is"]
        );
        let masked = d.prompts(
            italy,
            &PromptStyle::Masked {
                mask_token: "[MASK]".into(),
            },
        );
        assert_eq!(masked.len(), 1);
        assert_eq!(masked[0].text, "[MASK] is Italy's capital.");
        assert_eq!(masked[0].template, 1);
        let france = d.fact(&FactId::new("capital", 0)).unwrap();
        assert_eq!(
            d.prompts(france, &PromptStyle::Causal)[0].text,
            "The capital of France is"
        );
        assert_eq!(d.template_count(), 0);
    }

    #[test]
    fn line_numbered_errors() {
        let missing = r#"{"relation": "r", "subject": "s", "templates": ["[X] [Y]"]}"#;
        assert_eq!(
            line_error(&format!("{GOOD}\n\n{missing}")),
            (3, "missing field \"object\"".into())
        );
        let (line, msg) = line_error(&format!("{GOOD}\n{{\"relation\": ")); // truncated JSON
        assert_eq!(line, 2);
        assert!(msg.starts_with("invalid JSON at column"), "{msg}");
        assert!(line_error("[1, 2]").1.contains("JSON object"));
        let cases = [
            (
                r#"{"relation": "r", "subject": "s", "object": "o"}"#,
                "missing field \"templates\" or \"prompts\"",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "templates": ["[X] [Y]"], "prompts": ["a"]}"#,
                "not both",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "templates": []}"#,
                "must not be empty",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "templates": ["no slots"]}"#,
                "exactly one [X]",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "templates": [3]}"#,
                "item 0 must be a string",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "templates": "[X] [Y]"}"#,
                "list of strings",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "prompts": ["[Y] [Y]"]}"#,
                "at most one",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "prompts": [" "]}"#,
                "prompt 0 is empty",
            ),
            (
                r#"{"relation": "r", "subject": 5, "object": "o", "prompts": ["a"]}"#,
                "\"subject\" must be a string, found a number",
            ),
            (
                r#"{"relation": "", "subject": "s", "object": "o", "prompts": ["a"]}"#,
                "must not be empty",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "prompts": ["a"], "tpye": "1-1"}"#,
                "unknown field \"tpye\"",
            ),
            (
                r#"{"relation": "r", "subject": "s", "object": "o", "prompts": ["a"], "type": "1-N"}"#,
                "unknown relation type",
            ),
        ];
        for (text, want) in cases {
            let (line, msg) = line_error(text);
            assert_eq!(line, 1);
            assert!(msg.contains(want), "{text}: {msg}");
        }
    }

    #[test]
    fn conflicting_relation_metadata() {
        let a =
            r#"{"relation": "r", "subject": "s", "object": "o", "prompts": ["a"], "type": "1-1"}"#;
        let b =
            r#"{"relation": "r", "subject": "t", "object": "o", "prompts": ["a"], "type": "N-M"}"#;
        let (line, msg) = line_error(&format!("{a}\n{b}"));
        assert_eq!(line, 2);
        assert!(msg.contains("on line 1"), "{msg}");
        let c =
            r#"{"relation": "r", "subject": "s", "object": "o", "prompts": ["a"], "label": "x"}"#;
        let d =
            r#"{"relation": "r", "subject": "t", "object": "o", "prompts": ["a"], "label": "y"}"#;
        assert_eq!(line_error(&format!("{c}\n{d}")).0, 2);
        // Same metadata twice, or only once, is fine.
        assert!(UserFacts::parse(&format!("{a}\n{a}\n{c}"), "f").is_ok());
    }

    #[test]
    fn empty_file_is_an_empty_dataset() {
        let d = UserFacts::parse("\n  \n", "f").unwrap();
        assert!(d.facts().is_empty());
        assert!(d.relations().is_empty());
    }
}
