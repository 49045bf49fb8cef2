//! The headline: the run's key figures in one serializable value ([`Headline`]), printable as
//! a few lines of text (its `Display`). Everything an optional input provides is an `Option`
//! (or an empty list) when that input is absent.

use crate::analysis::Analysis;
use crate::figures::format_value;
use crate::input::{ActivationGroup, MeanSe, RunData, Triple};
use serde::Serialize;
use std::fmt;

/// Mean values for the three sentence kinds of the activation experiment.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TripleMeans {
    /// T1: head+tail sentences, tail hidden.
    pub t1: Option<f64>,
    /// T2: head-only sentences, a random non-head word hidden.
    pub t2: Option<f64>,
    /// T3: random sentences of other facts.
    pub t3: Option<f64>,
}

impl TripleMeans {
    pub(crate) fn of(triple: &Triple<MeanSe>) -> Self {
        Self {
            t1: triple.t1.mean,
            t2: triple.t2.mean,
            t3: triple.t3.mean,
        }
    }
}

/// The key figures of one erasure (one `erase-*.json`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ErasureHeadline {
    /// The file it comes from.
    pub file: String,
    /// The relation erased.
    pub relation: String,
    /// Accuracy (answer top-1) on the erased relation's prompts before the erasure.
    pub accuracy_before: Option<f64>,
    /// The same after it.
    pub accuracy_after: Option<f64>,
    /// The same after erasing as many random neurons instead.
    pub random_accuracy: Option<f64>,
    /// Accuracy on the other relations' prompts before.
    pub other_accuracy_before: Option<f64>,
    /// The same after.
    pub other_accuracy_after: Option<f64>,
}

/// The key figures of a run.
///
/// Discovery numbers are computed from neurons.jsonl (each fact's refined neurons as a set),
/// so they are always present and agree with the figures; with `kn discover --adaptive`,
/// stats.json summarizes other (per-relation adapted) shares and the report shows both.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Headline {
    /// The model: architecture and source file name.
    pub model: String,
    /// Facts in neurons.jsonl.
    pub facts: usize,
    /// Relations with facts.
    pub relations: usize,
    /// Mean refined knowledge neurons per fact.
    pub neurons_per_fact: f64,
    /// Facts without any knowledge neuron.
    pub facts_without_neurons: usize,
    /// Mean neurons shared by two facts of the same relation (`None`: no such pair).
    pub intra_relation_shared: Option<f64>,
    /// Mean neurons shared by two facts of different relations (`None`: no such pair).
    pub inter_relation_shared: Option<f64>,
    /// The top 10% of the attributed layers (at least one), ascending.
    pub top_layers: Vec<usize>,
    /// Share of knowledge-neuron memberships in `top_layers` (`None` without neurons).
    pub top_layers_share: Option<f64>,
    /// The layer holding the most knowledge neurons.
    pub peak_layer: Option<usize>,
    /// Suppressing the knowledge neurons: change of the correct answer's probability (%), all
    /// facts, the paper's ratio of means (kn suppress).
    pub suppress_change_pct: Option<f64>,
    /// Amplifying them, the same measure.
    pub amplify_change_pct: Option<f64>,
    /// Suppressing random neurons of the same layers (control).
    pub random_suppress_change_pct: Option<f64>,
    /// Amplifying random neurons (control).
    pub random_amplify_change_pct: Option<f64>,
    /// Mean activation of the knowledge neurons on T1/T2/T3 sentences, all facts (kn
    /// activations).
    pub activation_knowledge: Option<TripleMeans>,
    /// The same for random neurons.
    pub activation_random: Option<TripleMeans>,
    /// Sign-aligned mean activation of the knowledge neurons (gated FFNs), when measured.
    pub activation_aligned_knowledge: Option<TripleMeans>,
    /// The same for random neurons.
    pub activation_aligned_random: Option<TripleMeans>,
    /// Facts updated by kn edit.
    pub edit_facts: Option<usize>,
    /// Success rate of the update (new answer top-1), after the edit.
    pub edit_success_rate: Option<f64>,
    /// The same before the edit.
    pub edit_success_rate_before: Option<f64>,
    /// The same after the edit of random neurons instead (control).
    pub edit_success_rate_random: Option<f64>,
    /// One entry per erase-*.json, by file name.
    pub erasures: Vec<ErasureHeadline>,
}

