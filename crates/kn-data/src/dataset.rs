//! The in-memory fact collection ([`Dataset`]) and the PARAREL loader ([`Pararel`]).
//!
//! PARAREL, as released with the Knowledge Neurons paper, is a directory holding
//! - `query_pairs.json`: `{ "P36": [["France", "Paris"], ...], ... }`, the facts;
//! - `patterns/<relation>.jsonl`: one `{"pattern": "... [X] ... [Y] ..."}` a line (other fields
//!   are ignored), the templates of each relation;
//! - `relations.jsonl`: LAMA's relation list (`relation`, `label`, `type`, `description`).
//!
//! The repository ships a copy under `data/pararel/` ([`Pararel::bundled_dir`]). Facts get ids
//! `RELATION:INDEX` in file order; relations and facts are kept in natural id order
//! ([`FactId`]'s `Ord`). Relations of `relations.jsonl` without facts are dropped.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{io_error, read_to_string, DataError, Result};
use crate::fact::{
    compare_relations, Fact, FactId, Prompt, PromptStyle, Relation, RelationType, Template,
};
use crate::select::FactSelection;

/// Where the prompts of a fact come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PromptSource {
    /// The fact's own templates (user facts with `"templates"`).
    Templates(Vec<Template>),
    /// Ready prompts: `[X]` already filled in, `[Y]` optional (user facts with `"prompts"`).
    Ready(Vec<String>),
}

/// A collection of facts with their relations and templates: PARAREL ([`Pararel::load`]) or a
/// user fact file ([`crate::UserFacts::load`]).
///
/// Facts are sorted by [`FactId`]; the facts of one relation are contiguous and their indices
/// run from 0 without gaps.
#[derive(Debug, Clone)]
pub struct Dataset {
    relations: Vec<Relation>,
    facts: Vec<Fact>,
    ranges: HashMap<String, Range<usize>>,
    templates: HashMap<String, Vec<Template>>,
    own_prompts: HashMap<FactId, PromptSource>,
}

impl Dataset {
    /// Assembles a dataset. `facts` must hold, per relation, indices `0..n` (any order);
    /// every fact's relation must be in `relations`. Crate-internal: loaders guarantee this.
    pub(crate) fn assemble(
        mut relations: Vec<Relation>,
        mut facts: Vec<Fact>,
        templates: HashMap<String, Vec<Template>>,
        own_prompts: HashMap<FactId, PromptSource>,
    ) -> Self {
        relations.sort_by(|a, b| compare_relations(&a.id, &b.id));
        facts.sort_by(|a, b| a.id.cmp(&b.id));
        let mut ranges: HashMap<String, Range<usize>> = HashMap::new();
        for (i, fact) in facts.iter().enumerate() {
            ranges
                .entry(fact.id.relation.clone())
                .and_modify(|r| r.end = i + 1)
                .or_insert(i..i + 1);
        }
        Self {
            relations,
            facts,
            ranges,
            templates,
            own_prompts,
        }
    }

    /// The relations, in natural id order.
    pub fn relations(&self) -> &[Relation] {
        &self.relations
    }

    /// The relation ids, in natural order.
    pub fn relation_ids(&self) -> Vec<String> {
        self.relations.iter().map(|r| r.id.clone()).collect()
    }

