//! The terminal table of an update sweep (`kn edit --facts N --sweep ...`).

use super::edit::num;
use super::pct;
use crate::headline::rate as share;
use kn_schema::report::sweep::SweepOutput;

/// The table `kn edit --sweep` prints without `--json`.
pub fn sweep_table(output: &SweepOutput) -> String {
    let facts = output
        .points
        .first()
        .map_or(0, |p| p.aggregate.facts + p.skipped);
    let mut out = format!(
        "update sweep: {facts} facts ({} requested), λ1 {}; success = new answer top-1 on the located prompts, damage = other relations' prompts whose top-1 changed (means over facts)\n",
        output.requested, output.given.lambda_remove
    );
    out.push_str(&format!(
        "  {:>8} {:>11} {:>9} {:>6} {:>9} {:>10} {:>9} {:>16} {:>16}\n",
        "λ2",
        "scaling",
        "shared ≤",
        "facts",
        "success",
        "generality",
        "damage",
        "ppl same (med.)",
        "ppl other (med.)"
    ));
    for p in &output.points {
        let c = &p.config;
        out.push_str(&format!(
            "  {:>8} {:>11} {:>9} {:>6} {:>9} {:>10} {:>9} {:>16} {:>16}\n",
            num(Some(c.lambda_add)),
            if c.scale_by_norm { "norm" } else { "none" },
            num(Some(c.shared_threshold)),
            p.aggregate.facts,
            share(p.success()),
            share(p.aggregate.checks.generality),
            share(p.damage()),
            pct(p.median_perplexity_change_pct.same_relation),
            pct(p.median_perplexity_change_pct.other_relations),
        ));
    }
    out.push_str(&format!(
        "  the given update (λ2 {}, {}) split by layer:\n",
        num(Some(output.given.lambda_add)),
        if output.given.scale_by_norm {
            "norm-scaled"
        } else {
            "unscaled"
        }
    ));
    out.push_str(&format!(
        "  {:>6} {:>6} {:>8} {:>15} {:>9} {:>9} {:>17}\n",
        "layer", "facts", "neurons", "cross-relation", "success", "damage", "ppl other (med.)"
    ));
    for l in &output.damage_by_layer {
        out.push_str(&format!(
            "  {:>6} {:>6} {:>8} {:>15} {:>9} {:>9} {:>17}\n",
            l.layer,
            l.facts,
            l.neurons,
            l.cross_relation_neurons,
            share(l.success),
            share(l.locality.other_relations.map(|kept| 1.0 - kept)),
            pct(l.median_perplexity_change_pct.other_relations),
        ));
    }
    out
}
