//! Matrix products of float32 CPU tensors without libtorch, for attribution's passes.
//!
//! On the CPU, attribution's time is almost all matrix products of a few dozen to a few hundred
//! rows against the model's weights. This module computes them itself:
//!
//! - up to [`FEW_ROWS`] rows (a clean pass multiplies a prompt's few tokens by every weight
//!   matrix, which is a matter of reading the weights once), each weight row is streamed once
//!   against all the input rows (`few_rows_product`);
//! - on CPUs with AVX-512, products whose left operand has contiguous rows go to the blocked
//!   kernels of `tiles`: the input rows packed into tiles of 8, the weights copied block by
//!   block into 32-column panels that stay in the first-level cache (`x Wᵀ` transposes weight
//!   rows into them, `g W` copies rows of the row-major `W`), the next block fetched into the
//!   cache while the current one computes;
//! - on CPUs with AMX, those products whose weights hold bfloat16 values (checkpoints shipped in
//!   bf16) run on the tile units instead, exact in float32 (`amx`: each input split into three
//!   bf16 pieces; blocks holding other values stay on the AVX-512 kernels; `KN_AMX=off` turns it
//!   off);
//! - everything else goes to the `gemm` crate.
//!
//! All of them accumulate in float32; results differ from libtorch's by float rounding only.
//! `docs/performance.md` has the measurements that chose these paths
//! (`examples/product_kernels.rs` reruns them).
//!
//! [`matmul`], [`linear`] and [`add_matmul`] take float32 CPU tensors with any strides (a
//! transposed view costs nothing) that do not require gradients, on a thread where libtorch is
//! set to one thread (as in attribution's concurrent passes), and compute there. Everything
//! else goes to libtorch: CUDA, other kinds, tensors in an autograd graph, and threads with
//! several libtorch threads (where `gemm`'s own threads and libtorch's OpenMP threads would
//! contend for the cores).
//!
//! A product with a bfloat16 or float16 operand (the weights of a model loaded with
//! `--dtype bf16|f16`, see `kn_model::Dtype`) runs in that type: the float32 operand is rounded to
//! it, libtorch multiplies (oneDNN, AVX512-BF16 where the CPU has it), and the result comes
//! back as float32, as under PyTorch's autocast.
//!
//! A thread that has a core to spare (a lone clean pass while the other workers idle) can
//! lend its products a second thread with [`with_product_helper`]: each few-row product's
//! weight rows, and each blocked product's output columns, are split between the two threads,
//! which doubles the memory bandwidth the product streams the weights with. The arithmetic of
//! every output element is the same either way, so results are identical to the bit (except for
//! weights that mix bfloat16 values with others, where each half of a blocked product decides
//! on AMX by its own first block: then they differ by float32 rounding).

#[cfg(target_arch = "x86_64")]
mod amx;
mod tiles;

use std::cell::RefCell;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use tch::{Device, Kind, Tensor};

/// Up to this many rows, a product streams the weights once (`few_rows_product`) instead
/// of going through `gemm`.
pub const FEW_ROWS: i64 = 16;

/// `a @ b` (`[m, k] @ [k, n]`).
pub fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    if let Some(half) = half_kind(&[a, b]) {
        return a
            .to_kind(half)
            .matmul(&b.to_kind(half))
            .to_kind(Kind::Float);
    }
    if !(takes(&[a, b]) && a.dim() == 2 && b.dim() == 2 && a.size()[1] == b.size()[0]) {
        return a.matmul(b);
    }
    new_product(a, b)
}

/// `a @ b` into a new tensor, for tensors [`takes`] accepts, 2-D with matching inner size.
fn new_product(a: &Tensor, b: &Tensor) -> Tensor {
    let out = Tensor::empty([a.size()[0], b.size()[1]], (Kind::Float, Device::Cpu));
    // SAFETY: `out` is a fresh contiguous `[m, n]` float32 CPU tensor that nothing else
    // refers to, and `a`, `b` are 2-D float32 CPU tensors of matching inner size.
    unsafe { product(&out, false, a, b) };
    out
}

/// `x Wᵀ` (`[..., k]`, `W` `[n, k]`): a linear layer without bias, as
/// `x.linear(weight, None)`.
pub fn linear(x: &Tensor, weight: &Tensor) -> Tensor {
    if let Some(half) = half_kind(&[x, weight]) {
        return x
            .to_kind(half)
            .linear::<Tensor>(&weight.to_kind(half), None)
            .to_kind(Kind::Float);
    }
    let size = x.size();
    let fits = x.dim() >= 2 && weight.dim() == 2 && size.last() == Some(&weight.size()[1]);
    if !(fits && takes(&[x, weight])) {
        return x.linear::<Tensor>(weight, None);
    }
    // The leading dimensions' product, spelled out: `-1` is ambiguous for an empty `x`.
    let count: i64 = size[..size.len() - 1].iter().product();
    let rows = x.reshape([count, weight.size()[1]]);
    let mut out_size = size;
    if let Some(last) = out_size.last_mut() {
        *last = weight.size()[0];
    }
    new_product(&rows, &weight.tr()).reshape(out_size)
}