impl Headline {
    /// The headline of a loaded run.
    pub(crate) fn of(run: &RunData, analysis: &Analysis) -> Self {
        let counts = &analysis.summary.neurons_per_fact;
        let sharing = &analysis.summary.sharing;
        let histogram = &analysis.histogram;
        let (top_layers, top_layers_share) = histogram.top_layers_share();
        let model = &run.config.model;
        let source = std::path::Path::new(&model.source)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let model = match (model.architecture.is_empty(), source.is_empty()) {
            (false, false) => format!("{} ({source})", model.architecture),
            (false, true) => model.architecture.clone(),
            (true, false) => source,
            (true, true) => "unknown model".into(),
        };
        let mut headline = Self {
            model,
            facts: counts.facts,
            relations: analysis.summary.relations,
            neurons_per_fact: counts.mean,
            facts_without_neurons: counts.facts_without_neurons(),
            intra_relation_shared: sharing.intra.mean,
            inter_relation_shared: sharing.inter.mean,
            top_layers,
            top_layers_share,
            peak_layer: histogram.peak_layer(),
            ..Self::default()
        };
        if let Some(s) = &run.suppression {
            let c = &s.report.overall.conditions;
            headline.suppress_change_pct = c.own.suppress.change_pct;
            headline.amplify_change_pct = c.own.amplify.change_pct;
            headline.random_suppress_change_pct = c.random.suppress.change_pct;
            headline.random_amplify_change_pct = c.random.amplify.change_pct;
        }
        if let Some(a) = &run.activations {
            let overall: &ActivationGroup = &a.report.overall;
            headline.activation_knowledge = Some(TripleMeans::of(&overall.knowledge));
            headline.activation_random = overall.random.as_ref().map(TripleMeans::of);
            if let Some(aligned) = &overall.aligned {
                headline.activation_aligned_knowledge = Some(TripleMeans::of(&aligned.knowledge));
                headline.activation_aligned_random = aligned.random.as_ref().map(TripleMeans::of);
            }
        }
        if let Some(e) = &run.edit {
            headline.edit_facts = Some(e.facts);
            headline.edit_success_rate = e.after.success_rate;
            headline.edit_success_rate_before = e.before.success_rate;
            headline.edit_success_rate_random =
                e.random_control.as_ref().and_then(|r| r.success_rate);
        }
        headline.erasures = run
            .erasures
            .iter()
            .map(|(file, erase)| {
                let erased = &erase.summary.erased_relation;
                let other = erase.summary.other_relations.as_ref();
                ErasureHeadline {
                    file: file.clone(),
                    relation: erase.evaluation.relation.clone(),
                    accuracy_before: Some(erased.accuracy_before),
                    accuracy_after: Some(erased.accuracy_after),
                    random_accuracy: erased.random_accuracy,
                    other_accuracy_before: other.map(|o| o.accuracy_before),
                    other_accuracy_after: other.map(|o| o.accuracy_after),
                }
            })
            .collect();
        headline
    }
}

/// `+12.3%`, `+5.31e33%` from 100000 on, or `-`.
pub(crate) fn signed_pct(v: Option<f64>) -> String {
    match v.filter(|v| v.is_finite()) {
        Some(v) if v.abs() >= 1e5 => format!("{v:+.2e}%"),
        Some(v) => format!("{v:+.1}%"),
        None => "-".into(),
    }
}

/// A fraction as `12.3%`, or `-`.
pub(crate) fn rate(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map(|v| format!("{:.1}%", 100.0 * v))
        .unwrap_or_else(|| "-".into())
}

/// A value via [`format_value`], or `-`.
pub(crate) fn value(v: Option<f64>) -> String {
    v.map(format_value).unwrap_or_else(|| "-".into())
}

