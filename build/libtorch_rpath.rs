//! Shared build script of every workspace crate that links libtorch.
//!
//! torch-sys finds libtorch through the `LIBTORCH` variable (set for cargo by
//! `.cargo/config.toml`, so nobody has to export it) but does not record where the libraries
//! are, so binaries, tests, benches and examples would need `LD_LIBRARY_PATH` at run time.
//! This script bakes an rpath into them instead. It is a build script rather than a
//! `rustflags` entry because a user's `RUSTFLAGS` variable replaces config rustflags.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