/// `c += a @ b` in place, for a contiguous `c` (`[m, n]`).
pub fn add_matmul(c: &mut Tensor, a: &Tensor, b: &Tensor) {
    if half_kind(&[a, b]).is_some() {
        let _ = c.g_add_(&matmul(a, b));
        return;
    }
    let shapes_match = a.dim() == 2
        && b.dim() == 2
        && c.dim() == 2
        && a.size()[1] == b.size()[0]
        && c.size() == [a.size()[0], b.size()[1]];
    let aliased = overlaps(c, a) || overlaps(c, b);
    let computed_here = shapes_match && takes(&[c, a, b]) && c.is_contiguous() && !aliased;
    if !computed_here {
        if aliased {
            // libtorch's in-place `addmm_` reads what it writes here with MKL on Intel CPUs
            // (seen on a Xeon): the product goes to a fresh tensor first.
            let _ = c.g_add_(&a.matmul(b));
        } else {
            let _ = c.addmm_(a, b);
        }
        return;
    }
    // SAFETY: `c` is a contiguous `[m, n]` float32 CPU tensor, borrowed mutably so that
    // nothing else writes to it, and `a`, `b` are float32 CPU tensors of matching sizes.
    unsafe { product(c, true, a, b) };
}

/// Whether products with `weight` as their right operand run on the AMX tile units here
/// (`amx`): a CPU and kernel that have them (and `KN_AMX` not `off`), and a float32 CPU `weight`
/// whose values are bfloat16 numbers, judged from its first 65,536 elements. A hint for how to
/// schedule work: the products check every block themselves.
pub fn amx_products(weight: &Tensor) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let takes = weight.device() == Device::Cpu
            && weight.kind() == Kind::Float
            && weight.is_contiguous()
            && weight.numel() > 0;
        if !(takes && amx::available()) {
            return false;
        }
        let count = weight.numel().min(1 << 16);
        // SAFETY: `weight` is a contiguous float32 CPU tensor of at least `count` elements.
        let values = unsafe { std::slice::from_raw_parts(weight.data_ptr() as *const f32, count) };
        values.iter().all(|value| value.to_bits() & 0xFFFF == 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = weight;
        false
    }
}

/// The half-precision kind (bfloat16 or float16) of the first such operand among `tensors`:
/// the type their product runs in (see the module's docs).
fn half_kind(tensors: &[&Tensor]) -> Option<Kind> {
    tensors
        .iter()
        .map(|t| t.kind())
        .find(|&kind| matches!(kind, Kind::BFloat16 | Kind::Half))
}

/// Whether the memory spans of two tensors' elements (on the same device) overlap: then an
/// in-place product would read what it writes.
fn overlaps(x: &Tensor, y: &Tensor) -> bool {
    let span = |t: &Tensor| {
        let start = t.data_ptr() as usize;
        let last: i64 = t
            .size()
            .iter()
            .zip(t.stride())
            .map(|(&size, stride)| (size - 1).max(0) * stride)
            .sum();
        (
            start,
            start + (last as usize + 1) * t.kind().elt_size_in_bytes(),
        )
    };
    if x.numel() == 0 || y.numel() == 0 || x.device() != y.device() {
        return false;
    }
    let ((x_start, x_end), (y_start, y_end)) = (span(x), span(y));
    x_start < y_end && y_start < x_end
}

/// Whether products of these tensors on this thread go to the AVX-512 kernels (`tiles`), which
/// want the operand of many rows on the left with its rows contiguous.
pub fn row_kernels(tensors: &[&Tensor]) -> bool {
    takes(tensors) && tiles::available()
}

/// Whether these tensors are computed here: float32 on the CPU, outside autograd, on a thread
/// where libtorch runs on one thread.
fn takes(tensors: &[&Tensor]) -> bool {
    tch::get_num_threads() == 1
        && tensors
            .iter()
            .all(|t| t.device() == Device::Cpu && t.kind() == Kind::Float && !t.requires_grad())
}

