//! Facts, relations, templates and prompts: the data types shared by every loader.
//!
//! A fact is identified everywhere (file names, JSON results, command lines) by its [`FactId`],
//! written `RELATION:INDEX`, e.g. `P36:12` for the 13th pair of relation `P36` in
//! `query_pairs.json` (0-based, in file order). Ids order naturally: `P19 < P36 < P101`, then by
//! index.
//!
//! A [`Template`] holds exactly one `[X]` (the subject) and one `[Y]` (the answer). It becomes a
//! prompt in one of two [`PromptStyle`]s:
//! - [`PromptStyle::Masked`]: `[X]` -> subject, `[Y]` -> the model's mask token; every template
//!   gives a prompt.
//! - [`PromptStyle::Causal`]: only templates whose `[Y]` comes last (optionally followed by `.`,
//!   with any whitespace around it) give a prompt: the text before `[Y]` with `[X]` -> subject
//!   and trailing whitespace stripped. The answer is then the continuation (for most tokenizers
//!   `" " + object`).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// The placeholder for the subject in a template.
pub const SUBJECT_SLOT: &str = "[X]";
/// The placeholder for the object (the answer) in a template.
pub const OBJECT_SLOT: &str = "[Y]";

/// The stable id of a fact: relation id plus 0-based index within the relation.
///
/// Displays and serializes as `RELATION:INDEX` (e.g. `"P36:12"`); parsed back with
/// [`FromStr`] (the last `:` separates the index, so relation ids may contain `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FactId {
    /// The relation id, e.g. `P36`.
    pub relation: String,
    /// The 0-based position of the fact within its relation's list.
    pub index: usize,
}

impl FactId {
    /// Builds an id from its parts.
    pub fn new(relation: impl Into<String>, index: usize) -> Self {
        Self {
            relation: relation.into(),
            index,
        }
    }
}

impl fmt::Display for FactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.relation, self.index)
    }
}

impl FromStr for FactId {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DataError::BadFactId(s.to_string());
        let (relation, index) = s.rsplit_once(':').ok_or_else(bad)?;
        if kn_schema::check_relation_id(relation).is_err()
            || index.is_empty()
            || !index.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let index = index.parse().map_err(|_| bad())?;
        Ok(Self {
            relation: relation.to_string(),
            index,
        })
    }
}

impl TryFrom<String> for FactId {
    type Error = DataError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<FactId> for String {
    fn from(id: FactId) -> String {
        id.to_string()
    }
}

impl PartialOrd for FactId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FactId {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_relations(&self.relation, &other.relation).then(self.index.cmp(&other.index))
    }
}

/// Natural order of relation ids: `P<digits>` ids by number (`P19 < P36 < P101`), before any
/// other id; other ids (user relations) by string. Ties fall back to the plain string order, so
/// the order is total and consistent with equality.
pub fn compare_relations(a: &str, b: &str) -> Ordering {
    fn key(id: &str) -> (u8, u128) {
        match id.strip_prefix('P') {
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                // More than 38 digits cannot be a Wikidata id; treat as a plain string.
                digits.parse::<u128>().map_or((1, 0), |n| (0, n))
            }
            _ => (1, 0),
        }
    }
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

/// The cardinality class of a relation, as given in LAMA's `relations.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RelationType {
    /// `1-1`: each subject has one object and vice versa (e.g. capital).
    #[serde(rename = "1-1")]
    OneToOne,
    /// `N-1`: many subjects share one object (e.g. place of birth).
    #[serde(rename = "N-1")]
    NToOne,
    /// `N-M`: many to many (e.g. shares border with).
    #[serde(rename = "N-M")]
    NToM,
}

impl RelationType {
    /// The notation used in the data files: `1-1`, `N-1` or `N-M`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneToOne => "1-1",
            Self::NToOne => "N-1",
            Self::NToM => "N-M",
        }
    }
}

impl fmt::Display for RelationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RelationType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1-1" => Ok(Self::OneToOne),
            "N-1" => Ok(Self::NToOne),
            "N-M" => Ok(Self::NToM),
            other => Err(format!(
                "unknown relation type {other:?} (expected 1-1, N-1 or N-M)"
            )),
        }
    }
}

