//! The terminal table of a relation erasure (`kn erase`).

use super::edit::num;
use super::pct;
use kn_schema::report::erase::{EraseOutput, ErasureChecks, QualityChange};

fn rows(name: &str, q: &QualityChange) -> String {
    let opt = num;
    let num = |v: f64| num(Some(v));
    format!(
        "  {name:<18} {:>7} {:>9.3} {:>9.3} {:>11} {:>11} {:>10} | {:>9} {:>11} {:>10}\n",
        q.prompts,
        q.accuracy_before,
        q.accuracy_after,
        num(q.perplexity_before),
        num(q.perplexity_after),
        pct(q.perplexity_change_pct),
        opt(q.random_accuracy),
        opt(q.random_perplexity),
        pct(q.random_perplexity_change_pct)
    )
}

/// The table line of an erasure's checks (forgetting on located and held-out prompts,
/// locality on the other relations).
fn checks_row(name: &str, c: &ErasureChecks) -> String {
    format!(
        "  {name}: forgetting {} of {} located prompts answered before, {} of {} held-out prompts answered before (of {}); locality (other relations) {}\n",
        num(c.reliability),
        c.reliability_prompts,
        num(c.generality),
        c.generality_prompts,
        c.held_out_prompts,
        num(c.locality.other_relations),
    )
}

/// The table `kn erase` prints without `--json`.
pub fn erasure_table(output: &EraseOutput) -> String {
    let e = &output.evaluation;
    let mut out = format!(
        "erased {}: {} neurons (of {} counted over {} facts) set to {}\n",
        e.relation,
        e.neurons.len(),
        output.neurons_counted,
        output.relation_facts,
        e.token_text
            .as_ref()
            .map(|t| format!("the embedding of {t:?}"))
            .unwrap_or_else(|| "zeros".into())
    );
    out.push_str(&format!(
        "  {:<18} {:>7} {:>9} {:>9} {:>11} {:>11} {:>10} | {:>9} {:>11} {:>10}\n",
        "prompts",
        "n",
        "acc bef.",
        "acc aft.",
        "ppl bef.",
        "ppl aft.",
        "ppl chg.",
        "rnd acc",
        "rnd ppl",
        "rnd chg."
    ));
    out.push_str(&rows(
        &format!("{} (erased)", e.relation),
        &output.summary.erased_relation,
    ));
    if let Some(other) = &output.summary.other_relations {
        out.push_str(&rows("other relations", other));
    }
    out.push_str(&checks_row("checks", &e.checks));
    if let Some(random) = &e.random_checks {
        out.push_str(&checks_row("random control", random));
    }
    out.push_str(&format!(
        "  weights restored: {}\n",
        if output.weights_restored { "yes" } else { "NO" }
    ));
    out
}