    /// The relation with this id, or [`DataError::UnknownRelation`] listing the valid ones.
    pub fn relation(&self, id: &str) -> Result<&Relation> {
        self.relations
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| self.unknown_relation(id))
    }

    pub(crate) fn unknown_relation(&self, id: &str) -> DataError {
        DataError::UnknownRelation {
            relation: id.to_string(),
            valid: self.relation_ids(),
        }
    }

    /// All facts, sorted by id.
    pub fn facts(&self) -> &[Fact] {
        &self.facts
    }

    /// The facts of one relation (sorted by index), or [`DataError::UnknownRelation`].
    pub fn facts_of(&self, relation: &str) -> Result<&[Fact]> {
        if !self.relations.iter().any(|r| r.id == relation) {
            return Err(self.unknown_relation(relation));
        }
        Ok(self
            .ranges
            .get(relation)
            .and_then(|r| self.facts.get(r.clone()))
            .unwrap_or(&[]))
    }

    /// The fact with this id, if the dataset has it.
    pub fn fact(&self, id: &FactId) -> Option<&Fact> {
        let range = self.ranges.get(&id.relation)?;
        let position = range
            .start
            .checked_add(id.index)
            .filter(|p| range.contains(p))?;
        self.facts.get(position).filter(|fact| fact.id == *id)
    }

    /// The templates shared by the facts of a relation (empty for user relations, whose facts
    /// carry their own).
    pub fn templates(&self, relation: &str) -> &[Template] {
        self.templates.get(relation).map_or(&[], Vec::as_slice)
    }

    /// The number of relation templates in all (318 for PARAREL).
    pub fn template_count(&self) -> usize {
        self.templates.values().map(Vec::len).sum()
    }

    /// The prompts of a fact in the given style, in template order.
    ///
    /// Masked: one per template (`[X]` -> subject, `[Y]` -> mask token). Causal: one per template
    /// whose `[Y]` is last, cut before `[Y]`, trailing whitespace stripped. Ready prompts of user
    /// facts: `[X]`, if present, -> subject; masked style needs a `[Y]` (-> mask token, prompts
    /// without one are left out); causal style uses a prompt without `[Y]` as it is (trimmed
    /// at the end) and one with `[Y]` only if `[Y]` is last.
    pub fn prompts(&self, fact: &Fact, style: &PromptStyle) -> Vec<Prompt> {
        let make = |template: usize, text: String| Prompt {
            fact: fact.id.clone(),
            template,
            text,
            target: fact.object.clone(),
        };
        let from_templates = |templates: &[Template]| -> Vec<Prompt> {
            templates
                .iter()
                .filter_map(|t| {
                    t.prompt(&fact.subject, style)
                        .map(|text| make(t.index, text))
                })
                .collect()
        };
        match self.own_prompts.get(&fact.id) {
            Some(PromptSource::Templates(templates)) => from_templates(templates),
            Some(PromptSource::Ready(ready)) => ready
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    ready_prompt(p, &fact.subject, style).map(|text| make(i, text))
                })
                .collect(),
            None => from_templates(self.templates(fact.relation())),
        }
    }

    /// The number of prompts [`Dataset::prompts`] would return.
    pub fn prompt_count(&self, fact: &Fact, style: &PromptStyle) -> usize {
        match (self.own_prompts.get(&fact.id), style) {
            (Some(PromptSource::Templates(t)), PromptStyle::Masked { .. }) => t.len(),
            (None, PromptStyle::Masked { .. }) => self.templates(fact.relation()).len(),
            _ => self.prompts(fact, style).len(),
        }
    }

    /// Starts a fact selection holding every fact (see [`FactSelection`]).
    pub fn select(&self) -> FactSelection<'_> {
        FactSelection::new(self)
    }
}

/// Turns a ready prompt into prompt text for `style`, or `None` if it cannot serve that style.
fn ready_prompt(prompt: &str, subject: &str, style: &PromptStyle) -> Option<String> {
    let template = Template {
        index: 0,
        pattern: prompt.to_string(),
    };
    match (prompt.contains(crate::fact::OBJECT_SLOT), style) {
        (true, PromptStyle::Masked { mask_token }) => Some(template.masked(subject, mask_token)),
        (true, PromptStyle::Causal) => template.causal(subject),
        (false, PromptStyle::Masked { .. }) => None,
        (false, PromptStyle::Causal) => {
            let text = prompt
                .replace(crate::fact::SUBJECT_SLOT, subject)
                .trim_end()
                .to_string();
            (!text.is_empty()).then_some(text)
        }
    }
}

/// The PARAREL loader.
#[derive(Debug, Clone, Copy)]
pub struct Pararel;

/// One row of `relations.jsonl` (extra fields ignored).
#[derive(Deserialize)]
struct RelationRow {
    relation: String,
    label: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
}

/// One row of `patterns/<relation>.jsonl` (extra fields ignored).
#[derive(Deserialize)]
struct PatternRow {
    pattern: String,
}

