//! `kn report DIR`: render a run directory (kn discover's outputs plus whatever of suppress,
//! activations, edit and erase was run into it) as a self-contained HTML and/or Markdown report
//! with SVG figures (crate `kn-report`), then print where it is and the headline figures.

use crate::exit::CliError;
use kn_report::{build_report, ReportFormat, ReportOptions};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `kn report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run directory (a `kn discover` output: config.json and neurons.jsonl; suppression.json,
    /// activations.json, edit.json, edit-sweep.json and erase-*.json are used when present).
    dir: PathBuf,
    /// What to write: html, markdown or both.
    #[arg(long, default_value = "both")]
    format: ReportFormat,
    /// Where to write the report (default: DIR/report).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The fact whose attribution heatmap is drawn, e.g. P36:12 (default: the first fact with a
    /// saved score matrix, see `kn discover --save-scores`).
    #[arg(long)]
    fact: Option<String>,
    /// Neurons per layer in the heatmap (the layer's top neurons by attribution).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Print one JSON object (paths, headline figures, missing sections) instead of text.
    #[arg(long)]
    json: bool,
}

/// What `kn report --json` prints.
#[derive(Debug, Serialize)]
struct ReportOutput<'a> {
    html: Option<String>,
    markdown: Option<String>,
    figures: Vec<String>,
    sections_missing: &'a [String],
    headline: &'a kn_report::Headline,
}

/// Runs `kn report`.
pub fn run(args: ReportArgs) -> Result<(), CliError> {
    let options = ReportOptions {
        format: args.format,
        out_dir: args.out.clone(),
        fact: args.fact.clone(),
        top_k: args.top,
    };
    // The report goes into the run directory unless --out says otherwise; a missing run
    // directory is left to build_report's message rather than created here.
    let _lock = match (&args.out, args.dir.is_dir()) {
        (Some(out), _) => Some(kn_run::prepare_run_dir(
            out,
            "kn report",
            kn_schema::Access::Shared,
        )?),
        (None, true) => Some(kn_run::prepare_run_dir(
            &args.dir,
            "kn report",
            kn_schema::Access::Shared,
        )?),
        (None, false) => None,
    };
    let started = std::time::Instant::now();
    let report = build_report(&args.dir, &options)?;
    crate::log::progress(
        "report",
        format!("written in {:.1} s", started.elapsed().as_secs_f64()),
    );
    let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    if args.json {
        let output = ReportOutput {
            html: show(&report.html),
            markdown: show(&report.markdown),
            figures: report
                .figures
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            sections_missing: &report.sections_missing,
            headline: &report.headline,
        };
        println!(
            "{}",
            serde_json::to_string(&output).map_err(|e| CliError::Internal(e.to_string()))?
        );
        return Ok(());
    }
    for (label, path) in [
        ("HTML", show(&report.html)),
        ("Markdown", show(&report.markdown)),
    ] {
        if let Some(path) = path {
            println!("Report ({label}): {path}");
        }
    }
    if !report.sections_missing.is_empty() {
        println!("Sections not run: {}", report.sections_missing.join(", "));
    }
    println!("{}", report.headline);
    Ok(())
}
