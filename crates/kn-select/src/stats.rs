//! Statistics of knowledge neurons (paper §4.2, Figure 3 and the "shared neurons" figures).
//!
//! All functions take refined facts ([`FactNeurons`]); a fact's neurons are treated as a set
//! (duplicates ignored).
//!
//! - [`neuron_counts`]: neurons per fact: mean, population standard deviation (divides by the
//!   number of facts), min, max, histogram (`histogram[k]` = facts with exactly `k` neurons;
//!   [`CountStats::facts_without_neurons`] is `histogram[0]`).
//! - [`layer_distribution`]: knowledge neurons per layer, overall and per relation, with
//!   fractions (the paper's Figure 3).
//! - [`sharing`]: the mean number of neurons shared by two facts,
//!   `mean |N(f) ∩ N(g)|` over all unordered pairs `{f, g}` of distinct facts of the *same*
//!   relation ("intra", 1.23 on BERT in the paper), and over all unordered pairs of facts of
//!   *different* relations ("inter", 0.09). Computed exactly for any size through
//!   `Σ_pairs |N(f) ∩ N(g)| = Σ_neurons C(c_n, 2)` (`c_n` = facts having neuron `n`), per
//!   relation in parallel, so no sampling is needed.
//! - [`sharing_sampled`]: the same two means estimated from uniformly drawn pairs (with a seed),
//!   to cross-check or for very large inputs.
//! - [`paper_inter_sampled`]: the authors' estimator of "inter" (`2_analyze_kn.py`): for every
//!   fact, 100 draws of a uniformly chosen *other relation* and a uniform fact of it. It weights
//!   relations equally rather than pairs, so it can differ from the exact pair mean.
//!
//! Seeded sampling uses ChaCha8 with one stream per chunk (or per fact), so results do not
//! depend on the number of threads.

pub use kn_schema::report::discovery::{
    CountStats, LayerCount, LayerDistribution, PairMean, RelationLayers, SharingStats, Summary,
};
use std::collections::{BTreeMap, HashMap};

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::neuron::Neuron;
use crate::refine::{compare_relations, FactNeurons};

/// All statistics of `facts` (exact sharing).
pub fn summarize(facts: &[FactNeurons]) -> Summary {
    let relations = group(facts).len();
    Summary {
        facts: facts.len(),
        relations,
        neurons_per_fact: neuron_counts(facts),
        layers: layer_distribution(facts),
        sharing: sharing(facts),
    }
}

/// A fact's neurons as a sorted set.
fn set_of(f: &FactNeurons) -> Vec<Neuron> {
    let mut s = f.neurons.clone();
    s.sort_unstable();
    s.dedup();
    s
}

/// Facts' neuron sets grouped by relation, relations in natural order.
fn group(facts: &[FactNeurons]) -> Vec<(String, Vec<Vec<Neuron>>)> {
    let mut map: HashMap<&str, Vec<Vec<Neuron>>> = HashMap::new();
    for f in facts {
        map.entry(f.relation.as_str()).or_default().push(set_of(f));
    }
    let mut groups: Vec<(String, Vec<Vec<Neuron>>)> =
        map.into_iter().map(|(r, s)| (r.to_string(), s)).collect();
    groups.sort_by(|a, b| compare_relations(&a.0, &b.0));
    groups
}

/// Neurons per fact (see the module docs).
pub fn neuron_counts(facts: &[FactNeurons]) -> CountStats {
    let sizes: Vec<usize> = facts.iter().map(|f| set_of(f).len()).collect();
    let n = sizes.len();
    let total: usize = sizes.iter().sum();
    let max = sizes.iter().copied().max().unwrap_or(0);
    let min = sizes.iter().copied().min().unwrap_or(0);
    let mean = if n == 0 { 0.0 } else { total as f64 / n as f64 };
    let var = if n == 0 {
        0.0
    } else {
        sizes
            .iter()
            .map(|&s| (s as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64
    };
    let mut histogram = vec![0; max + 1];
    for s in sizes {
        if let Some(h) = histogram.get_mut(s) {
            *h += 1;
        }
    }
    CountStats {
        facts: n,
        total,
        mean,
        std: var.sqrt(),
        min,
        max,
        histogram,
    }
}

fn layer_counts<'a>(sets: impl Iterator<Item = &'a Vec<Neuron>>) -> Vec<LayerCount> {
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for set in sets {
        for n in set {
            *counts.entry(n.layer).or_default() += 1;
        }
    }
    let total: usize = counts.values().sum();
    counts
        .into_iter()
        .map(|(layer, count)| LayerCount {
            layer,
            count,
            fraction: if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            },
        })
        .collect()
}