impl Pararel {
    /// The copy of PARAREL committed in this repository (`data/pararel`), located from this
    /// crate's source directory at compile time. Only meaningful inside a source checkout.
    pub fn bundled_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("data")
            .join("pararel")
    }

    /// Loads PARAREL from `dir` (see the module docs for the layout).
    ///
    /// Errors: [`DataError::NotFound`] for a missing directory or file, [`DataError::Json`] for
    /// a malformed `query_pairs.json`, [`DataError::Line`] for a bad JSONL line,
    /// [`DataError::BadTemplate`] for a template without exactly one `[X]` and `[Y]`,
    /// [`DataError::NoTemplates`] and [`DataError::MissingRelationMetadata`].
    pub fn load(dir: &Path) -> Result<Dataset> {
        if !dir.is_dir() {
            return Err(DataError::NotFound {
                path: dir.to_path_buf(),
            });
        }
        let pairs_path = dir.join("query_pairs.json");
        let pairs: BTreeMap<String, Vec<(String, String)>> =
            serde_json::from_str(&read_to_string(&pairs_path)?).map_err(|error| {
                DataError::Json {
                    path: pairs_path.clone(),
                    error,
                }
            })?;

        let relations_path = dir.join("relations.jsonl");
        let mut metadata: HashMap<String, Relation> = HashMap::new();
        for (line, row) in jsonl_rows::<RelationRow>(&relations_path)? {
            let kind = row
                .kind
                .parse::<RelationType>()
                .map_err(|message| DataError::Line {
                    path: relations_path.clone(),
                    line,
                    message,
                })?;
            metadata.insert(
                row.relation.clone(),
                Relation {
                    id: row.relation,
                    label: row.label,
                    kind: Some(kind),
                    description: row.description,
                },
            );
        }

        let mut relations = Vec::with_capacity(pairs.len());
        let mut facts = Vec::new();
        let mut templates = HashMap::new();
        for (relation, list) in pairs {
            // The id names patterns/<id>.jsonl: it must not leave the data directory.
            kn_schema::check_relation_id(&relation).map_err(|reason| DataError::BadRelationId {
                path: pairs_path.clone(),
                reason,
            })?;
            let meta =
                metadata
                    .remove(&relation)
                    .ok_or_else(|| DataError::MissingRelationMetadata {
                        relation: relation.clone(),
                        path: relations_path.clone(),
                    })?;
            let pattern_path = dir.join("patterns").join(format!("{relation}.jsonl"));
            let mut list_templates = Vec::new();
            for (line, row) in jsonl_rows::<PatternRow>(&pattern_path)? {
                Template::validate(&row.pattern).map_err(|reason| DataError::BadTemplate {
                    path: pattern_path.clone(),
                    line,
                    pattern: row.pattern.clone(),
                    reason,
                })?;
                list_templates.push(Template {
                    index: list_templates.len(),
                    pattern: row.pattern,
                });
            }
            if list_templates.is_empty() && !list.is_empty() {
                return Err(DataError::NoTemplates {
                    relation,
                    path: pattern_path,
                });
            }
            facts.extend(
                list.into_iter()
                    .enumerate()
                    .map(|(index, (subject, object))| Fact {
                        id: FactId::new(relation.clone(), index),
                        subject,
                        object,
                    }),
            );
            templates.insert(relation.clone(), list_templates);
            relations.push(meta);
        }
        Ok(Dataset::assemble(
            relations,
            facts,
            templates,
            HashMap::new(),
        ))
    }

    /// Loads the committed copy ([`Pararel::bundled_dir`]).
    pub fn load_bundled() -> Result<Dataset> {
        Self::load(&Self::bundled_dir())
    }
}

