//! The terminal table of the suppression/amplification experiment (`kn suppress`).

use super::pct;
use kn_schema::report::suppression::{ChangeSummary, ExperimentReport, GroupReport, OpEffects};

/// A table cell: the paper's ratio of means / the mean of per-prompt relative changes.
fn cell(summary: &ChangeSummary) -> String {
    if summary.prompts == 0 {
        return "-".into();
    }
    format!(
        "{} / {}",
        pct(summary.change_pct),
        pct(summary.mean_relative_change_pct)
    )
}

fn group_rows(name: &str, group: &GroupReport, out: &mut String) {
    let c = &group.conditions;
    out.push_str(&format!(
        "{name}: {} facts ({} without neurons), {} prompts\n",
        group.facts, group.facts_without_neurons, group.prompts
    ));
    for (op, pick) in [("suppress", 0usize), ("amplify", 1)] {
        let get = |effects: &OpEffects| {
            if pick == 0 {
                effects.suppress.clone()
            } else {
                effects.amplify.clone()
            }
        };
        out.push_str(&format!(
            "  {op:<9} {:>22} {:>22} {:>22} {:>22}\n",
            cell(&get(&c.own)),
            cell(&get(&c.random)),
            cell(&get(&c.other_relations)),
            cell(&get(&c.activation_baseline))
        ));
    }
}

/// The per-relation table `kn suppress` prints without `--json`.
pub fn suppression_table(report: &ExperimentReport) -> String {
    let mut out = String::new();
    out.push_str("Change of the correct answer's probability; each cell: ratio of means (the paper's) / mean of per-prompt changes\n");
    out.push_str(&format!(
        "  {:<9} {:>22} {:>22} {:>22} {:>22}\n",
        "", "knowledge neurons", "random neurons", "other relations", "activation baseline"
    ));
    for (relation, group) in &report.relations {
        group_rows(relation, group, &mut out);
    }
    group_rows("all", &report.overall, &mut out);
    out
}
