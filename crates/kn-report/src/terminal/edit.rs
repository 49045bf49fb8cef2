//! The terminal tables of fact updates (`kn edit`).

use super::pct;
use kn_schema::report::edit::{
    EditChecks, FactEdit, MeanMetrics, PerplexityChange, SampleOutput, UpdateMetrics,
};

/// The table line of an update's perplexity changes.
fn perplexity_row(change: &PerplexityChange) -> String {
    format!(
        "  perplexity change: same relation {}, other relations {} (random control {}, {})\n",
        pct(change.same_relation),
        pct(change.other_relations),
        pct(change.random_same_relation),
        pct(change.random_other_relations)
    )
}

/// The table line of an update's checks (reliability, generality, locality, symmetry).
pub(crate) fn checks_row(checks: &EditChecks) -> String {
    let symmetry = match checks.symmetry {
        Some(after) => format!(
            "{} (before {})",
            num(Some(after)),
            num(checks.symmetry_before)
        ),
        None => "n/a (not a symmetric relation)".into(),
    };
    format!(
        "  checks: reliability {}, generality {} ({} held-out prompts), locality {} same relation / {} other relations, symmetry {symmetry}\n",
        num(checks.reliability),
        num(checks.generality),
        checks.generality_prompts,
        num(checks.locality.same_relation),
        num(checks.locality.other_relations),
    )
}

/// A table number: 3 decimals, scientific notation from 100000 on, `-` when absent.
pub(crate) fn num(value: Option<f64>) -> String {
    match value {
        Some(v) if v.abs() >= 1e5 => format!("{v:.3e}"),
        Some(v) => format!("{v:.3}"),
        None => "-".into(),
    }
}

/// Reads one metric of [`MeanMetrics`].
type MetricOf = fn(&MeanMetrics) -> Option<f64>;

/// Rows of metrics: name, before, after, random control.
fn metric_rows(before: &MeanMetrics, after: &MeanMetrics, random: Option<&MeanMetrics>) -> String {
    let mut out = format!(
        "  {:<28} {:>10} {:>10} {:>14}\n",
        "", "before", "after", "random ctrl"
    );
    let rows: [(&str, MetricOf); 8] = [
        ("success rate (new top-1)", |m| m.success_rate),
        ("change rate (old not top-1)", |m| m.change_rate),
        ("top-5 rate of new", |m| m.top5_rate),
        ("MRR of new", |m| m.mrr),
        ("p(old answer)", |m| m.mean_old_prob),
        ("p(new answer)", |m| m.mean_new_prob),
        ("perplexity, same relation", |m| m.same_relation_perplexity),
        ("perplexity, other relations", |m| {
            m.other_relations_perplexity
        }),
    ];
    for (name, get) in rows {
        out.push_str(&format!(
            "  {name:<28} {:>10} {:>10} {:>14}\n",
            num(get(before)),
            num(get(after)),
            num(random.and_then(get))
        ));
    }
    out
}

/// The table `kn edit --fact` prints without `--json`.
pub fn fact_edit_table(edit: &FactEdit) -> String {
    let e = &edit.evaluation;
    let one = |m: &UpdateMetrics| MeanMetrics::of(std::iter::once(m));
    let mut out = format!(
        "{} ({}): {} {:?} -> {:?}; {} neurons edited, {} shared left out (threshold {:.3})\n",
        e.fact,
        e.relation,
        edit.subject,
        e.old_text,
        e.new_text,
        e.neurons.len(),
        e.excluded.len(),
        edit.shared_threshold_used
    );
    out.push_str(&metric_rows(
        &one(&e.before),
        &one(&e.after),
        e.random_control.as_ref().map(one).as_ref(),
    ));
    out.push_str(&perplexity_row(&edit.perplexity_change_pct));
    out.push_str(&checks_row(&e.checks));
    out.push_str(&format!(
        "  weights restored: {}{}\n",
        if edit.weights_restored { "yes" } else { "NO" },
        edit.patch
            .as_ref()
            .map(|p| format!("; patch saved to {p}"))
            .unwrap_or_default()
    ));
    out
}

/// The table `kn edit --facts N` prints without `--json`.
pub fn sample_edit_table(output: &SampleOutput) -> String {
    let a = &output.aggregate;
    let mut out = format!(
        "{} facts updated ({} requested, {} skipped), {} prompts; means over facts\n",
        a.facts,
        output.requested,
        output.skipped.len(),
        a.prompts
    );
    out.push_str(&metric_rows(&a.before, &a.after, a.random_control.as_ref()));
    out.push_str(&perplexity_row(&a.perplexity_change_pct));
    out.push_str(&checks_row(&a.checks));
    out
}