/// A relation and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// The relation id, e.g. `P36`.
    pub id: String,
    /// A human-readable name, e.g. `capital` (the id itself for user relations without one).
    pub label: String,
    /// The cardinality class; `None` for user relations that do not give one.
    pub kind: Option<RelationType>,
    /// LAMA's description of the relation, when known.
    pub description: Option<String>,
}

/// One template of a relation: text with exactly one `[X]` and one `[Y]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The 0-based position of the template in its list (file line order, blank lines skipped).
    pub index: usize,
    /// The template text, e.g. `The capital of [X] is [Y] .`.
    pub pattern: String,
}

impl Template {
    /// Checks that `pattern` has exactly one `[X]` and one `[Y]`; the error is the reason.
    pub fn validate(pattern: &str) -> Result<(), String> {
        let x = pattern.matches(SUBJECT_SLOT).count();
        let y = pattern.matches(OBJECT_SLOT).count();
        if x != 1 {
            return Err(format!("needs exactly one {SUBJECT_SLOT}, found {x}"));
        }
        if y != 1 {
            return Err(format!("needs exactly one {OBJECT_SLOT}, found {y}"));
        }
        Ok(())
    }

    /// Splits the pattern at `[Y]`: the text before and after it. `None` if there is no `[Y]`.
    fn split(&self) -> Option<(&str, &str)> {
        self.pattern.split_once(OBJECT_SLOT)
    }

    /// Whether `[Y]` comes last (only whitespace and at most one `.` after it), so that the
    /// template can serve a causal LM.
    pub fn is_causal(&self) -> bool {
        self.split().is_some_and(|(_, after)| ends_prompt(after))
    }

    /// The masked-LM prompt: `[X]` -> `subject`, `[Y]` -> `mask_token`.
    pub fn masked(&self, subject: &str, mask_token: &str) -> String {
        match self.split() {
            Some((before, after)) => {
                let mut text = before.replace(SUBJECT_SLOT, subject);
                text.push_str(mask_token);
                text.push_str(&after.replace(SUBJECT_SLOT, subject));
                text
            }
            None => self.pattern.replace(SUBJECT_SLOT, subject),
        }
    }

    /// The prompt of `subject` in `style` ([`Template::masked`] or [`Template::causal`]).
    pub fn prompt(&self, subject: &str, style: &PromptStyle) -> Option<String> {
        match style {
            PromptStyle::Masked { mask_token } => Some(self.masked(subject, mask_token)),
            PromptStyle::Causal => self.causal(subject),
        }
    }

    /// The causal-LM prompt: the text before `[Y]` with `[X]` -> `subject` and trailing
    /// whitespace stripped; `None` if `[Y]` is not last or nothing precedes it.
    pub fn causal(&self, subject: &str) -> Option<String> {
        let (before, after) = self.split()?;
        if !ends_prompt(after) {
            return None;
        }
        let text = before.replace(SUBJECT_SLOT, subject).trim_end().to_string();
        (!text.is_empty()).then_some(text)
    }
}

/// Whether the text after `[Y]` is empty, or just a full stop, up to whitespace.
fn ends_prompt(after: &str) -> bool {
    let rest = after.trim();
    rest.is_empty() || rest == "."
}

/// How templates become prompts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case")]
pub enum PromptStyle {
    /// Masked LM: every template, `[Y]` replaced by `mask_token` (e.g. `[MASK]`).
    Masked {
        /// The model's mask token, inserted verbatim.
        mask_token: String,
    },
    /// Causal LM: only templates ending in `[Y]`, cut just before it.
    Causal,
}

/// One prompt of one fact, ready for the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// The fact this prompt asks about.
    pub fact: FactId,
    /// The index of the template (or ready prompt) it was made from.
    pub template: usize,
    /// The prompt text.
    pub text: String,
    /// The expected answer: the fact's object, without any leading space.
    pub target: String,
}

/// A (subject, relation, object) fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The stable id; `id.relation` is the relation.
    pub id: FactId,
    /// The subject (head), which fills `[X]`.
    pub subject: String,
    /// The object (tail), the answer that `[Y]` stands for.
    pub object: String,
}

