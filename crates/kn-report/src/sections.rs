//! The report's sections, built from a loaded run into the document model ([`crate::doc`]):
//! run summary, layer distribution, attribution heatmap, suppression/amplification,
//! activations, editing and erasure. A section whose input is absent gets a short "not run"
//! note naming the `kn` command that produces it, and its key goes to `sections_missing`.

use crate::analysis::{fact_neurons, Analysis, LayerHistogram};
use crate::chart::{ChartMeasure, SuppressionChart};
use crate::doc::{Block, Document, Figure, Table};
use crate::error::ReportError;
use crate::figures::{
    bar_figure_svg, curve_svg, format_value, layers_svg, BarPanel, BarSeries, Curve,
};
use crate::headline::{layer_list, rate, signed_pct, value, Headline};
use crate::heatmap::Heatmap;
use crate::input::{
    erasure_value_text, neuron_set, ActivationGroup, Change, Effects, MeanMetrics, MeanSe, RunData,
    SuppressionGroup, Triple,
};
use crate::npy::{read_npy, scores_path};
use crate::ReportOptions;
use plotters::style::RGBColor;

/// A built report, before writing.
pub(crate) struct Built {
    pub document: Document,
    pub headline: Headline,
    pub missing: Vec<String>,
}

/// Builds every section.
pub(crate) fn build(run: &RunData, options: &ReportOptions) -> Result<Built, ReportError> {
    let analysis = Analysis::of(&run.facts, &run.layers());
    let headline = Headline::of(run, &analysis);
    let mut b = Builder {
        blocks: Vec::new(),
        missing: Vec::new(),
    };
    b.summary(run, &analysis, &headline);
    b.layers(&analysis.histogram, &headline)?;
    b.heatmap(run, options)?;
    b.suppression(run)?;
    b.activations(run)?;
    b.editing(run)?;
    let name = run
        .dir
        .canonicalize()
        .unwrap_or_else(|_| run.dir.clone())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.dir.display().to_string());
    Ok(Built {
        document: Document {
            title: format!("Knowledge neurons: run {name}"),
            blocks: b.blocks,
        },
        headline,
        missing: b.missing,
    })
}

struct Builder {
    blocks: Vec<Block>,
    missing: Vec<String>,
}

fn cells<const N: usize>(values: [String; N]) -> Vec<String> {
    values.to_vec()
}

fn mean_se(s: &MeanSe) -> String {
    match (s.mean, s.se) {
        (Some(m), Some(se)) => format!("{} ± {}", format_value(m), format_value(se)),
        (Some(m), None) => format_value(m),
        _ => "-".into(),
    }
}

impl Builder {
    fn section(&mut self, id: &str, title: &str) {
        self.blocks.push(Block::Section {
            id: id.into(),
            title: title.into(),
        });
    }

