//! The tables `kn` prints on the terminal for each experiment (without `--json`), from the
//! same report types the files hold. Plain text; the CLI escapes control characters before
//! printing.

mod activations;
mod edit;
mod erase;
mod suppression;
mod sweep;

pub use activations::activation_table;
pub use edit::{fact_edit_table, sample_edit_table};
pub use erase::erasure_table;
pub use suppression::suppression_table;
pub use sweep::sweep_table;

/// A percentage for tables: `+12.34%`, `+5.31e33%` from 100000 on, or `-` when absent.
pub fn pct(value: Option<f64>) -> String {
    match value {
        Some(v) if v.abs() >= 1e5 => format!("{v:+.2e}%"),
        Some(v) => format!("{v:+.2}%"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(pct(Some(-29.034)), "-29.03%");
        assert_eq!(pct(None), "-");
        assert_eq!(pct(Some(5.31e33)), "+5.31e33%");
    }
}
