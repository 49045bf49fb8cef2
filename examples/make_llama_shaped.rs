//! Writes (or reuses) a random-weight checkpoint shaped like a Llama model researchers study,
//! as real ones ship (bfloat16 shards + index, transformers 4.x config): see
//! `benches/support/llama_shaped.rs`.
//!
//! ```sh
//! cargo run --release --example make_llama_shaped -- llama-3.2-1b [DIR]
//! cargo run --release --example make_llama_shaped -- llama-3-8b [DIR]
//! ```
//!
//! `DIR` defaults to `<cache>/bench/<shape>-shaped`. Prints the directory on stdout.

#[path = "../benches/support/llama_shaped.rs"]
mod llama_shaped;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let Some(shape) = llama_shaped::Shape::named(&name) else {
        let names: Vec<&str> = llama_shaped::SHAPES.iter().map(|s| s.name).collect();
        eprintln!(
            "usage: make_llama_shaped SHAPE [DIR]  (SHAPE: {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| shape.default_dir());
    let started = std::time::Instant::now();
    match shape.ensure(&dir) {
        Ok(written) => {
            if written {
                eprintln!(
                    "make_llama_shaped: wrote {} in {:.1} s",
                    dir.display(),
                    started.elapsed().as_secs_f64()
                );
            } else {
                eprintln!("make_llama_shaped: reusing {}", dir.display());
            }
            println!("{}", dir.display());
        }
        Err(e) => {
            eprintln!("make_llama_shaped: error: {e}");
            std::process::exit(1);
        }
    }
}
