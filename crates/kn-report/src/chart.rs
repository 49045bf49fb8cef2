//! Bar charts of the suppression/amplification experiment, as the paper's figure 3: one group
//! per relation, the change of the correct answer's probability (%) when the knowledge
//! neurons are suppressed and when they are amplified, with the controls (random neurons,
//! the same neurons on other relations' facts, the activation baseline) as lighter bars.
//!
//! Drawn with `plotters`' SVG backend only: text is written as SVG `<text>` elements (sized by
//! plotters' built-in estimate), so no font or image library of the system is needed.
//!
//! The chart's input is plain data ([`ChartGroup`]s); [`SuppressionChart::from_report`] builds
//! it from the experiment's report (kn-schema's `ExperimentReport`, as kn-edit computes it and
//! suppression.json holds it).
//!
//! ```
//! use kn_report::chart::{ChartGroup, ChartMeasure, ChartPair, SuppressionChart};
//! let chart = SuppressionChart {
//!     title: "Knowledge neurons".into(),
//!     measure: ChartMeasure::ChangePct,
//!     groups: vec![ChartGroup {
//!         label: "P36".into(),
//!         own: ChartPair { suppress: Some(-29.0), amplify: Some(31.2) },
//!         random: ChartPair { suppress: Some(-1.0), amplify: Some(0.5) },
//!         ..ChartGroup::default()
//!     }],
//! };
//! let svg = chart.to_svg().unwrap();
//! assert!(svg.starts_with("<svg") && svg.contains("P36"));
//! ```

use kn_schema::report::suppression::{ChangeSummary, ExperimentReport, GroupReport, OpEffects};
use kn_select::compare_relations;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Errors of chart drawing.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Nothing to draw.
    #[error("the chart has no groups to draw")]
    Empty,
    /// plotters failed while drawing.
    #[error("drawing the chart failed: {0}")]
    Drawing(String),
    /// The SVG file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Which number of a change summary (`ChangeSummary`) a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartMeasure {
    /// The paper's number: change of the mean probability over the mean original probability.
    #[default]
    ChangePct,
    /// The mean of per-prompt relative changes.
    MeanRelativeChangePct,
}

impl ChartMeasure {
    /// The chosen number of `summary` (`None` when the group was empty).
    pub fn of(self, summary: &ChangeSummary) -> Option<f64> {
        match self {
            ChartMeasure::ChangePct => summary.change_pct,
            ChartMeasure::MeanRelativeChangePct => summary.mean_relative_change_pct,
        }
    }

    /// The y-axis caption.
    pub fn caption(self) -> &'static str {
        match self {
            ChartMeasure::ChangePct => "change of the correct answer's probability (%)",
            ChartMeasure::MeanRelativeChangePct => {
                "mean relative change of the correct answer's probability (%)"
            }
        }
    }
}

/// Suppression and amplification values (%) of one condition; `None` draws no bar.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ChartPair {
    /// Change when suppressed.
    pub suppress: Option<f64>,
    /// Change when amplified.
    pub amplify: Option<f64>,
}

impl ChartPair {
    /// The values of one condition of a report under `measure`.
    pub fn from_effects(effects: &OpEffects, measure: ChartMeasure) -> Self {
        Self {
            suppress: measure.of(&effects.suppress),
            amplify: measure.of(&effects.amplify),
        }
    }
}

/// One group of bars (a relation, or all facts).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChartGroup {
    /// The label under the group.
    pub label: String,
    /// The knowledge neurons (dark bars).
    pub own: ChartPair,
    /// Random neurons of the same layers (lighter).
    pub random: ChartPair,
    /// The same neurons on facts of other relations (lighter).
    pub other_relations: ChartPair,
    /// The neurons of highest activation (lighter).
    pub activation_baseline: ChartPair,
}

impl ChartGroup {
    /// The group of one relation's (or the overall) results.
    pub fn from_report(label: &str, group: &GroupReport, measure: ChartMeasure) -> Self {
        let conditions = &group.conditions;
        Self {
            label: label.to_string(),
            own: ChartPair::from_effects(&conditions.own, measure),
            random: ChartPair::from_effects(&conditions.random, measure),
            other_relations: ChartPair::from_effects(&conditions.other_relations, measure),
            activation_baseline: ChartPair::from_effects(&conditions.activation_baseline, measure),
        }
    }

    fn pairs(&self) -> [&ChartPair; 4] {
        [
            &self.own,
            &self.random,
            &self.other_relations,
            &self.activation_baseline,
        ]
    }
}

/// A suppression/amplification bar chart.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SuppressionChart {
    /// The caption on top.
    pub title: String,
    /// What the values are (sets the y-axis caption).
    pub measure: ChartMeasure,
    /// The groups, left to right.
    pub groups: Vec<ChartGroup>,
}

