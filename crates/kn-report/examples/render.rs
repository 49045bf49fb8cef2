//! Renders a run directory: `cargo run -p kn-report --example render -- DIR [OUT] [FACT]`.
//! Prints the headline, what was written and which sections had no input.

use kn_report::{build_report, ReportOptions};
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: render DIR [OUT] [FACT]");
        std::process::exit(2);
    };
    let options = ReportOptions {
        out_dir: args.next().map(PathBuf::from),
        fact: args.next(),
        ..ReportOptions::default()
    };
    match build_report(&dir, &options) {
        Ok(report) => {
            print!("{}", report.headline);
            println!("html: {:?}\nmarkdown: {:?}", report.html, report.markdown);
            println!("figures: {}", report.figures.len());
            println!("sections missing: {}", report.sections_missing.join(", "));
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}
