//! Seeded randomness that gives the same draws on every platform.
//!
//! Every random choice of this crate (random-neuron controls, other-relation facts) draws from
//! a [`ChaCha8Rng`] seeded with [`derive_seed`]`(seed, key)`, where `key` names what is being
//! sampled (a fact id plus a purpose). Draws therefore depend only on the caller's seed and the
//! key, not on what was sampled before. Ranges are drawn as `u64`, never as `usize`, so 32- and
//! 64-bit targets agree.

pub use kn_data::seed::derive_seed;
pub(crate) use kn_data::seed::rng_for;
use rand_chacha::ChaCha8Rng;

/// `k` distinct elements of `pool` (all of them if `k >= pool.len()`), in draw order: the
/// elements at kn-data's seeded [`kn_data::seed::sample_indices`] (partial Fisher-Yates).
pub(crate) fn sample<T: Copy>(rng: &mut ChaCha8Rng, pool: Vec<T>, k: usize) -> Vec<T> {
    kn_data::seed::sample_indices(rng, pool.len(), k)
        .into_iter()
        .filter_map(|i| pool.get(i).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pinned_and_keyed() {
        assert_eq!(derive_seed(3, "a"), derive_seed(3, "a"));
        assert_ne!(derive_seed(1, "P36"), derive_seed(2, "P36"));
        assert_ne!(derive_seed(1, "P36"), derive_seed(1, "P37"));
        let a = sample(&mut rng_for(42, "x"), (0..100).collect::<Vec<usize>>(), 5);
        let b = sample(&mut rng_for(42, "x"), (0..100).collect::<Vec<usize>>(), 5);
        assert_eq!(a, b);
    }

    #[test]
    fn samples_are_distinct_and_bounded() {
        let mut rng = rng_for(7, "x");
        let mut s = sample(&mut rng, (0..10).collect::<Vec<usize>>(), 20);
        s.sort_unstable();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
        assert!(sample(&mut rng, Vec::<usize>::new(), 3).is_empty());
        for _ in 0..100 {
            let s = sample(&mut rng, (0..30).collect::<Vec<usize>>(), 7);
            let mut d = s.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 7);
            assert!(s.iter().all(|&i| i < 30));
        }
    }
}