impl Fact {
    /// The relation id of this fact.
    pub fn relation(&self) -> &str {
        &self.id.relation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str) -> Template {
        Template {
            index: 0,
            pattern: p.into(),
        }
    }

    #[test]
    fn fact_ids_round_trip_and_order_naturally() {
        let id: FactId = "P36:12".parse().unwrap();
        assert_eq!(id, FactId::new("P36", 12));
        assert_eq!(id.to_string(), "P36:12");
        assert!(FactId::new("P19", 5) < FactId::new("P36", 0));
        assert!(FactId::new("P36", 2) < FactId::new("P36", 10));
        assert!(FactId::new("P101", 0) > FactId::new("P36", 99));
        assert!(FactId::new("P999", 0) < FactId::new("custom", 0));
        let ns: FactId = "my:rel:3".parse().unwrap();
        assert_eq!(ns.relation, "my:rel");
        for bad in ["P36", "P36:", ":3", "P36:x", "P36:-1", "P36:1.5", ""] {
            assert!(bad.parse::<FactId>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"P36:12\"");
        assert_eq!(serde_json::from_str::<FactId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<FactId>("\"nope\"").is_err());
    }

    #[test]
    fn relation_order_is_total() {
        assert_eq!(compare_relations("P19", "P19"), Ordering::Equal);
        assert_eq!(compare_relations("P019", "P19"), Ordering::Less); // same number, string tiebreak
        assert_eq!(compare_relations("P1376", "P138"), Ordering::Greater);
    }

    #[test]
    fn relation_type_notation() {
        for k in [
            RelationType::OneToOne,
            RelationType::NToOne,
            RelationType::NToM,
        ] {
            assert_eq!(k.as_str().parse::<RelationType>().unwrap(), k);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert!("1-N".parse::<RelationType>().is_err());
    }

    #[test]
    fn masked_prompts_fill_both_slots() {
        assert_eq!(
            t("The capital of [X] is [Y] .").masked("France", "[MASK]"),
            "The capital of France is [MASK] ."
        );
        assert_eq!(
            t("[Y] is the capital of [X].").masked("France", "<mask>"),
            "<mask> is the capital of France."
        );
        // A subject that looks like a slot is inserted verbatim.
        assert_eq!(
            t("[X] is in [Y].").masked("[Y]", "[MASK]"),
            "[Y] is in [MASK]."
        );
    }

    #[test]
    fn causal_prompts_need_y_last() {
        assert_eq!(
            t("The capital of [X] is [Y] .").causal("France").as_deref(),
            Some("The capital of France is")
        );
        assert_eq!(
            t("The capital city of [X] is [Y].")
                .causal("France")
                .as_deref(),
            Some("The capital city of France is")
        );
        assert_eq!(
            t("[X] is located in [Y]").causal("Rome").as_deref(),
            Some("Rome is located in")
        );
        assert_eq!(
            t("[X] is located in [Y]  .  ").causal("Rome").as_deref(),
            Some("Rome is located in")
        );
        assert_eq!(t("[Y] is the capital of [X].").causal("France"), None);
        assert_eq!(t("[X] and [Y] are neighbours .").causal("France"), None);
        assert_eq!(t("[X] in [Y]..").causal("a"), None);
        assert!(t("[X] is [Y].").is_causal());
        assert!(!t("[Y] is [X].").is_causal());
    }

    #[test]
    fn template_validation() {
        assert!(Template::validate("[X] is [Y].").is_ok());
        assert!(Template::validate("[X] is [X] [Y].")
            .unwrap_err()
            .contains("[X]"));
        assert!(Template::validate("[X] is.").unwrap_err().contains("[Y]"));
        assert!(Template::validate("is [Y].").is_err());
    }

    #[test]
    fn prompt_style_serializes_tagged() {
        let s = PromptStyle::Masked {
            mask_token: "[MASK]".into(),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"style":"masked","mask_token":"[MASK]"}"#
        );
        assert_eq!(
            serde_json::to_string(&PromptStyle::Causal).unwrap(),
            r#"{"style":"causal"}"#
        );
    }
}