/// Knowledge neurons per layer (see the module docs).
pub fn layer_distribution(facts: &[FactNeurons]) -> LayerDistribution {
    let groups = group(facts);
    let per_relation = groups
        .par_iter()
        .map(|(relation, sets)| RelationLayers {
            relation: relation.clone(),
            layers: layer_counts(sets.iter()),
        })
        .collect();
    let overall = layer_counts(groups.iter().flat_map(|(_, sets)| sets.iter()));
    LayerDistribution {
        overall,
        per_relation,
    }
}

fn pairs_of(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

fn neuron_frequencies<'a>(sets: impl Iterator<Item = &'a Vec<Neuron>>) -> HashMap<Neuron, u64> {
    let mut c = HashMap::new();
    for set in sets {
        for n in set {
            *c.entry(*n).or_insert(0) += 1;
        }
    }
    c
}

/// Exact intra- and inter-relation sharing (see the module docs).
pub fn sharing(facts: &[FactNeurons]) -> SharingStats {
    let groups = group(facts);
    let per_relation: Vec<HashMap<Neuron, u64>> = groups
        .par_iter()
        .map(|(_, sets)| neuron_frequencies(sets.iter()))
        .collect();
    let intra_shared: u64 = per_relation
        .iter()
        .map(|c| c.values().map(|&k| pairs_of(k)).sum::<u64>())
        .sum();
    let intra_pairs: u64 = groups.iter().map(|(_, s)| pairs_of(s.len() as u64)).sum();
    let mut global: HashMap<Neuron, u64> = HashMap::new();
    for c in &per_relation {
        for (n, k) in c {
            *global.entry(*n).or_insert(0) += k;
        }
    }
    let all_shared: u64 = global.values().map(|&k| pairs_of(k)).sum();
    let all_pairs = pairs_of(facts.len() as u64);
    SharingStats {
        intra: PairMean::new(intra_pairs, intra_shared),
        inter: PairMean::new(all_pairs - intra_pairs, all_shared - intra_shared),
    }
}

/// The size of the intersection of two sorted sets.
pub fn intersection_size(a: &[Neuron], b: &[Neuron]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Pairs drawn per chunk (each chunk has its own ChaCha8 stream).
const CHUNK: usize = 4096;

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        rng.gen_range(0..n)
    }
}

