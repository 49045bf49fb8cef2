//! The numerical kernels of the knowledge-neurons toolkit: the matrix products of attribution's
//! passes (few-row streaming, AVX-512 tiles, the `gemm` crate, the helper thread that lends a
//! lone pass the idle core, half-precision products), the fused SwiGLU and RMSNorm-gradient
//! passes, and the per-thread libtorch thread count they depend on.
//!
//! Every `unsafe` block of the numerical code sits in this crate, each with the invariant it
//! relies on; the model (`kn-model`) and attribution (`kn-attribution`) crates call these safe
//! functions. Each kernel takes float32 CPU tensors it can compute on (see each module) and
//! hands anything else (CUDA, other kinds, tensors in an autograd graph) to libtorch, so a
//! caller never has to choose; results differ from libtorch's by float rounding only, as the
//! tests beside each kernel check.
#![warn(missing_docs)]

pub mod matmul;
pub mod rms_norm;
pub mod slices;
pub mod swiglu;
pub mod threads;

pub use threads::{on_new_thread, set_threads};
