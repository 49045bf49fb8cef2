//! Writes (or reuses) the random-weight BERT-base model the benchmarks use.
//!
//! ```sh
//! cargo run --release --example make_random_bert -- [DIR]
//! ```
//!
//! `DIR` defaults to `$KN_RANDOM_BERT_DIR`, else `<model cache>/bench/bert-base-cased-random`.
//! Prints the directory on stdout (logs on stderr). The generator itself lives in
//! `benches/support/random_bert.rs`, shared with `benches/attribution.rs`.

#[path = "../benches/support/random_bert.rs"]
mod random_bert;

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(random_bert::default_dir);
    let started = std::time::Instant::now();
    match random_bert::ensure(&dir) {
        Ok(written) => {
            if written {
                eprintln!(
                    "make_random_bert: wrote {} in {:.1} s",
                    dir.display(),
                    started.elapsed().as_secs_f64()
                );
            } else {
                eprintln!("make_random_bert: reusing {}", dir.display());
            }
            println!("{}", dir.display());
        }
        Err(e) => {
            eprintln!("make_random_bert: error: {e}");
            std::process::exit(1);
        }
    }
}