/// `out = a @ b`, or `out += a @ b` when `accumulate`.
///
/// # Safety
/// `out` must be a contiguous `[m, n]` float32 CPU tensor that nothing else reads or writes
/// during the call; `a` (`[m, k]`) and `b` (`[k, n]`) float32 CPU tensors.
unsafe fn product(out: &Tensor, accumulate: bool, a: &Tensor, b: &Tensor) {
    let (m, k, n) = (a.size()[0], a.size()[1], b.size()[1]);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            let _ = out.shallow_clone().zero_();
        }
        return;
    }
    let (a_strides, b_strides) = (a.stride(), b.stride());
    if m <= FEW_ROWS && a_strides[1] == 1 && b_strides[0] == 1 {
        let output = std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, (m * n) as usize);
        let rows: Vec<&[f32]> = (0..m)
            .map(|i| {
                let start = (a.data_ptr() as *const f32).offset((i * a_strides[0]) as isize);
                std::slice::from_raw_parts(start, k as usize)
            })
            .collect();
        let columns: Vec<&[f32]> = (0..n)
            .map(|j| {
                let start = (b.data_ptr() as *const f32).offset((j * b_strides[1]) as isize);
                std::slice::from_raw_parts(start, k as usize)
            })
            .collect();
        few_rows_product_shared(output, accumulate, &rows, &columns);
        return;
    }
    // Rows of `a` contiguous: the AVX-512 kernels where the CPU has them (`tiles`), for the
    // products that the few-rows kernel above did not take.
    #[cfg(target_arch = "x86_64")]
    if a_strides[1] == 1 && tiles::available() {
        let rows = |t: &Tensor, row_stride: i64| tiles::Rows {
            start: t.data_ptr() as *const f32,
            row_stride: row_stride as usize,
        };
        let out_start = out.data_ptr() as *mut f32;
        let shape = (m as usize, n as usize, k as usize);
        let right = if b_strides[0] == 1 {
            // `b` is `Wᵀ` for a `W` with contiguous rows (a linear layer).
            Some(tiles::RightOperand::WeightRows(rows(b, b_strides[1])))
        } else if b_strides[1] == 1 {
            Some(tiles::RightOperand::Matrix(rows(b, b_strides[0])))
        } else {
            None
        };
        if let Some(right) = right {
            blocked_product_shared(BlockedProduct {
                out: out_start,
                out_stride: n as usize,
                accumulate,
                a: rows(a, a_strides[0]),
                right,
                shape,
            });
            return;
        }
    }
    gemm_into(out, accumulate, a, b);
}

