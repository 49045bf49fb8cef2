//! Property tests: ids, sharding, sampling, tail search and parsers never panic.

use std::collections::BTreeMap;

use kn_data::probe::{find_tail, hide};
use kn_data::{FactId, PromptStyle, Template, UserFacts};
use proptest::prelude::*;

/// A user dataset with the given number of facts per relation `R0`, `R1`, ...
fn dataset(sizes: &[usize]) -> kn_data::Dataset {
    let mut text = String::new();
    for (r, &n) in sizes.iter().enumerate() {
        for i in 0..n {
            text.push_str(&format!(
                "{{\"relation\": \"R{r}\", \"subject\": \"s{i}\", \"object\": \"o{i}\", \"templates\": [\"[X] is [Y]\"]}}\n"
            ));
        }
    }
    UserFacts::parse(&text, "generated").unwrap()
}

proptest! {
    #[test]
    fn fact_ids_round_trip(relation in "[A-Za-z0-9_:-][^\\s/\\\\\\pC]{0,11}", index in any::<usize>()) {
        let id = FactId::new(relation, index);
        let parsed: FactId = id.to_string().parse().unwrap();
        prop_assert_eq!(&parsed, &id);
        let json = serde_json::to_string(&id).unwrap();
        prop_assert_eq!(serde_json::from_str::<FactId>(&json).unwrap(), id);
    }

    /// Ids whose relation could leave a directory (a separator, a leading dot, a control
    /// character) do not parse.
    #[test]
    fn path_like_relations_do_not_parse(
        prefix in "[a-z]{0,3}",
        bad in prop::sample::select(vec!["/", "\\", "\u{0}", "\n", "\u{1b}"]),
        index in any::<usize>(),
    ) {
        let id = format!("{prefix}{bad}x:{index}");
        prop_assert!(id.parse::<FactId>().is_err());
        let hidden = format!(".{prefix}:{index}");
        prop_assert!(hidden.parse::<FactId>().is_err());
    }

    #[test]
    fn shards_cover_every_fact_once(sizes in prop::collection::vec(0usize..30, 1..5), count in 1usize..12) {
        let data = dataset(&sizes);
        let all = data.select().ids();
        let mut seen = Vec::new();
        for index in 0..count {
            seen.extend(data.select().shard(index, count).unwrap().ids());
        }
        seen.sort();
        prop_assert_eq!(seen, all);
    }

    #[test]
    fn sampling_takes_min_n_size_per_relation(sizes in prop::collection::vec(0usize..30, 1..5), n in 0usize..35, seed in any::<u64>()) {
        let data = dataset(&sizes);
        let sample = data.select().sample_per_relation(n, seed).ids();
        prop_assert_eq!(&sample, &data.select().sample_per_relation(n, seed).ids());
        prop_assert!(sample.windows(2).all(|w| w[0] < w[1]));
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for id in &sample {
            prop_assert!(data.fact(id).is_some());
            *per.entry(id.relation.clone()).or_default() += 1;
        }
        for (r, &size) in sizes.iter().enumerate() {
            prop_assert_eq!(per.get(&format!("R{r}")).copied().unwrap_or(0), n.min(size));
        }
    }

    #[test]
    fn tail_between_spaces_is_found(prefix in "[a-z ]{0,20}", tail in "[A-Za-z][a-z]{0,8}", suffix in "[a-z .,]{0,20}") {
        let sentence = format!("{prefix} {tail} {suffix}");
        let m = find_tail(&sentence, &tail, None).unwrap();
        prop_assert!(sentence[m.start..m.end].to_lowercase() == tail.to_lowercase());
        // The first bounded occurrence: nothing bounded before it matches exactly.
        if m.exact_case {
            prop_assert!(m.start <= prefix.len() + 1);
        }
    }

    #[test]
    fn tail_search_never_panics_and_matches(sentence in "\\PC{0,40}", tail in "\\PC{0,6}", head in proptest::option::of("\\PC{0,6}")) {
        if let Some(m) = find_tail(&sentence, &tail, head.as_deref()) {
            let found = &sentence[m.start..m.end];
            if m.exact_case {
                prop_assert_eq!(found, tail.as_str());
            } else {
                prop_assert_eq!(found.chars().count(), tail.chars().count());
            }
            let masked = hide(&sentence, m.start, m.end, &PromptStyle::Masked { mask_token: "<m>".into() }).unwrap();
            prop_assert_eq!(masked, format!("{}<m>{}", &sentence[..m.start], &sentence[m.end..]));
            if let Some(cut) = hide(&sentence, m.start, m.end, &PromptStyle::Causal) {
                prop_assert!(sentence.starts_with(&cut));
                prop_assert!(!cut.is_empty() && !cut.ends_with(char::is_whitespace));
            }
        }
    }

    #[test]
    fn user_fact_parser_never_panics(text in "\\PC{0,200}") {
        let _ = UserFacts::parse(&text, "fuzz");
    }

    #[test]
    fn user_fact_parser_survives_json_mutations(
        relation in "\\PC{0,5}", subject in "\\PC{0,5}", object in "\\PC{0,5}",
        templates in prop::collection::vec("\\PC{0,12}", 0..3),
        cut in 0usize..200,
    ) {
        let line = serde_json::json!({"relation": relation, "subject": subject, "object": object, "templates": templates}).to_string();
        let _ = UserFacts::parse(&line, "fuzz");
        let truncated: String = line.chars().take(cut).collect();
        let _ = UserFacts::parse(&truncated, "fuzz");
    }

    #[test]
    fn templates_fill_slots(before in "[^\\[\\]]{0,10}", middle in "[^\\[\\]]{0,10}", subject in "\\PC{0,8}") {
        let t = Template { index: 0, pattern: format!("{before}[X]{middle}[Y]") };
        prop_assert!(Template::validate(&t.pattern).is_ok());
        let masked = t.masked(&subject, "[MASK]");
        prop_assert_eq!(masked, format!("{before}{subject}{middle}[MASK]"));
        let causal = t.causal(&subject);
        let expected = format!("{before}{subject}{middle}").trim_end().to_string();
        prop_assert_eq!(causal, (!expected.is_empty()).then_some(expected));
    }
}