/// Intra and inter sharing estimated from `pairs` uniformly drawn pairs each (with
/// replacement). Deterministic for a given `seed`, whatever the thread count.
pub fn sharing_sampled(facts: &[FactNeurons], pairs: usize, seed: u64) -> SharingStats {
    let groups = group(facts);
    let flat: Vec<(usize, &Vec<Neuron>)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, sets))| sets.iter().map(move |s| (g, s)))
        .collect();
    let weights: Vec<u64> = groups
        .iter()
        .map(|(_, s)| pairs_of(s.len() as u64))
        .collect();
    let intra_total: u64 = weights.iter().sum();
    let inter_total = pairs_of(flat.len() as u64) - intra_total;
    let chunks = pairs.div_ceil(CHUNK);
    let take = |c: usize| CHUNK.min(pairs - c * CHUNK);

    let intra_shared: u64 = if intra_total == 0 {
        0
    } else {
        (0..chunks)
            .into_par_iter()
            .map(|c| {
                let mut r = rng(seed, 2 * c as u64);
                let mut sum = 0u64;
                for _ in 0..take(c) {
                    let mut u = below(&mut r, intra_total);
                    let mut g = 0;
                    while let Some(&w) = weights.get(g) {
                        if u < w {
                            break;
                        }
                        u -= w;
                        g += 1;
                    }
                    let Some((_, sets)) = groups.get(g) else {
                        continue;
                    };
                    let n = sets.len() as u64;
                    let i = below(&mut r, n);
                    let mut j = below(&mut r, n - 1);
                    if j >= i {
                        j += 1;
                    }
                    if let (Some(a), Some(b)) = (sets.get(i as usize), sets.get(j as usize)) {
                        sum += intersection_size(a, b) as u64;
                    }
                }
                sum
            })
            .sum()
    };
    let inter_shared: u64 = if inter_total == 0 {
        0
    } else {
        (0..chunks)
            .into_par_iter()
            .map(|c| {
                let mut r = rng(seed, 2 * c as u64 + 1);
                let mut sum = 0u64;
                let n = flat.len() as u64;
                let mut drawn = 0;
                while drawn < take(c) {
                    // Uniform over unordered pairs of distinct facts, rejecting same-relation
                    // pairs: uniform over inter pairs. inter_total > 0 guarantees termination
                    // with probability 1; the expected number of draws is n^2 / (2 inter_total).
                    let i = below(&mut r, n);
                    let j = below(&mut r, n);
                    let (Some(a), Some(b)) = (flat.get(i as usize), flat.get(j as usize)) else {
                        continue;
                    };
                    if a.0 == b.0 {
                        continue;
                    }
                    sum += intersection_size(a.1, b.1) as u64;
                    drawn += 1;
                }
                sum
            })
            .sum()
    };
    let drawn = |total: u64| if total == 0 { 0 } else { pairs as u64 };
    SharingStats {
        intra: PairMean::new(drawn(intra_total), intra_shared),
        inter: PairMean::new(drawn(inter_total), inter_shared),
    }
}

