//! Property tests of the selection, refinement and statistics invariants.

use std::collections::BTreeSet;

use kn_select::*;
use proptest::prelude::*;

/// A random score matrix with 1..4 layers (numbered 0, 2, 4, ...) and 1..12 neurons each.
fn matrix() -> impl Strategy<Value = ScoreMatrix> {
    (1usize..4, 1usize..12).prop_flat_map(|(layers, width)| {
        prop::collection::vec(-1000i32..1000, layers * width).prop_map(move |ints| {
            let data = ints.into_iter().map(|i| i as f32 / 64.0).collect();
            ScoreMatrix::new((0..layers).map(|l| 2 * l).collect(), width, data).unwrap()
        })
    })
}

/// Coarse selections of one fact: 0..12 prompts, neurons from a small universe.
fn coarse_sets() -> impl Strategy<Value = Vec<Vec<Neuron>>> {
    prop::collection::vec(
        prop::collection::vec(
            (0usize..3, 0usize..8).prop_map(|(l, i)| Neuron::new(l, i)),
            0..8,
        ),
        0..12,
    )
}

/// Refined facts over a few relations with random neuron sets.
fn facts() -> impl Strategy<Value = Vec<FactNeurons>> {
    prop::collection::vec(
        (
            0usize..4,
            prop::collection::vec(
                (0usize..3, 0usize..6).prop_map(|(l, i)| Neuron::new(l, i)),
                0..6,
            ),
        ),
        0..25,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (r, neurons))| FactNeurons {
                fact: format!("R{r}:{i}"),
                relation: format!("R{r}"),
                prompts: 5,
                share: 0.7,
                neurons,
            })
            .collect()
    })
}

fn brute_force_sharing(facts: &[FactNeurons]) -> (u64, u64, u64, u64) {
    let sets: Vec<BTreeSet<Neuron>> = facts
        .iter()
        .map(|f| f.neurons.iter().copied().collect())
        .collect();
    let (mut ip, mut is, mut xp, mut xs) = (0, 0, 0, 0);
    for i in 0..facts.len() {
        for j in i + 1..facts.len() {
            let shared = sets[i].intersection(&sets[j]).count() as u64;
            if facts[i].relation == facts[j].relation {
                ip += 1;
                is += shared;
            } else {
                xp += 1;
                xs += shared;
            }
        }
    }
    (ip, is, xp, xs)
}

