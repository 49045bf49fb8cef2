//! The machine's float32 matrix-multiply rate through libtorch, at the shapes attribution
//! uses, as the yardstick for "how close to the hardware limit" (docs/performance.md), and
//! the same products through `kn_kernels::matmul` (the `gemm` crate, or the few-rows kernel),
//! which attribution's passes use on one libtorch thread.
//!
//! ```sh
//! cargo run --release --example gemm_bench -- [--threads 2] [--reps 20]
//! ```
//!
//! Each line multiplies `x [m x k]` by a weight stored like a linear layer's (`w [n x k]`,
//! used transposed, i.e. `x.linear(w)`, exactly what the models call; for the backward line
//! `w [k x n]` untransposed, as the input gradient uses it) and reports the best
//! and median time over `reps` runs after a warm-up, and GFLOP/s = 2 m n k / time. With
//! `--threads 1` the float32 lines also give `kn_kernels::matmul`'s best rate, timed in the same
//! loop, alternating with libtorch's (with more threads it falls back to libtorch).

use kn_model::tch::{self, Device, Kind, Tensor};
use std::time::Instant;

struct Shape {
    what: &'static str,
    m: i64,
    k: i64,
    n: i64,
    /// `x.linear(w)` with `w [n x k]` (forward of a linear layer); false: `x.mm(w)` with
    /// `w [k x n]` (what the input gradient of a linear layer computes: grad x W).
    linear: bool,
    /// bfloat16 inputs and weight (float32 accumulation; AVX512_BF16 through oneDNN where the
    /// CPU has it): what a reduced-precision head would cost.
    bf16: bool,
}

const SHAPES: &[Shape] = &[
    // SmolLM2 (hidden 576, FFN 1536, vocabulary 49152), one attribution pass = 240 rows
    // (30 layers x 8 points, answer position only).
    Shape {
        what: "SmolLM2 gate/up  [240x576]x[576x1536]",
        m: 240,
        k: 576,
        n: 1536,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "SmolLM2 down     [240x1536]x[1536x576]",
        m: 240,
        k: 1536,
        n: 576,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "SmolLM2 q/o      [240x576]x[576x576]",
        m: 240,
        k: 576,
        n: 576,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "SmolLM2 k/v      [240x576]x[576x192]",
        m: 240,
        k: 576,
        n: 192,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "SmolLM2 LM head  [240x576]x[576x49152]",
        m: 240,
        k: 576,
        n: 49152,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "SmolLM2 LM head backward [240x49152]x[49152x576]",
        m: 240,
        k: 49152,
        n: 576,
        linear: false,
        bf16: false,
    },
    // The same two products with the head weight stored transposed ([576 x 49152] contiguous).
    Shape {
        what: "  same, weight transposed: head x.mm(w)",
        m: 240,
        k: 576,
        n: 49152,
        linear: false,
        bf16: false,
    },
    Shape {
        what: "  same, weight transposed: backward g.mm(w.t())",
        m: 240,
        k: 49152,
        n: 576,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "  same in bfloat16: head",
        m: 240,
        k: 576,
        n: 49152,
        linear: true,
        bf16: true,
    },
    Shape {
        what: "  same in bfloat16: backward",
        m: 240,
        k: 49152,
        n: 576,
        linear: false,
        bf16: true,
    },
    Shape {
        what: "600 rows         [600x576]x[576x1536]",
        m: 600,
        k: 576,
        n: 1536,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "600 rows LM head [600x576]x[576x49152]",
        m: 600,
        k: 576,
        n: 49152,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "20 rows          [20x576]x[576x1536]",
        m: 20,
        k: 576,
        n: 1536,
        linear: true,
        bf16: false,
    },
    // BERT-base (hidden 768, FFN 3072, vocabulary 28996): 240 rows x 10 tokens.
    Shape {
        what: "BERT-base FFN in [2400x768]x[768x3072]",
        m: 2400,
        k: 768,
        n: 3072,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "BERT-base FFN out [2400x3072]x[3072x768]",
        m: 2400,
        k: 3072,
        n: 768,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "BERT-base q/k/v/o [2400x768]x[768x768]",
        m: 2400,
        k: 768,
        n: 768,
        linear: true,
        bf16: false,
    },
    Shape {
        what: "BERT-base MLM head [240x768]x[768x28996]",
        m: 240,
        k: 768,
        n: 28996,
        linear: true,
        bf16: false,
    },
    // Large and square: the best case.
    Shape {
        what: "square           [2048x2048]x[2048x2048]",
        m: 2048,
        k: 2048,
        n: 2048,
        linear: true,
        bf16: false,
    },
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let threads = arg("--threads", 2);
    let reps = arg("--reps", 20).max(1);
    tch::set_num_threads(threads as i32);
    tch::manual_seed(0);
    println!(
        "libtorch float32 GEMM, {} threads (mkl {}, mkldnn {}), best/median of {reps} runs",
        tch::get_num_threads(),
        tch::utils::has_mkl(),
        tch::utils::has_mkldnn()
    );
    println!(
        "{:<50} {:>10} {:>10} {:>9} {:>9} {:>12}",
        "shape", "best ms", "median ms", "GFLOP/s", "(median)", "kn GFLOP/s"
    );
    let opts = (Kind::Float, Device::Cpu);
    let _guard = tch::no_grad_guard();
    for shape in SHAPES {
        let kind = if shape.bf16 {
            Kind::BFloat16
        } else {
            Kind::Float
        };
        let x = Tensor::randn([shape.m, shape.k], opts).to_kind(kind);
        let w = if shape.linear {
            Tensor::randn([shape.n, shape.k], opts)
        } else {
            Tensor::randn([shape.k, shape.n], opts)
        };
        let w = w.to_kind(kind);
        let multiply = || {
            if shape.linear {
                x.linear::<Tensor>(&w, None)
            } else {
                x.mm(&w)
            }
        };
        let multiply_here = || {
            if shape.linear {
                kn_kernels::matmul::linear(&x, &w)
            } else {
                kn_kernels::matmul::matmul(&x, &w)
            }
        };
        let time = |f: &dyn Fn() -> Tensor| {
            let started = Instant::now();
            let y = f();
            let _ = y.to_kind(Kind::Float).double_value(&[0, 0]);
            started.elapsed().as_secs_f64()
        };
        let compare = !shape.bf16;
        for _ in 0..3 {
            let _ = multiply();
            if compare {
                let _ = multiply_here();
            }
        }
        let (mut times, mut times_here) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            times.push(time(&multiply));
            if compare {
                times_here.push(time(&multiply_here));
            }
        }
        times.sort_by(f64::total_cmp);
        times_here.sort_by(f64::total_cmp);
        let flops = 2.0 * (shape.m * shape.k * shape.n) as f64;
        let (best, median) = (times[0], times[times.len() / 2]);
        let here = times_here
            .first()
            .map_or(String::from("-"), |t| format!("{:.1}", flops / t / 1e9));
        println!(
            "{:<50} {:>10.3} {:>10.3} {:>9.1} {:>9.1} {:>12}",
            shape.what,
            best * 1e3,
            median * 1e3,
            flops / best / 1e9,
            flops / median / 1e9,
            here
        );
    }
}