/// `a-b` for a run of consecutive layers, else a comma list.
pub(crate) fn layer_list(layers: &[usize]) -> String {
    match layers {
        [] => "-".into(),
        [one] => one.to_string(),
        [first, .., last] if last - first + 1 == layers.len() => format!("{first}-{last}"),
        _ => layers
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn triple_text(t: &TripleMeans) -> String {
    format!("T1 {}, T2 {}, T3 {}", value(t.t1), value(t.t2), value(t.t3))
}

impl fmt::Display for Headline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} facts of {} relations, {:.2} knowledge neurons per fact ({} facts without)",
            self.model,
            self.facts,
            self.relations,
            self.neurons_per_fact,
            self.facts_without_neurons
        )?;
        writeln!(
            f,
            "shared neurons per pair of facts: {} same relation, {} different relations; {} of neurons in the top layers ({}), most in layer {}",
            value(self.intra_relation_shared),
            value(self.inter_relation_shared),
            rate(self.top_layers_share),
            layer_list(&self.top_layers),
            self.peak_layer.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
        )?;
        if self.suppress_change_pct.is_some() || self.amplify_change_pct.is_some() {
            writeln!(
                f,
                "suppressing knowledge neurons: {} (random neurons {}); amplifying: {} (random {})",
                signed_pct(self.suppress_change_pct),
                signed_pct(self.random_suppress_change_pct),
                signed_pct(self.amplify_change_pct),
                signed_pct(self.random_amplify_change_pct)
            )?;
        } else {
            writeln!(f, "suppression/amplification: not run (kn suppress)")?;
        }
        match &self.activation_knowledge {
            Some(k) => {
                write!(
                    f,
                    "mean activation of knowledge neurons: {}",
                    triple_text(k)
                )?;
                if let Some(r) = &self.activation_random {
                    write!(f, " (random: {})", triple_text(r))?;
                }
                if let Some(a) = &self.activation_aligned_knowledge {
                    write!(f, "; sign-aligned: {}", triple_text(a))?;
                }
                writeln!(f)?;
            }
            None => writeln!(f, "activations: not run (kn activations)")?,
        }
        match self.edit_facts {
            Some(n) => writeln!(
                f,
                "fact updates ({n} facts): success rate {} (before {}, random neurons {})",
                rate(self.edit_success_rate),
                rate(self.edit_success_rate_before),
                rate(self.edit_success_rate_random)
            )?,
            None => writeln!(f, "fact updates: not run (kn edit)")?,
        }
        if self.erasures.is_empty() {
            writeln!(f, "relation erasure: not run (kn erase)")?;
        }
        for e in &self.erasures {
            writeln!(
                f,
                "erasing {} ({}): accuracy {} -> {} (random neurons {}), other relations {} -> {}",
                e.relation,
                e.file,
                rate(e.accuracy_before),
                rate(e.accuracy_after),
                rate(e.random_accuracy),
                rate(e.other_accuracy_before),
                rate(e.other_accuracy_after)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_format_absent_values_as_dashes() {
        assert_eq!(signed_pct(Some(-84.69)), "-84.7%");
        assert_eq!(signed_pct(Some(3.0)), "+3.0%");
        assert_eq!(signed_pct(None), "-");
        assert_eq!(rate(Some(0.1333)), "13.3%");
        assert_eq!(rate(Some(f64::NAN)), "-");
        assert_eq!(layer_list(&[27, 28, 29]), "27-29");
        assert_eq!(layer_list(&[1, 5]), "1,5");
        assert_eq!(layer_list(&[4]), "4");
    }

    #[test]
    fn display_says_what_was_not_run() {
        let h = Headline {
            model: "llama (m.gguf)".into(),
            facts: 6,
            relations: 2,
            neurons_per_fact: 2.5,
            top_layers: vec![2],
            ..Headline::default()
        };
        let text = h.to_string();
        assert!(text.starts_with("llama (m.gguf): 6 facts of 2 relations, 2.50 knowledge neurons"));
        for missing in ["kn suppress", "kn activations", "kn edit", "kn erase"] {
            assert!(text.contains(missing), "{missing}");
        }
        assert!(text.lines().count() <= 7);
    }
}
