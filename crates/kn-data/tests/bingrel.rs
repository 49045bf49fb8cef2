//! BINGREL: the committed excerpt (always) and the full corpus (when present), plus probes.

mod common;

use kn_data::probe::{head_only_probes, tail_probes};
use kn_data::seed::rng_for;
use kn_data::{fact_probes, Bingrel, FactId, Pararel, PromptStyle, RelationBags, SentencePool};

fn masked() -> PromptStyle {
    PromptStyle::Masked {
        mask_token: "[MASK]".into(),
    }
}

fn fixture(relation: &str) -> RelationBags {
    Bingrel::load_relation(&Bingrel::fixture_dir(), relation, 5).unwrap()
}

#[test]
fn fixture_probes_hide_the_tail() {
    let data = Pararel::load_bundled().unwrap();
    let bags = fixture("P176");
    let fact = data.fact(&FactId::new("P176", 0)).unwrap();
    assert_eq!(
        (fact.subject.as_str(), fact.object.as_str()),
        ("Fiat Multipla", "Fiat")
    );
    let bag = bags.get(0).unwrap();
    let t1 = tail_probes(&bag.th_bags, &fact.subject, &fact.object, &masked());
    assert_eq!(
        t1.probes[0].text,
        "The Fiat Multipla is a compact MPV manufactured by Italian automaker [MASK] since 1998."
    );
    assert!(t1
        .probes
        .iter()
        .all(|p| p.hidden == "Fiat" && p.text.contains("Fiat Multipla")));
    let t1c = tail_probes(
        &bag.th_bags,
        &fact.subject,
        &fact.object,
        &PromptStyle::Causal,
    );
    assert_eq!(
        t1c.probes[0].text,
        "The Fiat Multipla is a compact MPV manufactured by Italian automaker"
    );
    let mut rng = rng_for(1, "x");
    let t2 = head_only_probes(&bag.h_bags, &fact.subject, &masked(), &mut rng);
    assert_eq!(t2.counts.kept, bag.h_bags.len());
    for p in &t2.probes {
        assert_eq!(p.text.matches("[MASK]").count(), 1);
        assert_ne!(p.hidden, "Fiat");
        assert_ne!(p.hidden, "Multipla");
    }
}

#[test]
fn fixture_empty_bag_and_head_equals_tail() {
    let data = Pararel::load_bundled().unwrap();
    let all = vec![fixture("P36"), fixture("P47"), fixture("P176")];
    let pool = SentencePool::new(&all);
    // P47:3 is (Augsburg, Augsburg) with no head+tail sentence.
    let fact = data.fact(&FactId::new("P47", 3)).unwrap();
    assert_eq!(fact.subject, fact.object);
    let probes = fact_probes(fact, all[1].get(3).unwrap(), &pool, &masked(), 0);
    assert_eq!(probes.tail.counts.sentences, 0);
    assert!(probes.random.probes.is_empty(), "T3 is sized like T1");
    assert_eq!(probes.head_only.counts.sentences, 3);
    // Every fixture fact: counts add up, probes are deterministic, T3 avoids the fact's bags.
    for rel in &all {
        for (i, bag) in rel.bags.iter().enumerate() {
            let fact = data.fact(&FactId::new(rel.relation.clone(), i)).unwrap();
            for style in [masked(), PromptStyle::Causal] {
                let p = fact_probes(fact, bag, &pool, &style, 11);
                assert_eq!(p, fact_probes(fact, bag, &pool, &style, 11));
                for set in [&p.tail, &p.head_only, &p.random] {
                    let c = set.counts;
                    assert_eq!(c.sentences, c.kept + c.target_missing + c.no_context);
                    assert_eq!(c.kept, set.probes.len());
                }
                assert_eq!(p.tail.counts.sentences, bag.th_bags.len());
                assert_eq!(p.random.counts.sentences, p.tail.counts.kept);
                if let PromptStyle::Masked { .. } = style {
                    // T3 sentences come from other facts' bags.
                    let others: Vec<&String> = all
                        .iter()
                        .flat_map(|r| {
                            r.bags
                                .iter()
                                .enumerate()
                                .map(move |(j, b)| (r.relation.as_str(), j, b))
                        })
                        .filter(|(r, j, _)| !(*r == rel.relation && *j == i))
                        .flat_map(|(_, _, b)| b.th_bags.iter().chain(&b.h_bags))
                        .collect();
                    for probe in &p.random.probes {
                        let source = probe.text.replacen("[MASK]", &probe.hidden, 1);
                        assert!(others.contains(&&source), "{source}");
                    }
                }
            }
        }
    }
}

