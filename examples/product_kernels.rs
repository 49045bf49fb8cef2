//! The matrix products of attribution's passes through `kn_kernels::matmul` (the AVX-512 tile
//! kernels on CPUs that have them) against the `gemm` crate (`kn_kernels::matmul::matmul_by_gemm`,
//! what `kn_kernels::matmul` used before), timed alternately in one run, one thread.
//!
//! ```sh
//! cargo run --release --example product_kernels -- [--reps 5] [--shape smollm2|llama-1b] \
//!     [--weights f32|bf16-valued]
//! ```
//!
//! `--weights bf16-valued` rounds the random weights to bfloat16 numbers (kept as float32), as
//! the weights of a checkpoint shipped in bfloat16 are: on CPUs with AMX, `kn_kernels::matmul`
//! then computes on the tile units (`KN_AMX=off` turns that off for a comparison).
//!
//! Each line multiplies `m` rows by 30 different weight matrices (a pass's layers: each weight
//! comes from memory, as in a pass) and reports the best of `reps` runs as GFLOP/s =
//! 2 m n k x 30 / time: `x Wᵀ` (a linear layer's forward product, `W` `[n, k]`) and `g W` (its
//! input gradient, `g` `[m, n]`), at SmolLM2's shapes and a pass's row counts; then the output
//! head's two products per vocabulary block of 2048 rows (`f Wᵀ` and `p W`, the whole
//! 49,152-row vocabulary).

use kn_model::tch::{self, Device, Kind, Tensor};
use std::time::Instant;

mod common;

const LAYERS: usize = 30;