/// The authors' "inter" estimator (see the module docs): for every fact, `per_fact` draws (the
/// authors use 100) of another relation (uniform over relations with facts) and a uniform fact
/// of it. Each fact has its own ChaCha8 stream.
pub fn paper_inter_sampled(facts: &[FactNeurons], per_fact: usize, seed: u64) -> PairMean {
    let groups = group(facts);
    if groups.len() < 2 {
        return PairMean::new(0, 0);
    }
    let flat: Vec<(usize, &Vec<Neuron>)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, sets))| sets.iter().map(move |s| (g, s)))
        .collect();
    let k = groups.len() as u64;
    let shared: u64 = flat
        .par_iter()
        .enumerate()
        .map(|(i, &(g, set))| {
            let mut r = rng(seed, i as u64);
            let mut sum = 0u64;
            for _ in 0..per_fact {
                // A uniform relation other than g.
                let mut other = below(&mut r, k - 1) as usize;
                if other >= g {
                    other += 1;
                }
                let Some((_, sets)) = groups.get(other) else {
                    continue;
                };
                let j = below(&mut r, sets.len() as u64) as usize;
                if let Some(b) = sets.get(j) {
                    sum += intersection_size(set, b) as u64;
                }
            }
            sum
        })
        .sum();
    PairMean::new((flat.len() * per_fact) as u64, shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, relation: &str, neurons: &[(usize, usize)]) -> FactNeurons {
        FactNeurons {
            fact: id.into(),
            relation: relation.into(),
            prompts: 5,
            share: 0.7,
            neurons: neurons.iter().map(|&(l, i)| Neuron::new(l, i)).collect(),
        }
    }

    fn sample() -> Vec<FactNeurons> {
        vec![
            f("a:0", "a", &[(1, 1), (2, 2), (3, 3)]),
            f("a:1", "a", &[(1, 1), (2, 2)]),
            f("a:2", "a", &[(9, 9)]),
            f("b:0", "b", &[(1, 1)]),
            f("b:1", "b", &[]),
        ]
    }

    #[test]
    fn counts_and_histogram() {
        let c = neuron_counts(&sample());
        assert_eq!((c.facts, c.total, c.min, c.max), (5, 7, 0, 3));
        assert!((c.mean - 1.4).abs() < 1e-12);
        // sizes 3,2,1,1,0: var = (2.56+0.36+0.16+0.16+1.96)/5 = 1.04
        assert!((c.std - 1.04f64.sqrt()).abs() < 1e-12);
        assert_eq!(c.histogram, [1, 2, 1, 1]);
        assert_eq!(c.facts_without_neurons(), 1);
        let empty = neuron_counts(&[]);
        assert_eq!(
            (empty.mean, empty.std, empty.histogram.len()),
            (0.0, 0.0, 1)
        );
        assert_eq!(empty.facts_without_neurons(), 0);
        assert_eq!(
            neuron_counts(&sample()[..2]).facts_without_neurons(),
            0,
            "no fact of relation a lacks neurons"
        );
        // Duplicates count once.
        assert_eq!(neuron_counts(&[f("x:0", "x", &[(1, 1), (1, 1)])]).total, 1);
    }

    #[test]
    fn layers_overall_and_per_relation() {
        let d = layer_distribution(&sample());
        assert_eq!(
            d.overall
                .iter()
                .map(|l| (l.layer, l.count))
                .collect::<Vec<_>>(),
            [(1, 3), (2, 2), (3, 1), (9, 1)]
        );
        assert!((d.overall.iter().map(|l| l.fraction).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(d.per_relation.len(), 2);
        assert_eq!(d.per_relation[1].relation, "b");
        assert_eq!(
            d.per_relation[1].layers,
            [LayerCount {
                layer: 1,
                count: 1,
                fraction: 1.0
            }]
        );
    }

    #[test]
    fn exact_sharing_by_hand() {
        // intra a: (a0,a1)=2, (a0,a2)=0, (a1,a2)=0; b: (b0,b1)=0 -> 2 over 4 pairs.
        // inter: a0-b0=1, a1-b0=1, others 0 -> 2 over 6 pairs.
        let s = sharing(&sample());
        assert_eq!(
            s.intra,
            PairMean {
                pairs: 4,
                shared: 2,
                mean: Some(0.5)
            }
        );
        assert_eq!((s.inter.pairs, s.inter.shared), (6, 2));
        let one = sharing(&[f("a:0", "a", &[(1, 1)])]);
        assert_eq!(one.intra.mean, None);
        assert_eq!(one.inter.mean, None);
    }

    #[test]
    fn sampled_sharing_approximates_exact() {
        let facts = sample();
        let exact = sharing(&facts);
        let est = sharing_sampled(&facts, 20_000, 3);
        assert_eq!(est, sharing_sampled(&facts, 20_000, 3));
        assert_eq!(est.intra.pairs, 20_000);
        assert!(
            (est.intra.mean.unwrap() - exact.intra.mean.unwrap()).abs() < 0.03,
            "{est:?}"
        );
        assert!(
            (est.inter.mean.unwrap() - exact.inter.mean.unwrap()).abs() < 0.03,
            "{est:?}"
        );
        let none = sharing_sampled(&facts[..1], 10, 0);
        assert_eq!((none.intra.pairs, none.inter.pairs), (0, 0));
        // The authors' estimator: a's facts draw from b, b's from a.
        let paper = paper_inter_sampled(&facts, 1000, 1);
        assert_eq!(paper.pairs, 5000);
        // Expected: a0: 1/2, a1: 1/2, a2: 0, b0: 2/3, b1: 0 -> 5/3 / 5 = 1/3.
        assert!((paper.mean.unwrap() - 1.0 / 3.0).abs() < 0.03, "{paper:?}");
        assert_eq!(paper_inter_sampled(&facts[..3], 10, 1).mean, None);
    }

    #[test]
    fn summary_serializes() {
        let s = summarize(&sample());
        assert_eq!((s.facts, s.relations), (5, 2));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), s);
        assert_eq!(
            intersection_size(
                &[Neuron::new(0, 1), Neuron::new(0, 3)],
                &[Neuron::new(0, 3)]
            ),
            1
        );
    }
}
