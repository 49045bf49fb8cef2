//! Shared build script of every workspace crate that links libtorch.
//!
//! torch-sys finds libtorch through the `LIBTORCH` variable (set for cargo by
//! `.cargo/config.toml`, so nobody has to export it) but does not record where the libraries
//! are, so binaries, tests, benches and examples would need `LD_LIBRARY_PATH` at run time.
//! This script bakes an rpath into them instead. It is a build script rather than a
//! `rustflags` entry because a user's `RUSTFLAGS` variable replaces config rustflags.
//!
//! With a CUDA libtorch (`KN_TORCH_CUDA=1 scripts/setup-libtorch.sh`), `libtorch_cuda.so` is
//! linked with `--no-as-needed`: no symbol of it is called directly (CUDA kernels register
//! themselves when it loads), so the linker's default `--as-needed` would drop it and
//! `--device cuda` would find no CUDA backend.
//!
//! The Python extension (`kn-python`) gets `$ORIGIN/../torch/lib` first: installed in
//! `site-packages/knowledge_neurons/`, it then resolves libtorch to the torch package beside
//! it (the one Python has loaded already), never to a second copy.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("kn-python") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
    }
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rerun-if-changed={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-L{}", lib.display());
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
