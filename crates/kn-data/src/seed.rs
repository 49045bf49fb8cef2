//! Seeded randomness that gives the same results on every platform.
//!
//! Every random choice in this crate draws from a [`ChaCha8Rng`] seeded with
//! [`derive_seed`]`(seed, key)`, where `key` names what is being sampled (a relation id, a fact
//! id plus a purpose). Results therefore depend only on the user's seed and on the key, not on
//! what else was sampled before or on thread scheduling. Ranges are drawn as `u64`, never as
//! `usize`, so 32- and 64-bit targets agree. A test pins the exact draws.

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
pub use rand_chacha::ChaCha8Rng;

/// Mixes a user seed with a key (FNV-1a over the key's bytes, then SplitMix64 finalisation).
pub fn derive_seed(seed: u64, key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ hash;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A ChaCha8 generator for `(seed, key)`.
pub fn rng_for(seed: u64, key: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, key))
}

/// A uniform index in `0..n` (`n > 0`; returns 0 for `n == 0`).
pub(crate) fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // usize -> u64 is lossless on every supported target, and the draw is < n.
    rng.gen_range(0..n as u64) as usize
}

/// `k` distinct indices of `0..n` (all of them if `k >= n`), in draw order (partial
/// Fisher-Yates shuffle).
pub fn sample_indices(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n).collect();
    let k = k.min(n);
    for i in 0..k {
        let j = i + below(rng, n - i);
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pinned() {
        // If this changes, sampled fact sets change for every user: bump it only on purpose.
        assert_eq!(derive_seed(0, ""), derive_seed(0, ""));
        assert_ne!(derive_seed(1, "P36"), derive_seed(2, "P36"));
        assert_ne!(derive_seed(1, "P36"), derive_seed(1, "P37"));
        let mut rng = rng_for(42, "P36");
        let draws = sample_indices(&mut rng, 100, 5);
        assert_eq!(draws, PINNED);
    }

    const PINNED: [usize; 5] = [97, 55, 71, 89, 96];

    #[test]
    fn samples_are_distinct_and_bounded() {
        let mut rng = rng_for(7, "x");
        let s = sample_indices(&mut rng, 10, 20);
        let mut sorted = s.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert!(sample_indices(&mut rng, 0, 3).is_empty());
        assert_eq!(below(&mut rng, 0), 0);
        for _ in 0..100 {
            assert!(below(&mut rng, 3) < 3);
        }
    }
}