#[test]
fn fixture_is_a_prefix_of_the_corpus() {
    let Some(shared) = common::shared_data() else {
        return;
    };
    let dir = shared.join("bingrel");
    let data = Pararel::load_bundled().unwrap();
    for relation in ["P36", "P47", "P176"] {
        let full = Bingrel::load_for(&dir, &data, relation).unwrap();
        let small = fixture(relation);
        for (a, b) in small.bags.iter().zip(&full.bags) {
            assert!(b.th_bags.starts_with(&a.th_bags), "{relation}");
            assert!(b.h_bags.starts_with(&a.h_bags), "{relation}");
        }
    }
}

#[test]
fn full_corpus_is_aligned_with_pararel() {
    let Some(shared) = common::shared_data() else {
        return;
    };
    let dir = shared.join("bingrel");
    let data = Pararel::load_bundled().unwrap();
    let (mut bags, mut th, mut h) = (0, 0, 0);
    let mut all = Vec::new();
    for relation in data.relation_ids() {
        let r = Bingrel::load_for(&dir, &data, &relation).unwrap();
        let (a, b) = r.sentence_counts();
        bags += r.len();
        th += a;
        h += b;
        all.push(r);
    }
    assert_eq!((bags, th, h), (27_738, 210_217, 266_020), "README totals");
    let empty_th = all
        .iter()
        .flat_map(|r| &r.bags)
        .filter(|b| b.th_bags.is_empty())
        .count();
    assert_eq!(empty_th, 1_409);
    // T1 over one relation: most head+tail sentences contain the tail.
    let p36 = all.iter().find(|r| r.relation == "P36").unwrap();
    let mut counts = kn_data::ProbeCounts::default();
    for (fact, bag) in data.facts_of("P36").unwrap().iter().zip(&p36.bags) {
        counts.add(&tail_probes(&bag.th_bags, &fact.subject, &fact.object, &masked()).counts);
    }
    eprintln!("P36 T1 (masked): {counts:?}");
    assert_eq!(counts.sentences, p36.sentence_counts().0);
    assert!(counts.kept * 10 > counts.sentences * 8, "{counts:?}");
}

/// The excerpt the main job ships (`data/bingrel-main`, gzip-compressed) lines up with the
/// bundled PARAREL, holds at most 4 sentences of each kind per bag, and (where the full corpus is
/// at hand) is each bag's first sentences.
#[test]
fn the_main_jobs_compressed_excerpt_lines_up_with_pararel() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/bingrel-main");
    let data = Pararel::load_bundled().unwrap();
    let full_dir = common::shared_data().map(|shared| shared.join("bingrel"));
    for relation in ["P36", "P159", "P176", "P178", "P279", "P407"] {
        assert!(
            !Bingrel::path(&dir, relation).exists(),
            "plain file shadows the .gz"
        );
        let excerpt = Bingrel::load_for(&dir, &data, relation).unwrap();
        let (th, h) = excerpt.sentence_counts();
        assert!(th > 0 && h > 0, "{relation}");
        assert!(excerpt
            .bags
            .iter()
            .all(|b| b.th_bags.len() <= 4 && b.h_bags.len() <= 4));
        if let Some(full_dir) = &full_dir {
            let full = Bingrel::load_for(full_dir, &data, relation).unwrap();
            for (a, b) in excerpt.bags.iter().zip(&full.bags) {
                assert_eq!(a.th_bags[..], b.th_bags[..a.th_bags.len()], "{relation}");
                assert_eq!(a.h_bags[..], b.h_bags[..a.h_bags.len()], "{relation}");
                assert_eq!(a.th_bags.len(), b.th_bags.len().min(4), "{relation}");
            }
        }
    }
}