    fn para(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Paragraph(text.into()));
    }

    fn note(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Note(text.into()));
    }

    fn not_run(&mut self, key: &str, text: &str) {
        self.missing.push(key.into());
        self.note(text);
    }

    fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table(Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        }));
    }

    fn figure(&mut self, file: &str, caption: String, svg: String) {
        self.blocks.push(Block::Figure(Figure {
            file: file.into(),
            caption,
            svg,
        }));
    }

    /// 1. Run summary.
    fn summary(&mut self, run: &RunData, analysis: &Analysis, headline: &Headline) {
        self.section("summary", "Run summary");
        for line in headline.to_string().lines() {
            self.para(line);
        }
        let c = &run.config;
        let seconds: Vec<f64> = run.facts.iter().map(|f| f.seconds).collect();
        let seconds_per_fact = run.stats.as_ref().map(|s| s.seconds_per_fact).or_else(|| {
            (!seconds.is_empty()).then(|| seconds.iter().sum::<f64>() / seconds.len() as f64)
        });
        let prompts = run.facts.iter().map(|f| f.prompts.len()).sum::<usize>() as f64
            / run.facts.len().max(1) as f64;
        let relations = run.relations();
        let share = if c.adaptive {
            format!("{} (adaptive per relation)", c.share)
        } else {
            c.share.to_string()
        };
        let rows = vec![
            cells(["model".into(), headline.model.clone()]),
            cells(["model source".into(), c.model.source.clone()]),
            cells(["fingerprint".into(), c.model.fingerprint.clone()]),
            cells(["toolkit version".into(), c.version.clone()]),
            cells([
                "relations".into(),
                format!(
                    "{} with facts: {} (asked: {})",
                    relations.len(),
                    relations.join(", "),
                    c.relations.len()
                ),
            ]),
            cells(["facts".into(), run.facts.len().to_string()]),
            cells([
                "facts per relation (asked)".into(),
                c.facts_per_relation.to_string(),
            ]),
            cells(["layers attributed".into(), {
                let layers = run.layers();
                format!("{} ({} layers)", layer_list(&layers), layers.len())
            }]),
            cells(["integration steps m".into(), c.steps.to_string()]),
            cells([
                "coarse threshold t".into(),
                format_value(f64::from(c.threshold)),
            ]),
            cells(["refinement share p".into(), share]),
            cells(["seed".into(), c.seed.to_string()]),
            cells(["prompts per fact".into(), format_value(prompts)]),
            cells(["seconds per fact".into(), value(seconds_per_fact)]),
        ];
        self.table(&["setting", "value"], rows);
        if run.torn_last_line {
            self.note(
                "The last line of neurons.jsonl is a torn write (an interrupted kn discover) and was left out; \
                 resuming kn discover repairs it.",
            );
        }
        // Discovery statistics from neurons.jsonl, beside kn discover's stats.json.
        let counts = &analysis.summary.neurons_per_fact;
        let summary = run.stats.as_ref().map(|s| &s.summary);
        let stat = |f: &dyn Fn(&crate::input::StatsSummary) -> Option<f64>| {
            summary
                .and_then(f)
                .map(format_value)
                .unwrap_or_else(|| "-".into())
        };
        self.table(
            &["statistic", "neurons.jsonl", "stats.json"],
            vec![
                cells([
                    "facts".into(),
                    counts.facts.to_string(),
                    stat(&|s| Some(s.facts as f64)),
                ]),
                cells([
                    "knowledge neurons per fact".into(),
                    format_value(counts.mean),
                    stat(&|s| Some(s.neurons_per_fact.mean)),
                ]),
                cells([
                    "shared by two facts of the same relation".into(),
                    value(headline.intra_relation_shared),
                    stat(&|s| s.sharing.intra.mean),
                ]),
                cells([
                    "shared by two facts of different relations".into(),
                    value(headline.inter_relation_shared),
                    stat(&|s| s.sharing.inter.mean),
                ]),
            ],
        );
        match summary {
            None => self.not_run(
                "stats",
                "stats.json not found: kn discover writes it when a run finishes (resume the run to write it).",
            ),
            Some(s) => {
                let differs = s.facts != counts.facts
                    || (s.neurons_per_fact.mean - counts.mean).abs() > 1e-9;
                if differs {
                    self.note(format!(
                        "stats.json differs from neurons.jsonl ({} facts there, {} here){}: the report's figures use neurons.jsonl.",
                        s.facts,
                        counts.facts,
                        if c.adaptive { "; the run used adaptive shares, which stats.json applies" } else { "; it may be stale" }
                    ));
                }
            }
        }
        self.relations_table(run);
    }

    fn relations_table(&mut self, run: &RunData) {
        let all_facts = fact_neurons(&run.facts);
        let mut rows = Vec::new();
        for relation in run.relations() {
            let facts: Vec<_> = all_facts
                .iter()
                .filter(|f| f.relation == relation)
                .cloned()
                .collect();
            let counts = kn_select::neuron_counts(&facts);
            let summary = run.relations.as_ref().and_then(|r| r.get(&relation));
            let top = summary
                .and_then(|s| s.neurons.first())
                .map(|n| {
                    format!(
                        "L{} #{} ({})",
                        n.neuron.layer,
                        n.neuron.index,
                        rate(Some(n.frequency))
                    )
                })
                .unwrap_or_else(|| "-".into());
            rows.push(cells([
                relation.clone(),
                counts.facts.to_string(),
                format_value(counts.mean),
                counts.facts_without_neurons().to_string(),
                summary
                    .map(|s| format_value(s.share))
                    .unwrap_or_else(|| "-".into()),
                summary
                    .map(|s| s.neurons.len().to_string())
                    .unwrap_or_else(|| "-".into()),
                top,
            ]));
        }
        self.para(
            "Per relation: facts, mean refined neurons per fact and facts without any (neurons.jsonl); share p used and \
             relation-level neurons (held by at least 10% of the relation's facts) with the most frequent one (relations.json).",
        );
        self.table(
            &[
                "relation",
                "facts",
                "neurons per fact",
                "facts without",
                "share p",
                "relation neurons",
                "most frequent (layer #neuron, facts)",
            ],
            rows,
        );
        if run.relations.is_none() {
            self.not_run(
                "relations",
                "relations.json not found: kn discover writes it when a run finishes.",
            );
        }
    }

    /// 2. Layer distribution.
    fn layers(
        &mut self,
        histogram: &LayerHistogram,
        headline: &Headline,
    ) -> Result<(), ReportError> {
        self.section("layers", "Layer distribution of knowledge neurons");
        self.para(format!(
            "Knowledge-neuron memberships per layer (a neuron of three facts counts three), from neurons.jsonl. \
             {} of them lie in the top 10% of the layers ({}); the most are in layer {}.",
            rate(headline.top_layers_share),
            layer_list(&headline.top_layers),
            headline.peak_layer.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
        ));
        let mut header = vec!["layer".to_string(), "all".to_string()];
        header.extend(histogram.per_relation.iter().map(|(r, _)| r.clone()));
        let rows = histogram
            .layers
            .iter()
            .enumerate()
            .filter(|(i, _)| histogram.overall[*i] > 0)
            .map(|(i, layer)| {
                let mut row = vec![layer.to_string(), histogram.overall[i].to_string()];
                row.extend(histogram.per_relation.iter().map(|(_, c)| c[i].to_string()));
                row
            })
            .collect();
        let svg = layers_svg(histogram)?;
        self.figure(
            "layers.svg",
            "Share of each group's knowledge neurons per layer: all relations (first panel), then each relation."
                .into(),
            svg,
        );
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        self.table(&header, rows);
        Ok(())
    }

    /// 3. Heatmap of one fact's attribution scores.
    fn heatmap(&mut self, run: &RunData, options: &ReportOptions) -> Result<(), ReportError> {
        self.section("heatmap", "Attribution scores of one fact");
        let neurons_path = run.dir.join("neurons.jsonl");
        let chosen = match &options.fact {
            Some(id) => {
                let fact = run
                    .facts
                    .iter()
                    .find(|f| f.fact == id.trim())
                    .ok_or_else(|| ReportError::UnknownFact {
                        fact: id.clone(),
                        path: neurons_path.clone(),
                    })?;
                let path = scores_path(&run.dir, &fact.fact);
                if !path.is_file() {
                    return Err(ReportError::NoScores {
                        fact: fact.fact.clone(),
                        path,
                    });
                }
                Some((fact, path))
            }
            None => run.facts.iter().find_map(|f| {
                let path = scores_path(&run.dir, &f.fact);
                path.is_file().then_some((f, path))
            }),
        };
        let Some((fact, path)) = chosen else {
            self.not_run(
                "heatmap",
                "No attribution scores: kn discover writes each fact's mean scores to scores/<fact>.npy \
                 (none found in this run directory).",
            );
            return Ok(());
        };
        let scores = read_npy(&path)?;
        let layers: Vec<usize> = if run.config.layers.is_empty() {
            (0..scores.rows).collect()
        } else {
            run.config.layers.clone()
        };
        let title = format!("{}: {} -> {}", fact.fact, fact.subject, fact.object);
        let heatmap = Heatmap::new(
            &path,
            &scores,
            &layers,
            options.top_k,
            neuron_set(fact),
            title,
        )?;
        let (shown, hidden) = heatmap.marked_split();
        let range = heatmap
            .range()
            .map(|(lo, hi)| {
                format!(
                    "from {} to {}",
                    format_value(f64::from(lo)),
                    format_value(f64::from(hi))
                )
            })
            .unwrap_or_else(|| "not finite".into());
        let mut caption = format!(
            "Mean integrated-gradients attribution of {} ({} -> {}) over its {} prompts: one row per layer, \
             the layer's top {} neurons by score left to right; shown scores range {range}. \
             Outlined (with their neuron index): {} of the fact's {} refined knowledge neurons.",
            fact.fact,
            fact.subject,
            fact.object,
            fact.prompts.len(),
            heatmap.k,
            shown.len(),
            neuron_set(fact).len(),
        );
        if !hidden.is_empty() {
            let list: Vec<String> = hidden
                .iter()
                .map(|n| format!("L{} #{}", n.layer, n.index))
                .collect();
            caption.push_str(&format!(
                " Outside the top {} of their layer: {}.",
                heatmap.k,
                list.join(", ")
            ));
        }
        let svg = heatmap.to_svg()?;
        self.figure("heatmap.svg", caption, svg);
        Ok(())
    }

    /// 4. Suppression and amplification.
    fn suppression(&mut self, run: &RunData) -> Result<(), ReportError> {
        self.section(
            "suppression",
            "Suppressing and amplifying knowledge neurons",
        );
        let Some(s) = &run.suppression else {
            self.not_run(
                "suppression",
                "Not run: kn suppress --neurons DIR writes suppression.json.",
            );
            return Ok(());
        };
        self.para(format!(
            "Change of the correct answer's probability when the knowledge neurons' activations are scaled by {} \
             (suppress) and by {} (amplify), as the paper reports it: the change of the mean probability over the \
             mean original probability, pooled over each group's prompts. Controls: random neurons of the same \
             layers, the same neurons on facts of other relations{}.",
            format_value(s.report.config.suppress_factor),
            format_value(s.report.config.amplify_factor),
            if s.activation_baseline_layers.is_some() {
                ", and as many neurons of highest activation (activation baseline)"
            } else {
                ""
            }
        ));
        let pair = |e: &Effects| -> [String; 2] {
            let cell = |c: &Change| {
                if c.prompts == 0 {
                    "-".to_string()
                } else {
                    signed_pct(c.change_pct)
                }
            };
            [cell(&e.suppress), cell(&e.amplify)]
        };
        let row = |name: &str, g: &SuppressionGroup| {
            let c = &g.conditions;
            let mut row = vec![
                name.to_string(),
                g.facts_evaluated.to_string(),
                g.prompts.to_string(),
            ];
            for effects in [
                &c.own,
                &c.random,
                &c.other_relations,
                &c.activation_baseline,
            ] {
                row.extend(pair(effects));
            }
            row
        };
        let mut relations: Vec<(&String, &SuppressionGroup)> = s.report.relations.iter().collect();
        relations.sort_by(|x, y| kn_select::compare_relations(x.0, y.0));
        let mut rows: Vec<Vec<String>> = relations.into_iter().map(|(r, g)| row(r, g)).collect();
        rows.push(row("all", &s.report.overall));
        self.table(
            &[
                "relation",
                "facts",
                "prompts",
                "suppress",
                "amplify",
                "random: suppress",
                "random: amplify",
                "other rel.: suppress",
                "other rel.: amplify",
                "act. baseline: suppress",
                "act. baseline: amplify",
            ],
            rows,
        );
        let title = format!(
            "Suppressing and amplifying knowledge neurons ({})",
            s.report.architecture
        );
        let chart = SuppressionChart::from_report(&s.report, ChartMeasure::ChangePct, true, &title);
        let svg = chart.to_svg().map_err(|e| ReportError::Figure {
            figure: "suppression",
            reason: e.to_string(),
        })?;
        self.figure(
            "suppression.svg",
            "Change of the correct answer's probability (%) per relation and for all facts; dark bars: the \
             knowledge neurons, lighter bars: the controls."
                .into(),
            svg,
        );
        Ok(())
    }

    /// 5. Activations on T1/T2/T3 sentences.
    fn activations(&mut self, run: &RunData) -> Result<(), ReportError> {
        self.section("activations", "Activations on expressed facts (T1/T2/T3)");
        let Some(file) = &run.activations else {
            self.not_run(
                "activations",
                "Not run: kn activations --neurons DIR --corpus BINGREL --out DIR writes activations.json.",
            );
            return Ok(());
        };
        let a = &file.report;
        self.para(
            "Mean FFN activation of each fact's knowledge neurons (and of as many random neurons of the same layers) \
             at the hidden position of T1 (head+tail sentences, tail hidden), T2 (head only, a random word hidden) \
             and T3 (random sentences of other facts), mean over facts ± standard error. Sign-aligned: each neuron's \
             activation times the sign of its mean on the fact's own prompts (gated FFNs fire both ways).",
        );
        let mut rows = Vec::new();
        let mut add = |name: &str, g: &ActivationGroup| {
            let triple = |t: &Triple<MeanSe>| t.as_array().map(mean_se);
            let mut push = |what: &str, facts: usize, t: &Triple<MeanSe>| {
                let [t1, t2, t3] = triple(t);
                rows.push(cells([
                    name.to_string(),
                    what.into(),
                    facts.to_string(),
                    t1,
                    t2,
                    t3,
                ]));
            };
            push("knowledge", g.facts, &g.knowledge);
            if let Some(r) = &g.random {
                push("random", g.facts, r);
            }
            if let Some(al) = &g.aligned {
                push("knowledge, aligned", al.facts, &al.knowledge);
                if let Some(r) = &al.random {
                    push("random, aligned", al.facts, r);
                }
            }
        };
        let mut relations: Vec<(&String, &ActivationGroup)> = a.relations.iter().collect();
        relations.sort_by(|x, y| kn_select::compare_relations(x.0, y.0));
        add("all", &a.overall);
        for (relation, group) in relations {
            add(relation, group);
        }
        self.table(&["group", "neurons", "facts", "T1", "T2", "T3"], rows);
        let m = &a.mean_of_relations;
        if m.relations > 0 {
            let t = |t: &Triple<Option<f64>>| {
                format!("T1 {}, T2 {}, T3 {}", value(t.t1), value(t.t2), value(t.t3))
            };
            let mut text = format!(
                "Mean of {} relation means (the paper's aggregation): knowledge neurons {}",
                m.relations,
                t(&m.knowledge)
            );
            if let Some(r) = &m.random {
                text.push_str(&format!("; random neurons {}", t(r)));
            }
            self.para(text + ".");
        }
        let panel = |title: &str, knowledge: &Triple<MeanSe>, random: Option<&Triple<MeanSe>>| {
            let series = |color: RGBColor, t: &Triple<MeanSe>| BarSeries {
                color,
                values: t.as_array().iter().map(|s| s.mean).collect(),
                errors: t.as_array().iter().map(|s| s.se).collect(),
            };
            let mut s = vec![series(KNOWLEDGE, knowledge)];
            if let Some(r) = random {
                s.push(series(RANDOM, r));
            }
            BarPanel {
                title: title.into(),
                y_caption: "mean activation".into(),
                categories: vec![
                    "T1 head+tail".into(),
                    "T2 head only".into(),
                    "T3 random".into(),
                ],
                series: s,
                log10: false,
            }
        };
        let o = &a.overall;
        let mut panels = vec![panel("raw", &o.knowledge, o.random.as_ref())];
        if let Some(al) = &o.aligned {
            panels.push(panel("sign-aligned", &al.knowledge, al.random.as_ref()));
        }
        let legend = [
            ("knowledge neurons".to_string(), KNOWLEDGE),
            ("random neurons".to_string(), RANDOM),
        ];
        let svg = bar_figure_svg(
            "activations",
            "Mean activation of knowledge neurons on T1/T2/T3 sentences (all facts, ± standard error)",
            &legend,
            &panels,
        )?;
        self.figure(
            "activations.svg",
            "Mean activation at the hidden position, all facts; whiskers: ± one standard error over facts.".into(),
            svg,
        );
        Ok(())
    }

    /// 6. Editing (kn edit) and erasure (kn erase).
    fn editing(&mut self, run: &RunData) -> Result<(), ReportError> {
        self.section("editing", "Updating facts and erasing relations");
        self.edit(run)?;
        self.sweep(run)?;
        self.erase(run)
    }

    fn sweep(&mut self, run: &RunData) -> Result<(), ReportError> {
        let Some(sweep) = &run.sweep else {
            self.not_run(
                "sweep",
                "Update sweep not run: kn edit --neurons DIR --facts N --sweep 1,2,4,8 --out DIR/edit-sweep.json writes edit-sweep.json.",
            );
            return Ok(());
        };
        let facts = sweep
            .points
            .first()
            .map_or(0, |p| p.aggregate.facts + p.skipped);
        self.para(format!(
            "Update sweep (kn edit --sweep): the same {facts} facts updated to the same new answers under each \
             setting of the update rule (λ1 {}): λ2 in {}, unscaled (the paper's rule) and scaled to each value \
             slot's norm (the paper's released code), with neurons shared by more than the threshold of the \
             relation's facts left out and without. Success: the new answer top-1 on the located prompts; damage: \
             the share of other relations' prompts whose top-1 token changed; means over facts, with the medians \
             of the perplexity changes of other facts' answers.",
            format_value(sweep.given.lambda_remove),
            sweep.lambdas.iter().map(|l| format_value(*l)).collect::<Vec<_>>().join(", "),
        ));
        let rows = sweep
            .points
            .iter()
            .map(|p| {
                cells([
                    format_value(p.config.lambda_add),
                    if p.config.scale_by_norm {
                        "norm".into()
                    } else {
                        "none".into()
                    },
                    format_value(p.config.shared_threshold),
                    p.aggregate.facts.to_string(),
                    rate(p.success()),
                    rate(p.aggregate.checks.generality),
                    rate(p.damage()),
                    rate(p.aggregate.checks.locality.same_relation.map(|k| 1.0 - k)),
                    signed_pct(p.median_perplexity_change_pct.other_relations),
                ])
            })
            .collect();
        self.table(
            &[
                "λ2",
                "scaling",
                "shared threshold",
                "facts",
                "success",
                "generality",
                "damage, other relations",
                "damage, same relation",
                "perplexity change, other relations (median)",
            ],
            rows,
        );
        let families = [
            (
                false,
                true,
                "unscaled, shared neurons left out",
                RGBColor(31, 82, 160),
            ),
            (
                true,
                true,
                "norm-scaled, shared neurons left out",
                RGBColor(214, 96, 40),
            ),
            (
                false,
                false,
                "unscaled, no exclusion",
                RGBColor(120, 160, 220),
            ),
            (
                true,
                false,
                "norm-scaled, no exclusion",
                RGBColor(240, 170, 120),
            ),
        ];
        let curves: Vec<Curve> = families
            .iter()
            .filter_map(|&(scaled, excluded, name, color)| {
                let points: Vec<(f64, f64, String)> = sweep
                    .points
                    .iter()
                    .filter(|p| {
                        p.config.scale_by_norm == scaled
                            && (p.config.shared_threshold < 1.0) == excluded
                    })
                    .filter_map(|p| {
                        let (x, y) = (p.damage()?, p.success()?);
                        Some((
                            100.0 * x,
                            100.0 * y,
                            format!("λ2 {}", format_value(p.config.lambda_add)),
                        ))
                    })
                    .collect();
                (!points.is_empty()).then(|| Curve {
                    name: name.into(),
                    color,
                    points,
                })
            })
            .collect();
        if !curves.is_empty() {
            let svg = curve_svg(
                "sweep",
                "Fact updates: success against damage",
                (
                    "damage: other relations' prompts whose top-1 changed (%)",
                    "success: new answer top-1 on the located prompts (%)",
                ),
                &curves,
            )?;
            self.figure(
                "sweep.svg",
                "Success of the updates against the damage they do, one point per λ2, one line per variant of the \
                 rule; up and to the left is better."
                    .into(),
                svg,
            );
        }
        self.para(format!(
            "Where the damage comes from: the given update (λ2 {}, {}) of each fact repeated on its edited neurons of \
             one layer at a time; cross-relation neurons are also knowledge neurons of another relation's fact in \
             the run.",
            format_value(sweep.given.lambda_add),
            if sweep.given.scale_by_norm { "norm-scaled" } else { "unscaled" },
        ));
        let rows = sweep
            .damage_by_layer
            .iter()
            .map(|l| {
                cells([
                    l.layer.to_string(),
                    l.facts.to_string(),
                    l.neurons.to_string(),
                    l.cross_relation_neurons.to_string(),
                    rate(l.success),
                    rate(l.locality.other_relations.map(|k| 1.0 - k)),
                    signed_pct(l.median_perplexity_change_pct.other_relations),
                ])
            })
            .collect();
        self.table(
            &[
                "layer",
                "facts",
                "neurons",
                "cross-relation neurons",
                "success",
                "damage, other relations",
                "perplexity change, other relations (median)",
            ],
            rows,
        );
        Ok(())
    }

    fn edit(&mut self, run: &RunData) -> Result<(), ReportError> {
        let Some(e) = &run.edit else {
            self.not_run(
                "edit",
                "Fact updates not run: kn edit --neurons DIR --facts N --json > DIR/edit.json writes edit.json.",
            );
            return Ok(());
        };
        self.para(format!(
            "Fact updates (kn edit): {} fact(s) updated{}{}; each fact's knowledge neurons' value slots get the old \
             answer's embedding removed and the new one's added. Rates over the facts' prompts, mean over facts; \
             perplexity of the correct answers of other facts of the same relation and of other relations.",
            e.facts,
            e.requested.map(|r| format!(" of {r} asked")).unwrap_or_default(),
            e.prompts.map(|p| format!(" ({p} prompts)")).unwrap_or_default(),
        ));
        type Get = fn(&MeanMetrics) -> Option<f64>;
        let metrics: [(&str, Get, bool); 10] = [
            ("success rate (new answer top-1)", |m| m.success_rate, true),
            (
                "change rate (old answer not top-1)",
                |m| m.change_rate,
                true,
            ),
            ("top-5 rate of the new answer", |m| m.top5_rate, true),
            ("MRR of the new answer", |m| m.mrr, false),
            ("p(old answer)", |m| m.mean_old_prob, false),
            ("p(new answer)", |m| m.mean_new_prob, false),
            (
                "perplexity, same relation",
                |m| m.same_relation_perplexity,
                false,
            ),
            (
                "perplexity, other relations",
                |m| m.other_relations_perplexity,
                false,
            ),
            (
                "accuracy, same relation",
                |m| m.same_relation_accuracy,
                true,
            ),
            (
                "accuracy, other relations",
                |m| m.other_relations_accuracy,
                true,
            ),
        ];
        let show = |v: Option<f64>, is_rate: bool| if is_rate { rate(v) } else { value(v) };
        let rows = metrics
            .iter()
            .map(|(name, get, is_rate)| {
                cells([
                    name.to_string(),
                    show(get(&e.before), *is_rate),
                    show(get(&e.after), *is_rate),
                    e.random_control
                        .as_ref()
                        .map(|r| show(get(r), *is_rate))
                        .unwrap_or_else(|| "-".into()),
                ])
            })
            .collect();
        self.table(&["metric", "before", "after", "random neurons"], rows);
        let p = &e.perplexity_change_pct;
        self.para(format!(
            "Perplexity change (mean over facts of the per-fact relative change): same relation {}, other relations {}; \
             random neurons: {}, {}.",
            signed_pct(p.same_relation),
            signed_pct(p.other_relations),
            signed_pct(p.random_same_relation),
            signed_pct(p.random_other_relations)
        ));
        let c = &e.checks;
        let symmetry = match c.symmetry {
            Some(after) => format!(
                "{} after the edit ({} before, {} reversed prompts)",
                rate(Some(after)),
                rate(c.symmetry_before),
                c.symmetry_prompts
            ),
            None => "not measured (no fact of a symmetric relation, P47 or P530)".into(),
        };
        self.para(format!(
            "Edit checks (means over facts): reliability (the new answer top-1 on the prompts that located the \
             neurons) {}; generality (on {} held-out paraphrases) {}; locality (other facts' prompts keeping their \
             top-1 token) {} same relation, {} other relations; symmetry (Niu et al.: the reversed fact holds) {symmetry}.",
            rate(c.reliability),
            c.generality_prompts,
            rate(c.generality),
            rate(c.locality.same_relation),
            rate(c.locality.other_relations),
        ));
        if !e.per_fact.is_empty() {
            const SHOWN: usize = 40;
            let rows = e
                .per_fact
                .iter()
                .take(SHOWN)
                .map(|f| {
                    cells([
                        f.evaluation.fact.clone(),
                        f.subject.clone(),
                        format!("{} -> {}", f.old_answer, f.new_answer),
                        rate(Some(f.evaluation.before.success_rate)),
                        rate(Some(f.evaluation.after.success_rate)),
                    ])
                })
                .collect();
            self.table(
                &[
                    "fact",
                    "subject",
                    "update",
                    "success before",
                    "success after",
                ],
                rows,
            );
            if e.per_fact.len() > SHOWN {
                self.para(format!("(first {SHOWN} of {} facts)", e.per_fact.len()));
            }
        }
        if !e.skipped.is_empty() {
            let list: Vec<String> = e
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.fact, s.reason))
                .collect();
            self.note(format!("Skipped: {}", list.join("; ")));
        }
        let conditions = [
            ("before", BEFORE, Some(&e.before)),
            ("after", AFTER, Some(&e.after)),
            ("random neurons", RANDOM, e.random_control.as_ref()),
        ];
        let series = |get: &dyn Fn(&MeanMetrics) -> [Option<f64>; 2]| -> Vec<BarSeries> {
            conditions
                .iter()
                .filter_map(|(_, color, m)| {
                    m.map(|m| BarSeries {
                        color: *color,
                        values: get(m).to_vec(),
                        errors: Vec::new(),
                    })
                })
                .collect()
        };
        let rates = BarPanel {
            title: "update success".into(),
            y_caption: "share of the facts' prompts (%)".into(),
            categories: vec!["success rate".into(), "top-5 rate".into()],
            series: series(&|m| [m.success_rate, m.top5_rate].map(|r| r.map(|r| 100.0 * r))),
            log10: false,
        };
        let perplexity = BarPanel {
            title: "perplexity of other facts (log scale)".into(),
            y_caption: "perplexity".into(),
            categories: vec!["same relation".into(), "other relations".into()],
            series: series(&|m| [m.same_relation_perplexity, m.other_relations_perplexity]),
            log10: true,
        };
        let legend: Vec<(String, RGBColor)> = conditions
            .iter()
            .filter(|c| c.2.is_some())
            .map(|c| (c.0.to_string(), c.1))
            .collect();
        let svg = bar_figure_svg(
            "edit",
            &format!(
                "Updating facts through their knowledge neurons ({} facts)",
                e.facts
            ),
            &legend,
            &[rates, perplexity],
        )?;
        self.figure(
            "edit.svg",
            "Fact updates: success and top-5 rates of the new answer, and the perplexity of other facts' answers \
             (log scale), before, after, and after the same edit of random neurons."
                .into(),
            svg,
        );
        Ok(())
    }

    fn erase(&mut self, run: &RunData) -> Result<(), ReportError> {
        if run.erasures.is_empty() {
            self.not_run(
                "erase",
                "Relation erasure not run: kn erase --neurons DIR --relation P --json > DIR/erase-P.json writes an erase-*.json.",
            );
            return Ok(());
        }
        self.para(
            "Relation erasure (kn erase): the relation's most frequent knowledge neurons get their value slots \
             overwritten; accuracy (answer top-1) and perplexity on the erased relation's prompts and on the other \
             relations' prompts, before, after, and after erasing as many random neurons instead.",
        );
        let mut rows = Vec::new();
        for (file, erase) in &run.erasures {
            let evaluation = &erase.evaluation;
            let what = format!(
                "{} neurons -> {}",
                evaluation.config.top_n,
                erasure_value_text(&evaluation.config.value, evaluation.token_text.as_deref())
            );
            let groups = [
                ("erased relation", Some(&erase.summary.erased_relation)),
                ("other relations", erase.summary.other_relations.as_ref()),
            ];
            for (group, q) in groups {
                let Some(q) = q else { continue };
                rows.push(cells([
                    file.clone(),
                    evaluation.relation.clone(),
                    what.clone(),
                    group.into(),
                    q.prompts.to_string(),
                    rate(Some(q.accuracy_before)),
                    rate(Some(q.accuracy_after)),
                    rate(q.random_accuracy),
                    value(Some(q.perplexity_before)),
                    value(Some(q.perplexity_after)),
                    value(q.random_perplexity),
                ]));
            }
        }
        self.table(
            &[
                "file",
                "relation",
                "erased",
                "prompts of",
                "prompts",
                "accuracy before",
                "after",
                "random",
                "perplexity before",
                "after",
                "random",
            ],
            rows,
        );
        self.para(
            "Erasure checks (the editing papers' metrics as they apply to an erasure): forgetting, the share of \
             prompts answered (top-1) before the erasure whose answer is no longer top-1 after it, on the prompts \
             that located the neurons (reliability) and on prompts of the relation held out from localization \
             (generality: its facts and paraphrases the run did not use); locality, the share of other relations' \
             prompts keeping their top-1 token; each for the erasure and for the random control.",
        );
        let mut rows = Vec::new();
        for (file, erase) in &run.erasures {
            let e = &erase.evaluation;
            let conditions = [
                ("erased", Some(&e.checks)),
                ("random", e.random_checks.as_ref()),
            ];
            for (condition, c) in conditions {
                let Some(c) = c else { continue };
                rows.push(cells([
                    file.clone(),
                    e.relation.clone(),
                    condition.into(),
                    format!("{} ({})", rate(c.reliability), c.reliability_prompts),
                    format!("{} ({})", rate(c.generality), c.generality_prompts),
                    rate(c.locality.other_relations),
                ]));
            }
        }
        self.table(
            &[
                "file",
                "relation",
                "neurons",
                "forgetting, located (answered)",
                "forgetting, held out (answered)",
                "locality, other relations",
            ],
            rows,
        );
        let mut categories = Vec::new();
        let mut values: [Vec<Option<f64>>; 3] = Default::default();
        for (file, erase) in &run.erasures {
            let stem = file.trim_start_matches("erase-").trim_end_matches(".json");
            let groups = [
                (
                    format!("{stem}: {}", erase.evaluation.relation),
                    Some(&erase.summary.erased_relation),
                ),
                (
                    format!("{stem}: others"),
                    erase.summary.other_relations.as_ref(),
                ),
            ];
            for (label, q) in groups {
                let Some(q) = q else { continue };
                categories.push(label);
                values[0].push(Some(100.0 * q.accuracy_before));
                values[1].push(Some(100.0 * q.accuracy_after));
                values[2].push(q.random_accuracy.map(|v| 100.0 * v));
            }
        }
        let [before, after, random] = values;
        let names = [
            ("before", BEFORE, before),
            ("after", AFTER, after),
            ("random neurons", RANDOM, random),
        ];
        let legend: Vec<(String, RGBColor)> =
            names.iter().map(|(n, c, _)| (n.to_string(), *c)).collect();
        let panel = BarPanel {
            title: "accuracy on the erased relation and on the others".into(),
            y_caption: "accuracy (%)".into(),
            categories,
            series: names
                .into_iter()
                .map(|(_, color, values)| BarSeries {
                    color,
                    values,
                    errors: Vec::new(),
                })
                .collect(),
            log10: false,
        };
        let svg = bar_figure_svg(
            "erase",
            "Erasing relations through their knowledge neurons",
            &legend,
            &[panel],
        )?;
        self.figure(
            "erase.svg",
            "Accuracy (answer top-1, %) on each erased relation's prompts and on the other relations' prompts, \
             before, after, and after erasing random neurons."
                .into(),
            svg,
        );
        Ok(())
    }
}

/// Colours of the bar figures.
const KNOWLEDGE: RGBColor = RGBColor(31, 82, 160);
const RANDOM: RGBColor = RGBColor(170, 170, 170);
const BEFORE: RGBColor = RGBColor(120, 144, 176);
const AFTER: RGBColor = RGBColor(196, 58, 38);