/// Names of the four conditions in the legend, in bar order.
const CONDITIONS: [&str; 4] = [
    "knowledge neurons",
    "random neurons",
    "other relations",
    "activation baseline",
];
/// How much of the full color each condition gets (the rest is white): controls are lighter.
const SHADES: [f64; 4] = [1.0, 0.55, 0.38, 0.22];
/// Base colors of suppression and amplification.
const SUPPRESS_COLOR: RGBColor = RGBColor(31, 82, 160);
const AMPLIFY_COLOR: RGBColor = RGBColor(196, 58, 38);
/// Width of one bar, in group units (a group is 1 wide; 8 bars and a gap fit in it).
const BAR_WIDTH: f64 = 0.095;
/// Pixels right of the plot for the legend.
const LEGEND_WIDTH: i32 = 230;

fn lighter(color: RGBColor, shade: f64) -> RGBColor {
    let mix = |c: u8| {
        (255.0 - (255.0 - f64::from(c)) * shade)
            .round()
            .clamp(0.0, 255.0) as u8
    };
    RGBColor(mix(color.0), mix(color.1), mix(color.2))
}

/// Left edge of bar `slot` (0..8: suppress conditions, then amplify conditions) of group `i`.
fn bar_left(group: usize, slot: usize) -> f64 {
    let gap = if slot >= 4 { BAR_WIDTH * 0.6 } else { 0.0 };
    let total = 8.0 * BAR_WIDTH + BAR_WIDTH * 0.6;
    group as f64 - total / 2.0 + slot as f64 * BAR_WIDTH + gap
}

fn drawing<E: std::fmt::Debug>(error: E) -> ChartError {
    ChartError::Drawing(format!("{error:?}"))
}

impl SuppressionChart {
    /// One group per relation of `report` (in natural order: P27 before P101), plus an "all"
    /// group when `overall` is true, with the numbers of `measure`.
    pub fn from_report(
        report: &ExperimentReport,
        measure: ChartMeasure,
        overall: bool,
        title: &str,
    ) -> Self {
        let mut relations: Vec<(&String, &GroupReport)> = report.relations.iter().collect();
        relations.sort_by(|a, b| compare_relations(a.0, b.0));
        let mut groups: Vec<ChartGroup> = relations
            .into_iter()
            .map(|(relation, group)| ChartGroup::from_report(relation, group, measure))
            .collect();
        if overall {
            groups.push(ChartGroup::from_report("all", &report.overall, measure));
        }
        Self {
            title: title.to_string(),
            measure,
            groups,
        }
    }

    /// The y range covering every finite value and 0, with a margin.
    fn y_range(&self) -> (f64, f64) {
        let values = self
            .groups
            .iter()
            .flat_map(|g| g.pairs().into_iter().flat_map(|p| [p.suppress, p.amplify]))
            .flatten()
            .filter(|v| v.is_finite());
        let (mut low, mut high) = (0.0f64, 0.0f64);
        for v in values {
            low = low.min(v);
            high = high.max(v);
        }
        if high - low < 1.0 {
            high += 1.0;
            low -= 1.0;
        }
        let margin = 0.08 * (high - low);
        (low - margin, high + margin)
    }