/// The float32 multiply-add peak of one core, GFLOP/s: 16 independent AVX-512 fused
/// multiply-adds per step, in registers (none where the CPU lacks AVX-512).
fn fma_peak() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return Some(unsafe { fma_peak_avx512() });
    }
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_peak_avx512() -> f64 {
    use std::arch::x86_64::*;
    let mut sums = [_mm512_setzero_ps(); 16];
    let (a, b) = (_mm512_set1_ps(1.000_000_1), _mm512_set1_ps(0.999_999_9));
    let steps = 50_000_000usize;
    let started = Instant::now();
    for _ in 0..steps {
        for sum in sums.iter_mut() {
            *sum = _mm512_fmadd_ps(a, b, *sum);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    std::hint::black_box(&sums);
    (steps * 16 * 16 * 2) as f64 / seconds / 1e9
}

/// Best seconds of `reps` runs of `run`.
fn best_of(reps: usize, mut run: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// The products of one layer of a Llama-like model with these widths, as `(k, n, name)` of
/// `x Wᵀ` (`W` `[n, k]`): the fused gate and up projections, down, the fused q, k, v and o.
fn layer_products(
    hidden: i64,
    ffn: i64,
    query: i64,
    key_value: i64,
) -> [(i64, i64, &'static str); 4] {
    [
        (hidden, 2 * ffn, "gate+up"),
        (ffn, hidden, "down"),
        (hidden, query + 2 * key_value, "q+k+v"),
        (query, hidden, "o"),
    ]
}

fn main() -> Result<(), String> {
    let reps: usize = common::option("reps", "5").parse().unwrap_or(5);
    // The widths of the model whose products are timed: hidden, FFN, queries, keys (and
    // values), vocabulary.
    let (hidden, ffn, query, key_value, vocabulary) =
        match common::option("shape", "smollm2").as_str() {
            "smollm2" => (576, 1536, 576, 192, 49_152),
            "llama-1b" => (2048, 8192, 2048, 512, 128_256),
            other => return Err(format!("--shape {other}: expected smollm2 or llama-1b")),
        };
    let bf16_valued = match common::option("weights", "f32").as_str() {
        "f32" => false,
        "bf16-valued" => true,
        other => return Err(format!("--weights {other}: expected f32 or bf16-valued")),
    };
    // Random weights, rounded to bfloat16 numbers with `--weights bf16-valued`.
    let random_weights = |size: [i64; 2]| {
        let weights = Tensor::randn(size, (Kind::Float, Device::Cpu));
        if bf16_valued {
            weights.to_kind(Kind::BFloat16).to_kind(Kind::Float)
        } else {
            weights
        }
    };
    tch::set_num_threads(1);
    let _no_grad = tch::no_grad_guard();
    let float = (Kind::Float, Device::Cpu);
    println!("one thread, best of {reps}, GFLOP/s; {LAYERS} weights per line");
    if let Some(peak) = fma_peak() {
        println!("FMA peak of one core (AVX-512, registers only): {peak:.0} GFLOP/s");
    }
    println!(
        "{:<28} {:>5} {:>10} {:>10} {:>7}",
        "product [k -> n]", "rows", "kn_model", "gemm", "ratio"
    );
    for (k, n, what) in layer_products(hidden, ffn, query, key_value) {
        // At most about 1 GB of weights per line, at least two matrices.
        let count = (LAYERS as i64).min((1i64 << 28) / (n * k)).max(2) as usize;
        let weights: Vec<Tensor> = (0..count).map(|_| random_weights([n, k])).collect();
        for &m in &[10i64, 20, 40, 100, 160, 300] {
            let x = Tensor::randn([m, k], float);
            let g = Tensor::randn([m, n], float);
            let flop = 2.0 * (m * n * k) as f64 * count as f64;
            let mut rates = [0.0; 4];
            for _ in 0..2 {
                let ours = best_of(reps, || {
                    for w in &weights {
                        let _ = kn_kernels::matmul::linear(&x, w);
                    }
                });
                let theirs = best_of(reps, || {
                    for w in &weights {
                        let _ = kn_kernels::matmul::matmul_by_gemm(&x, &w.tr());
                    }
                });
                let ours_back = best_of(reps, || {
                    for w in &weights {
                        let _ = kn_kernels::matmul::matmul(&g, w);
                    }
                });
                let theirs_back = best_of(reps, || {
                    for w in &weights {
                        let _ = kn_kernels::matmul::matmul_by_gemm(&g, w);
                    }
                });
                for (rate, seconds) in rates.iter_mut().zip([ours, theirs, ours_back, theirs_back])
                {
                    *rate = f64::max(*rate, flop / seconds / 1e9);
                }
            }
            let row = |label: String, ours: f64, theirs: f64| {
                println!(
                    "{label:<28} {m:>5} {ours:>10.0} {theirs:>10.0} {:>7.2}",
                    ours / theirs
                )
            };
            row(format!("{what} x Wᵀ [{k} -> {n}]"), rates[0], rates[1]);
            row(format!("{what} g W  [{n} -> {k}]"), rates[2], rates[3]);
        }
    }
    let block = 2048i64;
    let vocabulary = vocabulary / block * block;
    let embedding = random_weights([vocabulary, hidden]);
    for &lines in &[100i64, 300, 600] {
        let features = Tensor::randn([lines, hidden], float);
        let probabilities = Tensor::randn([lines, block], float);
        let flop = 2.0 * (lines * vocabulary * hidden) as f64;
        let blocks = || (0..vocabulary / block).map(|b| embedding.narrow(0, b * block, block));
        let mut rates = [0.0; 4];
        for _ in 0..2 {
            let seconds = [
                best_of(reps, || {
                    blocks().for_each(|w| drop(kn_kernels::matmul::linear(&features, &w)))
                }),
                best_of(reps, || {
                    blocks()
                        .for_each(|w| drop(kn_kernels::matmul::matmul_by_gemm(&features, &w.tr())))
                }),
                best_of(reps, || {
                    blocks().for_each(|w| drop(kn_kernels::matmul::matmul(&probabilities, &w)))
                }),
                best_of(reps, || {
                    blocks()
                        .for_each(|w| drop(kn_kernels::matmul::matmul_by_gemm(&probabilities, &w)))
                }),
            ];
            for (rate, seconds) in rates.iter_mut().zip(seconds) {
                *rate = f64::max(*rate, flop / seconds / 1e9);
            }
        }
        for (label, ours, theirs) in [
            (
                format!("head f Wᵀ [{hidden} -> {vocabulary}]"),
                rates[0],
                rates[1],
            ),
            (
                format!("head p W  [{vocabulary} -> {hidden}]"),
                rates[2],
                rates[3],
            ),
        ] {
            println!(
                "{label:<28} {lines:>5} {ours:>10.0} {theirs:>10.0} {:>7.2}",
                ours / theirs
            );
        }
    }
    Ok(())
}