/// `out = a @ b`, or `out += a @ b` when `accumulate`, by the `gemm` crate on this thread.
///
/// # Safety
/// As [`product`], and `a`, `b` not empty.
unsafe fn gemm_into(out: &Tensor, accumulate: bool, a: &Tensor, b: &Tensor) {
    let (m, k, n) = (a.size()[0], a.size()[1], b.size()[1]);
    let (a_strides, b_strides) = (a.stride(), b.stride());
    gemm::gemm(
        m as usize,
        n as usize,
        k as usize,
        out.data_ptr() as *mut f32,
        1,
        n as isize,
        accumulate,
        a.data_ptr() as *const f32,
        a_strides[1] as isize,
        a_strides[0] as isize,
        b.data_ptr() as *const f32,
        b_strides[1] as isize,
        b_strides[0] as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// `a @ b` (`[m, k] @ [k, n]`, float32 CPU tensors, any strides) by the `gemm` crate alone,
/// whatever the thread and the CPU: the path [`matmul`] took before its AVX-512 kernels, for
/// benchmarks that compare the two (`examples/product_kernels.rs`). Anything else goes to
/// libtorch.
pub fn matmul_by_gemm(a: &Tensor, b: &Tensor) -> Tensor {
    let shapes_match = a.dim() == 2 && b.dim() == 2 && a.size()[1] == b.size()[0];
    let float_cpu = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    if !(shapes_match && float_cpu(a) && float_cpu(b) && !a.requires_grad() && !b.requires_grad()) {
        return a.matmul(b);
    }
    let size = [a.size()[0], b.size()[1]];
    if a.numel() == 0 || b.numel() == 0 {
        return Tensor::zeros(size, (Kind::Float, Device::Cpu));
    }
    let out = Tensor::empty(size, (Kind::Float, Device::Cpu));
    // SAFETY: `out` is a fresh contiguous `[m, n]` float32 CPU tensor that nothing else refers
    // to; `a` and `b` are non-empty 2-D float32 CPU tensors of matching inner size.
    unsafe { gemm_into(&out, false, a, b) };
    out
}

/// A product's share for the helper thread.
enum HelperShare {
    /// The columns `first..` of a few-row product, computed into a buffer of its own
    /// (`[rows, columns - first]`) that the helper sends back.
    FewRows {
        rows: Vec<(*const f32, usize)>,
        columns: Vec<(*const f32, usize)>,
        first: usize,
    },
    /// Some output columns of a blocked product ([`blocked_product`]), computed into the
    /// output in place (the helper sends back an empty buffer when done).
    #[cfg(target_arch = "x86_64")]
    Blocked(BlockedProduct),
}

/// The arguments of one [`blocked_product`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct BlockedProduct {
    out: *mut f32,
    out_stride: usize,
    accumulate: bool,
    a: tiles::Rows,
    right: tiles::RightOperand,
    shape: (usize, usize, usize),
}

// SAFETY: a share is only sent to the helper while the thread that made it blocks until the
// helper sends back its result (`few_rows_product_shared`, `blocked_product_shared`), and
// nothing writes to what it reads meanwhile: the helper only reads it while it is alive. A
// blocked share's output columns are written by the helper alone.
unsafe impl Send for HelperShare {}

impl HelperShare {
    /// Computes the share: a few-row share's columns of the product, `[rows, columns -
    /// first]`; a blocked share's columns in place (an empty buffer back).
    ///
    /// # Safety
    /// The pointers must be valid as when the share was made (see the `Send` impl).
    unsafe fn run(self) -> Vec<f32> {
        match self {
            HelperShare::FewRows {
                rows,
                columns,
                first,
            } => {
                let slices = |parts: &[(*const f32, usize)]| -> Vec<&[f32]> {
                    parts
                        .iter()
                        .map(|&(start, len)| std::slice::from_raw_parts(start, len))
                        .collect()
                };
                let (rows, columns) = (slices(&rows), slices(&columns));
                let width = columns.len() - first;
                let mut out = vec![0.0; rows.len() * width];
                few_rows_product(&mut out, width, false, &rows, &columns[first..]);
                out
            }
            #[cfg(target_arch = "x86_64")]
            HelperShare::Blocked(product) => {
                blocked_product(product);
                Vec::new()
            }
        }
    }
}

/// Below this many output columns a blocked product is not split with the helper.
#[cfg(target_arch = "x86_64")]
const HELPED_BLOCKED_COLUMNS: usize = 512;

/// `out (+)= a · B` by the blocked kernels: on AMX where it takes the right operand
/// ([`amx::product`]), else by the AVX-512 tiles.
///
/// # Safety
/// As [`tiles::product`].
#[cfg(target_arch = "x86_64")]
unsafe fn blocked_product(p: BlockedProduct) {
    if amx::available() && amx::product(p.out, p.out_stride, p.accumulate, p.a, p.right, p.shape) {
        return;
    }
    tiles::product(p.out, p.out_stride, p.accumulate, p.a, p.right, p.shape);
}

/// [`blocked_product`], its output columns split with the thread's helper when it has one
/// ([`with_product_helper`]) and there are enough of them: each thread reads its half of the
/// right operand once, for all the rows.
///
/// # Safety
/// As [`tiles::product`].
#[cfg(target_arch = "x86_64")]
unsafe fn blocked_product_shared(p: BlockedProduct) {
    let (m, n, inner) = p.shape;
    // The helper's columns start at a whole group of 32.
    let first = (n / 2).next_multiple_of(32);
    if n < HELPED_BLOCKED_COLUMNS || first >= n {
        return blocked_product(p);
    }
    let theirs = BlockedProduct {
        out: p.out.add(first),
        right: p.right.from(first, 0),
        shape: (m, n - first, inner),
        ..p
    };
    let ours = BlockedProduct {
        shape: (m, first, inner),
        ..p
    };
    match with_helper_share(|| HelperShare::Blocked(theirs), || blocked_product(ours)) {
        None => blocked_product(p),
        Some(None) => blocked_product(theirs),
        Some(Some(_)) => {}
    }
}

/// The helper thread lent to products on this thread by [`with_product_helper`].
struct Helper {
    shares: Sender<HelperShare>,
    results: Receiver<Vec<f32>>,
}

thread_local! {
    static HELPER: RefCell<Option<Helper>> = const { RefCell::new(None) };
}

/// Below this many weight rows a few-row product is not split (the hand-over would cost
/// more than the second thread saves).
const HELPED_COLUMNS: usize = 256;

/// Runs `job` on the calling thread with a second thread lent to its few-row products (up to
/// [`FEW_ROWS`] rows, computed here rather than by libtorch: one libtorch thread): each splits
/// the weight rows with the helper. For a thread that runs alone while a core idles, such as
/// a lone clean pass: the helper thread exists for the duration of `job` and spins between
/// products, keeping that core busy. Results are identical to the bit with or without it. A
/// panic in `job` continues after the helper has stopped.
pub fn with_product_helper<T>(job: impl FnOnce() -> T) -> T {
    /// Puts back the thread's previous helper (if `with_product_helper` is nested) when
    /// `job` ends, panicking or not: this one's channel closes and its thread returns.
    struct Lent(Option<Helper>);
    impl Drop for Lent {
        fn drop(&mut self) {
            let previous = self.0.take();
            HELPER.with(|helper| *helper.borrow_mut() = previous);
        }
    }
    std::thread::scope(|scope| {
        let (share_sender, shares) = channel::<HelperShare>();
        let (result_sender, results) = channel();
        scope.spawn(move || {
            // The helper spins rather than sleeps between products: it has a core of its own
            // for the duration, and waking a sleeping thread costs more than a small product.
            while let Some(share) = receive_spinning(&shares) {
                // SAFETY: see `HelperShare`'s `Send` impl.
                if result_sender.send(unsafe { share.run() }).is_err() {
                    break;
                }
            }
        });
        let previous = HELPER.with(|helper| {
            helper.borrow_mut().replace(Helper {
                shares: share_sender,
                results,
            })
        });
        let _lent = Lent(previous);
        job()
    })
}

/// The next message on `receiver`, waiting for it by spinning; `None` once the sender is gone.
fn receive_spinning<T>(receiver: &Receiver<T>) -> Option<T> {
    loop {
        match receiver.try_recv() {
            Ok(message) => return Some(message),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
}

/// Whether products on the calling thread have a helper thread ([`with_product_helper`]).
pub fn has_product_helper() -> bool {
    HELPER.with(|helper| helper.borrow().is_some())
}

/// [`few_rows_product`] into a `[rows, columns]` output, with the weight rows split with the
/// thread's helper when it has one ([`with_product_helper`]) and there are enough of them.
fn few_rows_product_shared(out: &mut [f32], accumulate: bool, rows: &[&[f32]], columns: &[&[f32]]) {
    let n = columns.len();
    let first = n / 2;
    if n < HELPED_COLUMNS {
        return few_rows_product(out, n, accumulate, rows, columns);
    }
    let share = || HelperShare::FewRows {
        rows: rows.iter().map(|r| (r.as_ptr(), r.len())).collect(),
        columns: columns.iter().map(|c| (c.as_ptr(), c.len())).collect(),
        first,
    };
    let ours = || few_rows_product(out, n, accumulate, rows, &columns[..first]);
    match with_helper_share(share, ours) {
        None => few_rows_product(out, n, accumulate, rows, columns),
        Some(None) => few_rows_product(&mut out[first..], n, accumulate, rows, &columns[first..]),
        Some(Some(theirs)) => {
            let width = n - first;
            for (i, values) in theirs.chunks_exact(width).enumerate() {
                let slots = &mut out[i * n + first..(i + 1) * n];
                for (slot, value) in slots.iter_mut().zip(values) {
                    *slot = if accumulate { *slot + value } else { *value };
                }
            }
        }
    }
}

/// Hands the share made by `share` to the thread's helper ([`with_product_helper`]) and runs
/// `ours` meanwhile. `None` when the thread has no helper (nothing handed over, `ours` not
/// run); else what the helper sent back, `None` when it stopped without answering. It only
/// stops early if its arithmetic panicked (it cannot); it is then done with the share, and
/// the caller computes it itself.
fn with_helper_share(
    share: impl FnOnce() -> HelperShare,
    ours: impl FnOnce(),
) -> Option<Option<Vec<f32>>> {
    HELPER.with(|helper| {
        let helper = helper.borrow();
        let helper = helper.as_ref()?;
        helper.shares.send(share()).ok()?;
        ours();
        Some(receive_spinning(&helper.results))
    })
}

/// `out[i][j] (+)= rows[i] · columns[j]` for few rows, `out` row-major with rows `stride`
/// floats apart: each column (a row of the weight matrix, contiguous) is read once and dotted
/// with every row while it is in cache.
fn few_rows_product(
    out: &mut [f32],
    stride: usize,
    accumulate: bool,
    rows: &[&[f32]],
    columns: &[&[f32]],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { few_rows_product_avx2(out, stride, accumulate, rows, columns) };
        return;
    }
    few_rows_product_portable(out, stride, accumulate, rows, columns);
}

/// [`few_rows_product_portable`] compiled for AVX2 and FMA (the same arithmetic: no fused
/// multiply-adds are introduced, so results do not depend on the CPU).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn few_rows_product_avx2(
    out: &mut [f32],
    stride: usize,
    accumulate: bool,
    rows: &[&[f32]],
    columns: &[&[f32]],
) {
    few_rows_product_portable(out, stride, accumulate, rows, columns);
}

/// The loops of [`few_rows_product`], written for the compiler to vectorize.
#[inline(always)]
fn few_rows_product_portable(
    out: &mut [f32],
    stride: usize,
    accumulate: bool,
    rows: &[&[f32]],
    columns: &[&[f32]],
) {
    for (j, column) in columns.iter().enumerate() {
        for (i, row) in rows.iter().enumerate() {
            let value = dot(row, column);
            let slot = &mut out[i * stride + j];
            *slot = if accumulate { *slot + value } else { value };
        }
    }
}

/// Separate partial sums of [`dot`] (two AVX2 registers of floats).
const LANES: usize = 16;

/// `x · y` with 16 partial sums (a vector register of float32), added pairwise at the end.
#[inline(always)]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let whole = x.len() - x.len() % LANES;
    for (xs, ys) in x[..whole]
        .chunks_exact(LANES)
        .zip(y[..whole].chunks_exact(LANES))
    {
        for lane in 0..LANES {
            sums[lane] += xs[lane] * ys[lane];
        }
    }
    for (i, (a, b)) in x[whole..].iter().zip(&y[whole..]).enumerate() {
        sums[i] += a * b;
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for lane in 0..width {
            sums[lane] += sums[lane + width];
        }
    }
    sums[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn random(shape: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn(shape, (Kind::Float, Device::Cpu))
    }

    fn close(got: &Tensor, want: &Tensor) -> bool {
        if want.numel() == 0 {
            return got.size() == want.size();
        }
        let scale = want.abs().max().double_value(&[]).max(1.0);
        got.size() == want.size() && (got - want).abs().max().double_value(&[]) <= 1e-5 * scale
    }

    /// Runs `check` with libtorch on one thread (where the `gemm` path applies).
    fn on_one_thread<T: Send>(check: impl FnOnce() -> T + Send) -> T {
        crate::on_new_thread(1, check)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn products_match_libtorch(
            m in 0i64..40, k in 0i64..40, n in 0i64..40,
            transpose_a: bool, transpose_b: bool, seed in 0i64..1000,
        ) {
            on_one_thread(|| {
                let a = if transpose_a { random(&[k, m], seed).tr() } else { random(&[m, k], seed) };
                let b = if transpose_b { random(&[n, k], seed + 1).tr() } else { random(&[k, n], seed + 1) };
                prop_assert!(close(&matmul(&a, &b), &a.matmul(&b)));
                prop_assert!(close(&matmul_by_gemm(&a, &b), &a.matmul(&b)));
                let w = random(&[n, k], seed + 2);
                prop_assert!(close(&linear(&a, &w), &a.matmul(&w.tr())));
                let c = random(&[m, n], seed + 3);
                let mut sum = c.copy();
                add_matmul(&mut sum, &a, &b);
                prop_assert!(close(&sum, &(&c + a.matmul(&b))));
                Ok(())
            })?;
        }
    }

    /// The AVX-512 kernels (`tiles`) at shapes that leave partial tiles, panels and blocks
    /// everywhere, with input rows strided inside a larger matrix: the values of libtorch,
    /// through `linear` (`x Wᵀ`), `matmul` (`g W`) and `add_matmul`.
    #[test]
    fn tile_products_match_libtorch_at_awkward_shapes() {
        on_one_thread(|| {
            for (m, k, n) in [
                (17, 1, 1),
                (23, 9, 33),
                (40, 63, 31),
                (100, 800, 65),
                (19, 1537, 40),
                (64, 24, 96),
                (5, 40, 70),
            ] {
                let x = random(&[m + 3, k + 5], 1).narrow(0, 2, m).narrow(1, 1, k);
                let w = random(&[n, k], 2);
                assert!(
                    close(&linear(&x, &w), &x.matmul(&w.tr())),
                    "x Wᵀ at {m} x {k} x {n}"
                );
                let g = random(&[m + 1, n + 2], 3).narrow(0, 1, m).narrow(1, 2, n);
                let w_rows = random(&[n, k + 4], 4).narrow(1, 3, k);
                assert!(
                    close(&matmul(&g, &w_rows), &g.matmul(&w_rows)),
                    "g W at {m} x {n} x {k}"
                );
                let c = random(&[m, k], 5);
                let mut sum = c.copy();
                add_matmul(&mut sum, &g, &w_rows);
                assert!(close(&sum, &(&c + g.matmul(&w_rows))));
                let c = random(&[m, n], 6);
                let mut sum = c.copy();
                add_matmul(&mut sum, &x, &w.tr());
                assert!(close(&sum, &(&c + x.matmul(&w.tr()))));
            }
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A row's product does not depend on the other rows in the product (how many, or
        /// where the row falls in a tile): a slice of the rows gives the same bits.
        #[test]
        fn a_rows_product_does_not_depend_on_the_other_rows(
            m in 17i64..70, skip in 0i64..9, k in 1i64..100, n in 1i64..80, seed in 0i64..1000,
        ) {
            let keep = (m - skip).max(FEW_ROWS + 1);
            let skip = m - keep;
            on_one_thread(|| {
                let x = random(&[m, k], seed);
                let w = random(&[n, k], seed + 1);
                let whole = linear(&x, &w);
                let part = linear(&x.narrow(0, skip, keep), &w);
                prop_assert!(whole.narrow(0, skip, keep).equal(&part));
                let w_rows = random(&[k, n], seed + 2);
                let whole = matmul(&x, &w_rows);
                let part = matmul(&x.narrow(0, skip, keep), &w_rows);
                prop_assert!(whole.narrow(0, skip, keep).equal(&part));
                Ok(())
            })?;
        }
    }

    /// A row slice of a larger matrix and its product, by libtorch.
    fn slice_and_product() -> (Tensor, Tensor, Tensor) {
        let a = random(&[300, 64], 1).narrow(0, 7, 200);
        let b = random(&[64, 96], 2);
        let want = a.matmul(&b);
        (a, b, want)
    }

    #[test]
    fn row_slices_give_the_same_product_on_either_path() {
        // One libtorch thread: `gemm`.
        assert!(on_one_thread(|| {
            let (a, b, want) = slice_and_product();
            takes(&[&a, &b]) && close(&matmul(&a, &b), &want)
        }));
        // Several: libtorch.
        crate::on_new_thread(2, || {
            let (a, b, want) = slice_and_product();
            assert!(!takes(&[&a, &b]));
            assert!(close(&matmul(&a, &b), &want));
        });
    }

    /// An in-place product whose input shares the output's memory is computed into a fresh
    /// tensor first (libtorch's `addmm_` gets it wrong on Intel CPUs), on either path.
    #[test]
    fn aliased_in_place_products_fall_back() {
        for threads in [1, 2] {
            crate::on_new_thread(threads, || {
                for kind in [Kind::Float, Kind::Double] {
                    let a = random(&[100, 100], 1).to_kind(kind);
                    let b = random(&[100, 100], 2).to_kind(kind);
                    let mut c = a.copy();
                    let want = &c + c.matmul(&b);
                    let view = c.shallow_clone();
                    add_matmul(&mut c, &view, &b);
                    let error = (&c - &want).abs().max().double_value(&[]);
                    assert!(error <= 1e-4, "{threads} threads, {kind:?}: off by {error}");
                    assert!(overlaps(&a, &a.narrow(0, 50, 10)));
                    assert!(overlaps(&a, &a.narrow(1, 99, 1)));
                    assert!(!overlaps(&a, &b));
                }
            });
        }
    }

    /// Empty dimensions anywhere, through every entry point.
    #[test]
    fn empty_products_have_the_right_shapes() {
        on_one_thread(|| {
            for (m, k, n) in [(0, 0, 0), (0, 3, 2), (2, 0, 3), (2, 3, 0), (20, 0, 5)] {
                let (a, b) = (random(&[m, k], 1), random(&[k, n], 2));
                assert!(close(&matmul(&a, &b), &a.matmul(&b)));
                let w = random(&[n, k], 3);
                assert!(close(&linear(&a, &w), &a.matmul(&w.tr())));
                let x = random(&[2, m, k], 4);
                assert_eq!(linear(&x, &w).size(), [2, m, n]);
                let mut c = random(&[m, n], 5);
                let want = c.copy();
                add_matmul(&mut c, &a, &b);
                assert!(close(&c, &(&want + a.matmul(&b))));
            }
        });
    }

    /// Few-row products (every entry point, both orientations of the weight) give the same
    /// bits with a helper thread as without, and libtorch's values.
    #[test]
    fn helped_few_row_products_are_identical_to_the_bit() {
        on_one_thread(|| {
            for (m, k, n) in [(1, 64, HELPED_COLUMNS as i64), (7, 96, 1000), (16, 33, 517)] {
                let (x, w) = (random(&[m, k], 1), random(&[n, k], 2));
                let b = random(&[k, n], 3).tr().contiguous().tr();
                let c = random(&[m, n], 4);
                let products = || {
                    let mut sum = c.copy();
                    add_matmul(&mut sum, &x, &w.tr());
                    (linear(&x, &w), matmul(&x, &b), sum, has_product_helper())
                };
                let plain = products();
                let helped = with_product_helper(products);
                assert!(!plain.3 && helped.3 && !has_product_helper());
                assert!(plain.0.equal(&helped.0) && plain.1.equal(&helped.1));
                assert!(plain.2.equal(&helped.2));
                assert!(close(&helped.0, &x.matmul(&w.tr())));
                assert!(close(&helped.1, &x.matmul(&b)));
                assert!(close(&helped.2, &(&c + x.matmul(&w.tr()))));
            }
        });
    }

    /// Blocked products (more rows than few-row products take) split their output columns with
    /// a helper thread: the same bits as without it, and libtorch's values, for float32
    /// weights and for weights of bfloat16 values (on AMX where the CPU has it).
    #[test]
    fn helped_blocked_products_are_identical_to_the_bit() {
        on_one_thread(|| {
            for bf16_valued in [false, true] {
                let weight = |shape: &[i64], seed| {
                    let w = random(shape, seed);
                    if bf16_valued {
                        w.to_kind(Kind::BFloat16).to_kind(Kind::Float)
                    } else {
                        w
                    }
                };
                for (m, k, n) in [(40, 96, 1000), (17, 300, 600), (70, 40, 2050)] {
                    let (x, w) = (random(&[m, k], 1), weight(&[n, k], 2));
                    let b = weight(&[k, n], 3);
                    let products = || (linear(&x, &w), matmul(&x, &b), has_product_helper());
                    let plain = products();
                    let helped = with_product_helper(products);
                    assert!(!plain.2 && helped.2);
                    assert!(plain.0.equal(&helped.0) && plain.1.equal(&helped.1));
                    assert!(close(&helped.0, &x.matmul(&w.tr())));
                    assert!(close(&helped.1, &x.matmul(&b)));
                }
                let w = weight(&[64, 64], 4);
                assert_eq!(amx_products(&w), bf16_valued && amx::available());
            }
        });
    }

    /// A panic in the job stops the helper and continues on the caller; a nested helper
    /// gives back the outer one.
    #[test]
    fn product_helpers_end_with_their_job() {
        on_one_thread(|| {
            let panicked = std::panic::catch_unwind(|| with_product_helper(|| panic!("job")));
            assert!(panicked.is_err());
            assert!(!has_product_helper());
            with_product_helper(|| {
                assert!(with_product_helper(has_product_helper));
                assert!(has_product_helper());
                let (x, w) = (random(&[3, 8], 1), random(&[HELPED_COLUMNS as i64, 8], 2));
                assert!(close(&linear(&x, &w), &x.matmul(&w.tr())));
            });
            assert!(!has_product_helper());
        });
    }

    /// Runs `job` with a helper that takes one share and stops without answering.
    fn with_a_helper_that_quits<T>(job: impl FnOnce() -> T) -> T {
        let (shares_sender, shares) = channel::<HelperShare>();
        let (results_sender, results) = channel::<Vec<f32>>();
        let quitter = std::thread::spawn(move || {
            let _share = shares.recv();
            drop(results_sender);
        });
        HELPER.with(|helper| {
            *helper.borrow_mut() = Some(Helper {
                shares: shares_sender,
                results,
            })
        });
        let result = job();
        HELPER.with(|helper| helper.borrow_mut().take());
        quitter.join().unwrap();
        result
    }

    /// A helper that stops without answering leaves its columns to the calling thread, in
    /// few-row and in blocked products.
    #[test]
    fn a_helper_that_stops_leaves_its_columns_to_the_caller() {
        on_one_thread(|| {
            for (m, k, n) in [(5, 40, HELPED_COLUMNS as i64 + 3), (40, 64, 1000)] {
                let (x, w) = (random(&[m, k], 1), random(&[n, k], 2));
                let want = linear(&x, &w);
                let got = with_a_helper_that_quits(|| linear(&x, &w));
                assert!(got.equal(&want));
            }
        });
    }

    #[test]
    fn other_tensors_fall_back_to_libtorch() {
        on_one_thread(other_tensors_fall_back);
    }

    fn other_tensors_fall_back() {
        let a = random(&[3, 4], 1).to_kind(Kind::Double);
        let b = random(&[4, 2], 2).to_kind(Kind::Double);
        let got = matmul(&a, &b);
        assert_eq!(got.kind(), Kind::Double);
        assert!(close(
            &got.to_kind(Kind::Float),
            &a.matmul(&b).to_kind(Kind::Float)
        ));
        let batched = random(&[2, 3, 4], 3);
        assert_eq!(matmul(&batched, &random(&[4, 5], 4)).size(), [2, 3, 5]);
    }

    /// A half-precision weight makes the product run in its type: float32 out, equal to
    /// libtorch's product of the rounded operands, and not equal to the float32 product
    /// (so the weights' type is what is multiplied).
    #[test]
    fn half_precision_weights_multiply_in_their_type() {
        for threads in [1, 2] {
            crate::on_new_thread(threads, half_precision_products);
        }
    }

    fn half_precision_products() {
        for half in [Kind::BFloat16, Kind::Half] {
            let (x, w) = (random(&[6, 64], 1), random(&[48, 64], 2));
            let w_half = w.to_kind(half);
            let rounded = x.to_kind(half).to_kind(Kind::Float);
            let exact = rounded.matmul(&w_half.to_kind(Kind::Float).tr());
            let got = linear(&x, &w_half);
            assert_eq!(got.kind(), Kind::Float);
            // Products of half-precision values accumulate in float32: within the rounding of
            // the result to the half type.
            let tolerance = if half == Kind::BFloat16 { 2e-2 } else { 2e-3 };
            let scale = exact.abs().max().double_value(&[]);
            let error = (&got - &exact).abs().max().double_value(&[]);
            assert!(error <= tolerance * scale, "{half:?}: {error} of {scale}");
            assert!(
                !got.equal(&x.matmul(&w.tr())),
                "{half:?} computed in float32"
            );
            let by_matmul = matmul(&x, &w_half.tr());
            assert!(by_matmul.equal(&got) || close(&by_matmul, &got));
            let mut accumulated = Tensor::ones([6, 48], (Kind::Float, Device::Cpu));
            add_matmul(&mut accumulated, &x, &w_half.tr());
            assert!(close(&(accumulated - 1.0), &by_matmul));
        }
    }
}
