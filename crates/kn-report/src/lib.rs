//! Reports of knowledge-neuron runs (Dai et al., "Knowledge Neurons in Pretrained
//! Transformers", ACL 2022): [`build_report`] renders a run directory written by the `kn` CLI
//! into a self-contained HTML page and/or a Markdown file with SVG figures, and returns the
//! run's key figures ([`Headline`]). Pure Rust: no libtorch, no model, no system fonts.
//!
//! # Input: a run directory `DIR`
//!
//! | file | written by | needed |
//! |---|---|---|
//! | `config.json` | `kn discover` | required |
//! | `neurons.jsonl` (one fact per line) | `kn discover` | required |
//! | `stats.json`, `relations.json` | `kn discover` (at the end) | optional |
//! | `scores/<fact id, ':' as '_'>.npy` (2-D `<f4`, rows = config layers) | `kn discover` | optional |
//! | `suppression.json` | `kn suppress` | optional |
//! | `activations.json` | `kn activations` | optional |
//! | `edit.json` | `kn edit --facts N --json` (or `--fact`) | optional |
//! | `erase-*.json` | `kn erase --json` | optional, any number |
//!
//! Only the fields used are read; unknown fields are ignored. A malformed or unreadable file
//! that is present is a [`ReportError`] naming it; an absent optional file gives a "not run"
//! note in its section and its key in [`Report::sections_missing`].
//!
//! # Output (default `DIR/report/`)
//!
//! - `report.html`: one page, figures inlined as `<svg>`, a small embedded style sheet, no
//!   script and no external reference;
//! - `report.md` with `figures/*.svg` beside it (written only with Markdown output).
//!
//! Sections: run summary; layer distribution of knowledge neurons (per relation and overall);
//! the heatmap of one fact's attribution scores; suppression and amplification with their
//! controls; T1/T2/T3 activations; fact updates and relation erasure. Every file is written
//! atomically ([`atomic::write_atomically`]).
//!
//! ```no_run
//! use kn_report::{build_report, ReportFormat, ReportOptions};
//! # fn main() -> Result<(), kn_report::ReportError> {
//! let options = ReportOptions { format: ReportFormat::Both, ..ReportOptions::default() };
//! let report = build_report(std::path::Path::new("runs/smollm2"), &options)?;
//! print!("{}", report.headline);
//! println!("written: {:?} {:?}", report.html, report.markdown);
//! # Ok(())
//! # }
//! ```
//!
//! Modules: [`chart`] (the suppression/amplification bar chart), [`terminal`] (the tables the
//! commands print), [`npy`] (the `.npy` reader and writer), [`atomic`] (atomic writes); the
//! rest is private: `input` (the run directory read as kn-schema's types), `analysis` (statistics of neurons.jsonl, computed by kn-select),
//! `figures` and `heatmap` (drawing), `sections` (the report's content), `doc` (HTML and
//! Markdown).
#![warn(missing_docs)]

mod analysis;
/// The project's one atomic writer, re-exported where it always was.
pub use kn_schema::atomic;
/// The project's one `.npy` reader and writer (scores files), re-exported where it always was.
pub use kn_schema::npy;
pub mod chart;
mod doc;
mod error;
mod figures;
mod headline;
mod heatmap;
mod input;
mod sections;
pub mod terminal;

pub use error::ReportError;
pub use headline::{ErasureHeadline, Headline, TripleMeans};

use std::path::{Path, PathBuf};

/// Which files [`build_report`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// `report.html` only (self-contained).
    Html,
    /// `report.md` and `figures/*.svg` only.
    Markdown,
    /// Both.
    #[default]
    Both,
}

impl ReportFormat {
    fn html(self) -> bool {
        matches!(self, ReportFormat::Html | ReportFormat::Both)
    }

    fn markdown(self) -> bool {
        matches!(self, ReportFormat::Markdown | ReportFormat::Both)
    }
}

impl std::str::FromStr for ReportFormat {
    type Err = String;

    /// `html`, `markdown` (or `md`), `both` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "html" => Ok(ReportFormat::Html),
            "markdown" | "md" => Ok(ReportFormat::Markdown),
            "both" => Ok(ReportFormat::Both),
            other => Err(format!(
                "unknown report format {other:?}: use html, markdown or both"
            )),
        }
    }
}

impl std::fmt::Display for ReportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReportFormat::Html => "html",
            ReportFormat::Markdown => "markdown",
            ReportFormat::Both => "both",
        })
    }
}

/// Settings of [`build_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// Which files to write. Default: both.
    pub format: ReportFormat,
    /// Where to write them. Default (`None`): `DIR/report/`. Created if needed.
    pub out_dir: Option<PathBuf>,
    /// The fact whose attribution scores the heatmap shows (e.g. `P36:12`). Default
    /// (`None`): the first fact of neurons.jsonl that has a scores file. A fact not in the run,
    /// or without a scores file, is an error.
    pub fact: Option<String>,
    /// Neurons per layer in the heatmap (its columns). Default 20; at least 1.
    pub top_k: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            format: ReportFormat::Both,
            out_dir: None,
            fact: None,
            top_k: 20,
        }
    }
}

/// What [`build_report`] wrote and found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `report.html`, when written.
    pub html: Option<PathBuf>,
    /// `report.md`, when written.
    pub markdown: Option<PathBuf>,
    /// The SVG files written beside the Markdown (`figures/*.svg`; empty for HTML only).
    pub figures: Vec<PathBuf>,
    /// The run's key figures.
    pub headline: Headline,
    /// Sections whose input was absent, by key: `stats` (stats.json), `relations`
    /// (relations.json), `heatmap` (scores/*.npy), `suppression`, `activations`, `edit`,
    /// `erase` (erase-*.json).
    pub sections_missing: Vec<String>,
}

/// Reads the run in `dir`, renders the report and writes it (see the crate docs).
pub fn build_report(dir: &Path, options: &ReportOptions) -> Result<Report, ReportError> {
    if options.top_k == 0 {
        return Err(ReportError::Option("top_k must be at least 1".into()));
    }
    let run = input::RunData::load(dir)?;
    let built = sections::build(&run, options)?;
    let out_dir = options
        .out_dir
        .clone()
        .unwrap_or_else(|| dir.join("report"));
    create_dir(&out_dir)?;
    let write = |path: &Path, bytes: &[u8]| {
        atomic::write_atomically(path, bytes).map_err(|source| ReportError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
    };
    let mut report = Report {
        html: None,
        markdown: None,
        figures: Vec::new(),
        headline: built.headline,
        sections_missing: built.missing,
    };
    if options.format.markdown() {
        let figures_dir = out_dir.join("figures");
        create_dir(&figures_dir)?;
        for figure in built.document.figures() {
            let path = figures_dir.join(&figure.file);
            write(&path, figure.svg.as_bytes())?;
            report.figures.push(path);
        }
        let path = out_dir.join("report.md");
        write(&path, doc::render_markdown(&built.document).as_bytes())?;
        report.markdown = Some(path);
    }
    if options.format.html() {
        let path = out_dir.join("report.html");
        write(&path, doc::render_html(&built.document).as_bytes())?;
        report.html = Some(path);
    }
    Ok(report)
}

/// The key figures of the run in `dir`, without drawing or writing anything.
pub fn read_headline(dir: &Path) -> Result<Headline, ReportError> {
    let run = input::RunData::load(dir)?;
    let analysis = analysis::Analysis::of(&run.facts, &run.layers());
    Ok(Headline::of(&run, &analysis))
}

fn create_dir(path: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(path).map_err(|source| ReportError::Io {
        action: "create",
        path: path.to_path_buf(),
        source,
    })
}