proptest! {
    #[test]
    fn coarse_output_is_sorted_unique_and_in_range(m in matrix(), k in 0usize..50, q in 0.0f64..=100.0, t in -5.0f32..5.0) {
        for rule in [CoarseRule::default(), CoarseRule::TopK { k }, CoarseRule::Percentile { percentile: q }, CoarseRule::Absolute { threshold: t }] {
            let got = coarse_select(&m, &rule).unwrap();
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(got.iter().all(|n| m.get(*n).is_some()));
            if let CoarseRule::TopK { k } = rule {
                prop_assert_eq!(got.len(), k.min(m.len()));
            }
        }
    }

    #[test]
    fn relative_rule_is_scale_invariant(m in matrix(), exp in -20i32..20, ratio in 0.0f32..1.0) {
        // Powers of two scale exactly, so the comparison is exactly invariant.
        let c = 2f32.powi(exp);
        let rule = CoarseRule::Relative { ratio };
        prop_assert_eq!(coarse_select(&m, &rule).unwrap(), coarse_select(&m.scaled(c).unwrap(), &rule).unwrap());
    }

    #[test]
    fn relative_rule_is_scale_invariant_away_from_ties(m in matrix(), c in 0.001f32..1000.0) {
        let rule = CoarseRule::default();
        let bar = 0.2 * f64::from(m.max());
        // Skip matrices with a score within rounding distance of the threshold.
        prop_assume!(m.data().iter().all(|&s| (f64::from(s) - bar).abs() > 1e-4 * bar.abs().max(1e-3)));
        prop_assert_eq!(coarse_select(&m, &rule).unwrap(), coarse_select(&m.scaled(c).unwrap(), &rule).unwrap());
    }

    #[test]
    fn refinement_is_within_the_union_of_coarse_sets(coarse in coarse_sets(), share in 0.0f64..=1.0, at_least in any::<bool>(), min_count in 0usize..4) {
        let config = RefineConfig {
            share,
            comparison: if at_least { ShareComparison::AtLeast } else { ShareComparison::MoreThan },
            min_prompts: 0,
            min_count,
        };
        let union: BTreeSet<Neuron> = coarse.iter().flatten().copied().collect();
        let fact = refine_fact("R:0", "R", &coarse, &config).unwrap();
        prop_assert!(fact.neurons.iter().all(|n| union.contains(n)));
        prop_assert!(fact.neurons.windows(2).all(|w| w[0] < w[1]));
        // Raising p never adds neurons.
        let higher = RefineConfig { share: (share + 0.1).min(1.0), ..config };
        let fewer = refine_fact("R:0", "R", &coarse, &higher).unwrap();
        prop_assert!(fewer.neurons.iter().all(|n| fact.neurons.contains(n)));
    }

    #[test]
    fn p_zero_keeps_every_neuron_selected_at_least_once(coarse in coarse_sets()) {
        // "More than a fraction 0" = selected by at least one prompt.
        prop_assume!(coarse.len() >= 3);
        let union: Vec<Neuron> = coarse.iter().flatten().copied().collect::<BTreeSet<_>>().into_iter().collect();
        let config = RefineConfig { share: 0.0, ..RefineConfig::default() };
        prop_assert_eq!(refine_fact("R:0", "R", &coarse, &config).unwrap().neurons, union);
    }

    #[test]
    fn strict_threshold_means_more_than_p(coarse in coarse_sets(), share in 0.0f64..=1.0) {
        prop_assume!(coarse.len() >= 3);
        let counts = FactCounts::from_coarse("R:0", "R", &coarse);
        let config = RefineConfig { share, ..RefineConfig::default() };
        let kept = counts.refine(&config).unwrap();
        for c in &counts.counts {
            // c / n > p, up to the documented 1e-9 slack.
            let above = c.prompts as f64 > share * counts.prompts as f64 + 1e-9;
            prop_assert_eq!(kept.contains(&c.neuron), above);
        }
    }

    #[test]
    fn adaptive_share_moves_in_steps_within_bounds(
        facts in prop::collection::vec(coarse_sets(), 1..6),
        start in 1usize..=19,
    ) {
        let counts: Vec<FactCounts> = facts.iter().enumerate().map(|(i, c)| FactCounts::from_coarse(format!("R:{i}"), "R", c)).collect();
        let adaptive = AdaptiveShare::default();
        let config = RefineConfig { share: start as f64 * 0.05, ..RefineConfig::default() };
        let r = refine_relation("R", &counts, &config, Some(&adaptive)).unwrap();
        prop_assert!(!r.trace.is_empty());
        prop_assert!(r.trace.len() <= adaptive.max_steps + 1);
        for w in r.trace.windows(2) {
            prop_assert!(((w[1].share - w[0].share).abs() - 0.05).abs() < 1e-9, "{:?}", r.trace);
        }
        let directions: BTreeSet<bool> = r.trace.windows(2).map(|w| w[1].share > w[0].share).collect();
        prop_assert!(directions.len() <= 1, "moves in one direction only");
        for s in &r.trace {
            prop_assert!(s.share >= 0.05 - 1e-9 && s.share <= 0.95 + 1e-9);
        }
        let last = r.trace.last().unwrap();
        prop_assert_eq!(last.share, r.share);
        prop_assert_eq!(last.mean_neurons, r.mean_neurons);
        prop_assert!(r.facts.iter().all(|f| f.share == r.share));
        if r.stop == AdaptiveStop::InRange {
            prop_assert!((2.0..=5.0).contains(&r.mean_neurons));
        }
        prop_assert_eq!(r.facts.len() + r.skipped.len(), counts.len());
    }

    #[test]
    fn identical_sets_share_their_size(
        set in prop::collection::btree_set((0usize..4, 0usize..50).prop_map(|(l, i)| Neuron::new(l, i)), 0..10),
        per_relation in prop::collection::vec(1usize..6, 1..4),
    ) {
        let neurons: Vec<Neuron> = set.iter().copied().collect();
        let facts: Vec<FactNeurons> = per_relation
            .iter()
            .enumerate()
            .flat_map(|(r, &n)| (0..n).map(move |i| (r, i)))
            .map(|(r, i)| FactNeurons { fact: format!("R{r}:{i}"), relation: format!("R{r}"), prompts: 3, share: 0.7, neurons: neurons.clone() })
            .collect();
        let s = sharing(&facts);
        if let Some(intra) = s.intra.mean {
            prop_assert_eq!(intra, neurons.len() as f64);
        }
        if let Some(inter) = s.inter.mean {
            prop_assert_eq!(inter, neurons.len() as f64);
        }
        let c = neuron_counts(&facts);
        prop_assert_eq!(c.mean, neurons.len() as f64);
        prop_assert_eq!(c.std, 0.0);
    }

    #[test]
    fn exact_sharing_equals_brute_force(facts in facts()) {
        let s = sharing(&facts);
        let (ip, is, xp, xs) = brute_force_sharing(&facts);
        prop_assert_eq!((s.intra.pairs, s.intra.shared, s.inter.pairs, s.inter.shared), (ip, is, xp, xs));
    }

    #[test]
    fn layer_and_count_totals_agree(facts in facts()) {
        let d = layer_distribution(&facts);
        let c = neuron_counts(&facts);
        prop_assert_eq!(d.overall.iter().map(|l| l.count).sum::<usize>(), c.total);
        prop_assert_eq!(d.per_relation.iter().flat_map(|r| &r.layers).map(|l| l.count).sum::<usize>(), c.total);
        prop_assert_eq!(c.histogram.iter().sum::<usize>(), facts.len());
    }

    #[test]
    fn negative_filter_only_removes(facts in facts(), q in 0.0f64..=1.0) {
        let mut rels: Vec<RelationRefinement> = Vec::new();
        for f in &facts {
            match rels.iter_mut().find(|r| r.relation == f.relation) {
                Some(r) => r.facts.push(f.clone()),
                None => rels.push(RelationRefinement {
                    relation: f.relation.clone(), share: 0.7, trace: vec![], stop: AdaptiveStop::Fixed,
                    facts: vec![f.clone()], skipped: vec![], mean_neurons: 0.0,
                }),
            }
        }
        let before = rels.clone();
        let report = subtract_other_relations(&mut rels, &NegativeFilter { max_fraction: q }).unwrap();
        let mut removed = 0;
        for (a, b) in before.iter().zip(&rels) {
            for (fa, fb) in a.facts.iter().zip(&b.facts) {
                prop_assert!(fb.neurons.iter().all(|n| fa.neurons.contains(n)));
                removed += fa.neurons.len() - fb.neurons.len();
            }
        }
        prop_assert_eq!(report.removed, removed);
        let mut unchanged = before.clone();
        prop_assert_eq!(subtract_other_relations(&mut unchanged, &NegativeFilter { max_fraction: 1.0 }).unwrap().removed, 0);
    }

    #[test]
    fn score_matrices_round_trip_through_json(m in matrix()) {
        let json = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(serde_json::from_str::<ScoreMatrix>(&json).unwrap(), m);
    }
}
