//! The terminal table of the activation experiment (`kn activations`).

use kn_schema::report::activations::{ActivationReport, FactSkips, GroupReport, SentenceCounts};
use kn_schema::report::stats::{Paired, SentenceKind, Summary, Triple};

fn cell(summary: &Summary) -> String {
    match (summary.mean, summary.se) {
        (Some(mean), Some(se)) => format!("{mean:+.4} ± {se:.4}"),
        (Some(mean), None) => format!("{mean:+.4}"),
        _ => "-".into(),
    }
}

fn row(
    label: &str,
    facts: &str,
    neurons: &str,
    t: &Triple<Summary>,
    prompts: Option<&Summary>,
) -> String {
    let prompts = prompts.map(cell).unwrap_or_else(|| "-".into());
    format!(
        "{label:<10} {facts:>5}  {neurons:<17} {:>20} {:>20} {:>20} {:>20}\n",
        cell(&t.t1),
        cell(&t.t2),
        cell(&t.t3),
        prompts
    )
}

fn rows(name: &str, group: &GroupReport, out: &mut String) {
    let aligned = group.aligned.as_ref();
    let on_prompts = aligned.map(|a| &a.knowledge_on_prompts);
    out.push_str(&row(
        name,
        &group.facts.to_string(),
        "knowledge",
        &group.knowledge,
        on_prompts,
    ));
    if let Some(random) = &group.random {
        out.push_str(&row(
            "",
            "",
            "random",
            random,
            aligned.and_then(|a| a.random_on_prompts.as_ref()),
        ));
    }
    if let Some(a) = aligned {
        out.push_str(&row(
            "",
            &a.facts.to_string(),
            "knowledge aligned",
            &a.knowledge,
            Some(&a.knowledge_prompts),
        ));
        if let Some(random) = &a.random {
            out.push_str(&row(
                "",
                "",
                "random aligned",
                random,
                a.random_prompts.as_ref(),
            ));
        }
    }
}

fn skips(skipped: &FactSkips) -> String {
    let parts = [
        ("no neurons", skipped.no_neurons),
        ("no bag", skipped.no_bag),
        ("empty head+tail bag", skipped.empty_th_bag),
        ("empty head-only bag", skipped.empty_h_bag),
        ("no T1 sentence", skipped.no_t1_sentence),
        ("no T2 sentence", skipped.no_t2_sentence),
        ("no T3 sentence", skipped.no_t3_sentence),
    ];
    let listed: Vec<String> = parts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect();
    if listed.is_empty() {
        "none".into()
    } else {
        listed.join(", ")
    }
}

fn sentences(kind: SentenceKind, c: &SentenceCounts) -> String {
    format!(
        "{kind:?}: {} of {} evaluated (target not found {}, no context {}, too long {}, unencodable {}, fact skipped {})",
        c.evaluated, c.sentences, c.target_missing, c.no_context, c.too_long, c.unencodable, c.fact_skipped
    )
}

/// The summary table printed on stdout.
pub fn activation_table(report: &ActivationReport) -> String {
    let mut out = String::new();
    out.push_str("Mean FFN activation at the hidden position (mean over facts ± standard error)\n");
    out.push_str(
        "\"aligned\": each neuron's activation times the sign of its mean on the fact's own prompts \
         (last column: the activation on those prompts)\n",
    );
    out.push_str(&format!(
        "{:<10} {:>5}  {:<17} {:>20} {:>20} {:>20} {:>20}\n",
        "relation", "facts", "neurons", "T1 head+tail", "T2 head only", "T3 random", "own prompts"
    ));
    let mut relations: Vec<(&String, &GroupReport)> = report.relations.iter().collect();
    relations.sort_by(|a, b| kn_select::compare_relations(a.0, b.0));
    for (relation, group) in relations {
        rows(relation, group, &mut out);
    }
    rows("overall", &report.overall, &mut out);
    let m = &report.mean_of_relations;
    let fmt = |v: &Option<f64>| v.map(|v| format!("{v:+.4}")).unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "mean of {} relation means (the paper's aggregation): knowledge T1 {} T2 {} T3 {}",
        m.relations,
        fmt(&m.knowledge.t1),
        fmt(&m.knowledge.t2),
        fmt(&m.knowledge.t3)
    ));
    if let Some(r) = &m.random {
        out.push_str(&format!(
            "; random T1 {} T2 {} T3 {}",
            fmt(&r.t1),
            fmt(&r.t2),
            fmt(&r.t3)
        ));
    }
    out.push('\n');
    let paired = |label: &str, p: &Paired| {
        format!(
            "{label}: T1-T2 {}, T1-T3 {}, T2-T3 {}",
            cell(&p.t1_minus_t2),
            cell(&p.t1_minus_t3),
            cell(&p.t2_minus_t3)
        )
    };
    out.push_str(&format!(
        "paired differences over facts, {}",
        paired("knowledge", &report.overall.knowledge_paired)
    ));
    if let Some(a) = &report.overall.aligned {
        out.push_str(&format!(
            "; {}",
            paired("knowledge aligned", &a.knowledge_paired)
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "skipped facts: {}\n",
        skips(&report.overall.skipped)
    ));
    for kind in SentenceKind::ALL {
        out.push_str(&format!(
            "sentences {}\n",
            sentences(kind, report.overall.sentences.get(kind))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_skips_read_well() {
        assert_eq!(
            cell(&Summary {
                n: 3,
                mean: Some(0.5),
                se: Some(0.01)
            }),
            "+0.5000 ± 0.0100"
        );
        assert_eq!(
            cell(&Summary {
                n: 1,
                mean: Some(-0.5),
                se: None
            }),
            "-0.5000"
        );
        assert_eq!(cell(&Summary::default()), "-");
        assert_eq!(skips(&FactSkips::default()), "none");
        assert_eq!(
            skips(&FactSkips {
                empty_th_bag: 2,
                no_neurons: 1,
                ..FactSkips::default()
            }),
            "no neurons 1, empty head+tail bag 2"
        );
    }
}
