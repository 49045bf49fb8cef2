//! PARAREL against the committed copy (always) and the original files (when present).

mod common;

use std::collections::HashMap;

use kn_data::{FactId, Pararel, PromptStyle, RelationType};

fn masked() -> PromptStyle {
    PromptStyle::Masked {
        mask_token: "[MASK]".into(),
    }
}

fn check_counts(data: &kn_data::Dataset) {
    assert_eq!(data.relations().len(), 34);
    assert_eq!(data.facts().len(), 27_738);
    assert_eq!(data.template_count(), 318);
    let per_relation: Vec<usize> = data
        .relations()
        .iter()
        .map(|r| data.templates(&r.id).len())
        .collect();
    assert_eq!(per_relation.iter().min(), Some(&4));
    assert_eq!(per_relation.iter().max(), Some(&20));
    let masked_prompts: usize = data
        .facts()
        .iter()
        .map(|f| data.prompt_count(f, &masked()))
        .sum();
    assert_eq!(masked_prompts, 253_448, "README: 253,448 masked-LM prompts");
    let causal_prompts: usize = data
        .facts()
        .iter()
        .map(|f| data.prompt_count(f, &PromptStyle::Causal))
        .sum();
    assert_eq!(causal_prompts, 160_934);
    let mut kinds: HashMap<RelationType, usize> = HashMap::new();
    for r in data.relations() {
        *kinds
            .entry(r.kind.expect("PARAREL relations have a type"))
            .or_default() += 1;
    }
    assert_eq!(kinds[&RelationType::OneToOne], 2);
    assert_eq!(kinds[&RelationType::NToOne], 19);
    assert_eq!(kinds[&RelationType::NToM], 13);
}

#[test]
fn bundled_copy_has_the_papers_counts() {
    let data = Pararel::load_bundled().unwrap();
    check_counts(&data);
    let ids = data.relation_ids();
    assert_eq!(ids.first().map(String::as_str), Some("P19"));
    assert_eq!(ids.last().map(String::as_str), Some("P1412"));
    assert_eq!(data.relation("P36").unwrap().label, "capital");
    assert_eq!(data.facts_of("P36").unwrap().len(), 703);
    // Ids are positions in query_pairs.json.
    let f = data.fact(&"P36:0".parse::<FactId>().unwrap()).unwrap();
    assert_eq!(
        (f.subject.as_str(), f.object.as_str()),
        ("Azerbaijan", "Baku")
    );
    let f = data.fact(&FactId::new("P101", 695)).unwrap();
    assert_eq!(
        (f.subject.as_str(), f.object.as_str()),
        ("Aleksei N. Leontiev", "psychology")
    );
    assert!(data.fact(&FactId::new("P101", 696)).is_none());
    // Duplicate pairs keep distinct ids.
    let england: Vec<_> = data
        .facts_of("P36")
        .unwrap()
        .iter()
        .filter(|f| f.subject == "England" && f.object == "London")
        .collect();
    assert_eq!(england.len(), 2);
}

#[test]
fn prompts_of_a_real_fact() {
    let data = Pararel::load_bundled().unwrap();
    let fact = data.fact(&FactId::new("P36", 0)).unwrap();
    let masked = data.prompts(fact, &masked());
    assert_eq!(masked.len(), 14);
    assert_eq!(masked[0].text, "The capital of Azerbaijan is [MASK] .");
    assert_eq!(masked[2].text, "[MASK] is the capital of Azerbaijan.");
    assert!(masked
        .iter()
        .all(|p| p.target == "Baku" && p.fact == fact.id));
    let causal = data.prompts(fact, &PromptStyle::Causal);
    assert_eq!(causal.len(), 8);
    assert_eq!(causal[0].text, "The capital of Azerbaijan is");
    assert_eq!(causal[0].template, 0);
    assert_eq!(causal[1].text, "The capital city of Azerbaijan is");
    for p in &causal {
        assert!(!p.text.ends_with(char::is_whitespace));
        assert!(!p.text.contains("[Y]") && !p.text.contains("[X]"));
        assert!(data.templates("P36")[p.template].is_causal());
    }
}

#[test]
fn selection_on_real_data() {
    let data = Pararel::load_bundled().unwrap();
    let sel = data
        .select()
        .relations(&["P36", "P19"])
        .unwrap()
        .sample_per_relation(25, 7);
    assert_eq!(sel.len(), 50);
    let again = data
        .select()
        .relations(&["P19", "P36"])
        .unwrap()
        .sample_per_relation(25, 7);
    assert_eq!(sel.ids(), again.ids());
    // Pinned: the sample must not change across platforms or releases unnoticed.
    let p36: Vec<String> = data
        .select()
        .relations(&["P36"])
        .unwrap()
        .sample_per_relation(5, 42)
        .ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(p36, PINNED_P36_SEED42);
    // Shards of the full dataset cover every fact once.
    let mut seen: Vec<FactId> = (0..7)
        .flat_map(|i| data.select().shard(i, 7).unwrap().ids())
        .collect();
    seen.sort();
    assert_eq!(seen, data.select().ids());
    match data.select().relations(&["P36", "P17"]) {
        Err(kn_data::DataError::UnknownRelation { relation, valid }) => {
            assert_eq!(relation, "P17");
            assert_eq!(valid.len(), 34);
        }
        other => panic!("{other:?}"),
    }
}

const PINNED_P36_SEED42: [&str; 5] = ["P36:496", "P36:497", "P36:528", "P36:616", "P36:625"];

#[test]
fn bundled_copy_matches_the_original() {
    let Some(shared) = common::shared_data() else {
        return;
    };
    let original = shared.join("pararel");
    let bundled = Pararel::bundled_dir();
    let mut files = vec![
        "query_pairs.json".to_string(),
        "relations.jsonl".to_string(),
        "LICENSE".to_string(),
    ];
    for entry in std::fs::read_dir(original.join("patterns")).unwrap() {
        files.push(format!(
            "patterns/{}",
            entry.unwrap().file_name().to_string_lossy()
        ));
    }
    assert_eq!(files.len(), 3 + 34);
    for f in &files {
        let a = std::fs::read(original.join(f)).unwrap();
        let b = std::fs::read(bundled.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(a == b, "{f} differs from the original");
    }
    let data = Pararel::load(&original).unwrap();
    check_counts(&data);
}