    /// Draws the chart as an SVG document (`width` x `height` pixels).
    pub fn to_svg_sized(&self, width: u32, height: u32) -> Result<String, ChartError> {
        if self.groups.is_empty() {
            return Err(ChartError::Empty);
        }
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(drawing)?;
        }
        Ok(svg)
    }

    /// Draws the chart as an SVG document, about 120 pixels per group plus the legend (at
    /// least 720 wide) by 480.
    pub fn to_svg(&self) -> Result<String, ChartError> {
        let groups = u32::try_from(self.groups.len()).unwrap_or(u32::MAX / 240);
        let width = groups.saturating_mul(120).saturating_add(330).max(720);
        self.to_svg_sized(width, 480)
    }

    /// Writes [`SuppressionChart::to_svg`] to `path` (atomically: a temporary file beside it,
    /// synced, then renamed).
    pub fn save(&self, path: &Path) -> Result<(), ChartError> {
        let svg = self.to_svg()?;
        crate::atomic::write_atomically(path, svg.as_bytes()).map_err(|source| ChartError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    fn draw(
        &self,
        root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), ChartError> {
        root.fill(&WHITE).map_err(drawing)?;
        let (width, _) = root.dim_in_pixel();
        let width = i32::try_from(width).unwrap_or(i32::MAX);
        let n = self.groups.len();
        let (y_low, y_high) = self.y_range();
        // Title centred over the whole picture, legend in the right margin.
        let centred = Pos::new(HPos::Center, VPos::Top);
        root.draw(&Text::new(
            self.title.clone(),
            (width / 2, 10),
            TextStyle::from(("sans-serif", 18).into_font()).pos(centred),
        ))
        .map_err(drawing)?;
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_top(40)
            .margin_right(LEGEND_WIDTH)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y_low..y_high)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_max_light_lines(0)
            .y_desc(self.measure.caption())
            .y_label_formatter(&|v| {
                if v.abs() < 1e-9 {
                    "0".into()
                } else {
                    format!("{v:+.0}")
                }
            })
            .draw()
            .map_err(drawing)?;
        let legend_x = width - LEGEND_WIDTH + 16;
        let legend_style = TextStyle::from(("sans-serif", 12).into_font());
        for (op, color) in [(0usize, SUPPRESS_COLOR), (1, AMPLIFY_COLOR)] {
            for (condition, (name, shade)) in CONDITIONS.iter().zip(SHADES).enumerate() {
                let fill = lighter(color, shade);
                let slot = op * 4 + condition;
                let bars: Vec<Rectangle<(f64, f64)>> = self
                    .groups
                    .iter()
                    .enumerate()
                    .filter_map(|(i, g)| {
                        let pair = g.pairs()[condition];
                        let value = if op == 0 { pair.suppress } else { pair.amplify };
                        let value = value.filter(|v| v.is_finite())?;
                        let left = bar_left(i, slot);
                        Some(Rectangle::new(
                            [(left, 0.0), (left + BAR_WIDTH, value)],
                            fill.filled(),
                        ))
                    })
                    .collect();
                chart.draw_series(bars).map_err(drawing)?;
                let y = 50 + 20 * i32::try_from(slot).unwrap_or(0) + if op == 1 { 10 } else { 0 };
                root.draw(&Rectangle::new(
                    [(legend_x, y), (legend_x + 14, y + 12)],
                    fill.filled(),
                ))
                .map_err(drawing)?;
                let label = format!("{} {name}", if op == 0 { "suppress" } else { "amplify" });
                root.draw(&Text::new(label, (legend_x + 20, y), legend_style.clone()))
                    .map_err(drawing)?;
            }
        }
        chart
            .draw_series(LineSeries::new(
                [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(drawing)?;
        // Group labels under the plot, centred on each group.
        let style = TextStyle::from(("sans-serif", 14).into_font()).pos(centred);
        for (i, group) in self.groups.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64, y_low));
            root.draw(&Text::new(group.label.clone(), (x, y + 8), style.clone()))
                .map_err(drawing)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(groups: usize) -> SuppressionChart {
        SuppressionChart {
            title: "t".into(),
            measure: ChartMeasure::ChangePct,
            groups: (0..groups)
                .map(|i| ChartGroup {
                    label: format!("P{i}"),
                    own: ChartPair {
                        suppress: Some(-30.0),
                        amplify: Some(40.0),
                    },
                    random: ChartPair {
                        suppress: Some(-1.0),
                        amplify: None,
                    },
                    other_relations: ChartPair {
                        suppress: Some(f64::NAN),
                        amplify: Some(2.0),
                    },
                    activation_baseline: ChartPair::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn svg_has_labels_legend_and_bars() {
        let svg = chart(3).to_svg().unwrap();
        assert!(svg.starts_with("<svg"));
        for label in [
            "P0",
            "P1",
            "P2",
            "suppress knowledge neurons",
            "amplify random neurons",
            "(%)",
        ] {
            assert!(svg.contains(label), "missing {label}");
        }
        // 3 groups x (own 2 + random 1 + other 1) bars, plus legend boxes and the background.
        assert!(svg.matches("<rect").count() >= 12);
    }

    #[test]
    fn empty_charts_are_refused_and_ranges_cover_zero() {
        assert!(matches!(chart(0).to_svg(), Err(ChartError::Empty)));
        let (low, high) = chart(1).y_range();
        assert!(low < -30.0 && high > 40.0);
        let flat = SuppressionChart {
            groups: vec![ChartGroup::default()],
            ..chart(0)
        };
        let (low, high) = flat.y_range();
        assert!(low < 0.0 && high > 0.0);
        assert!(flat.to_svg().is_ok());
    }

    #[test]
    fn controls_are_lighter() {
        let dark = lighter(SUPPRESS_COLOR, 1.0);
        let light = lighter(SUPPRESS_COLOR, 0.3);
        assert_eq!(dark, SUPPRESS_COLOR);
        assert!(light.0 > dark.0 && light.1 > dark.1 && light.2 > dark.2);
        assert!(bar_left(0, 4) > bar_left(0, 3) + BAR_WIDTH);
    }
}