/// Parses every non-blank line of a JSON Lines file as `T`, with 1-based line numbers.
fn jsonl_rows<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<(usize, T)>> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(line).map_err(|e| DataError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message: crate::user::describe_json_error(&e),
        })?;
        rows.push((i + 1, row));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let relations = vec![
            Relation {
                id: "P36".into(),
                label: "capital".into(),
                kind: Some(RelationType::OneToOne),
                description: None,
            },
            Relation {
                id: "P19".into(),
                label: "born".into(),
                kind: Some(RelationType::NToOne),
                description: None,
            },
        ];
        let facts = vec![
            Fact {
                id: FactId::new("P36", 1),
                subject: "Italy".into(),
                object: "Rome".into(),
            },
            Fact {
                id: FactId::new("P36", 0),
                subject: "France".into(),
                object: "Paris".into(),
            },
            Fact {
                id: FactId::new("P19", 0),
                subject: "Dante".into(),
                object: "Florence".into(),
            },
        ];
        let mut templates = HashMap::new();
        templates.insert(
            "P36".to_string(),
            vec![
                Template {
                    index: 0,
                    pattern: "The capital of [X] is [Y] .".into(),
                },
                Template {
                    index: 1,
                    pattern: "[Y] is the capital of [X].".into(),
                },
            ],
        );
        templates.insert(
            "P19".to_string(),
            vec![Template {
                index: 0,
                pattern: "[X] was born in [Y]".into(),
            }],
        );
        Dataset::assemble(relations, facts, templates, HashMap::new())
    }

    #[test]
    fn facts_are_sorted_and_addressable() {
        let d = tiny();
        let ids: Vec<String> = d.facts().iter().map(|f| f.id.to_string()).collect();
        assert_eq!(ids, ["P19:0", "P36:0", "P36:1"]);
        assert_eq!(d.relation_ids(), ["P19", "P36"]);
        assert_eq!(d.facts_of("P36").unwrap().len(), 2);
        assert_eq!(d.fact(&FactId::new("P36", 1)).unwrap().subject, "Italy");
        assert!(d.fact(&FactId::new("P36", 2)).is_none());
        assert!(d.fact(&FactId::new("P37", 0)).is_none());
        assert!(d.fact(&FactId::new("P19", usize::MAX)).is_none());
        assert!(matches!(
            d.facts_of("P999"),
            Err(DataError::UnknownRelation { .. })
        ));
        assert_eq!(d.template_count(), 3);
    }

    #[test]
    fn prompts_in_both_styles() {
        let d = tiny();
        let france = d.fact(&FactId::new("P36", 0)).unwrap();
        let masked = d.prompts(
            france,
            &PromptStyle::Masked {
                mask_token: "[MASK]".into(),
            },
        );
        assert_eq!(masked.len(), 2);
        assert_eq!(masked[0].text, "The capital of France is [MASK] .");
        assert_eq!(masked[1].text, "[MASK] is the capital of France.");
        assert_eq!(masked[1].template, 1);
        assert_eq!(masked[1].target, "Paris");
        let causal = d.prompts(france, &PromptStyle::Causal);
        assert_eq!(causal.len(), 1);
        assert_eq!(causal[0].text, "The capital of France is");
        assert_eq!(causal[0].template, 0);
        assert_eq!(d.prompt_count(france, &PromptStyle::Causal), 1);
        assert_eq!(
            d.prompt_count(
                france,
                &PromptStyle::Masked {
                    mask_token: "x".into()
                }
            ),
            2
        );
    }

    #[test]
    fn ready_prompts() {
        let m = PromptStyle::Masked {
            mask_token: "[MASK]".into(),
        };
        assert_eq!(
            ready_prompt("Paris is in [Y].", "Paris", &m).as_deref(),
            Some("Paris is in [MASK].")
        );
        assert_eq!(ready_prompt("Paris is in", "Paris", &m), None);
        assert_eq!(
            ready_prompt("Paris is in ", "Paris", &PromptStyle::Causal).as_deref(),
            Some("Paris is in")
        );
        assert_eq!(
            ready_prompt("[X] is in [Y] .", "Paris", &PromptStyle::Causal).as_deref(),
            Some("Paris is in")
        );
        assert_eq!(
            ready_prompt("[Y] is where [X] is", "Paris", &PromptStyle::Causal),
            None
        );
        assert_eq!(ready_prompt("   ", "Paris", &PromptStyle::Causal), None);
    }
}
