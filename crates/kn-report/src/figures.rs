//! The report's figures other than the suppression chart ([`crate::chart`]) and the heatmap
//! ([`crate::heatmap`]): the layer distribution of knowledge neurons as small multiples (all
//! relations, then one panel per relation), and grouped bar charts with an optional standard
//! error whisker and an optional log10 axis (activations, editing, erasure).
//!
//! Every figure is an SVG document drawn with `plotters`' SVG backend; text is SVG `<text>`,
//! so no font or image library of the system is needed.

use crate::analysis::LayerHistogram;
use crate::error::ReportError;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// plotters' error as text.
pub(crate) fn drawing<E: std::fmt::Debug>(error: E) -> String {
    format!("{error:?}")
}

/// A number for an axis or a table: 4 significant digits, exponent form when very large or
/// very small.
pub(crate) fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The label of log10 axis value `exponent`: `1e6` for whole powers of ten from 10^5 (or
/// below 10^-2), the plain value otherwise.
pub(crate) fn format_power(exponent: f64) -> String {
    let rounded = exponent.round();
    if (exponent - rounded).abs() < 1e-9 && !(-2.0..5.0).contains(&rounded) {
        format!("1e{rounded:.0}")
    } else {
        format_value(10f64.powf(exponent))
    }
}

/// Draws into a new SVG document of `width` x `height`.
fn svg_document(
    figure: &'static str,
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let fail = |reason: String| ReportError::Figure { figure, reason };
        root.fill(&WHITE).map_err(drawing).map_err(fail)?;
        draw(&root).map_err(fail)?;
        root.present().map_err(drawing).map_err(fail)?;
    }
    Ok(svg)
}

/// Colours of the layer panels: all relations, then each relation.
const OVERALL_COLOR: RGBColor = RGBColor(31, 82, 160);
const RELATION_COLOR: RGBColor = RGBColor(96, 140, 200);

/// The layer distribution: one panel for all relations, then one per relation (three panels
/// a row); x = layer, y = share (%) of the group's knowledge-neuron memberships in that layer.
pub(crate) fn layers_svg(histogram: &LayerHistogram) -> Result<String, ReportError> {
    let mut panels: Vec<(String, &[usize], RGBColor)> = vec![(
        "all relations".to_string(),
        histogram.overall.as_slice(),
        OVERALL_COLOR,
    )];
    for (relation, counts) in &histogram.per_relation {
        panels.push((relation.clone(), counts.as_slice(), RELATION_COLOR));
    }
    let columns = panels.len().min(3);
    let rows = panels.len().div_ceil(columns);
    let (panel_w, panel_h) = (320u32, 210u32);
    let columns_u = u32::try_from(columns).unwrap_or(3);
    let rows_u = u32::try_from(rows).unwrap_or(1);
    let size = (panel_w * columns_u, 40 + panel_h * rows_u);
    svg_document("layer distribution", size, |root| {
        root.draw(&Text::new(
            "Knowledge neurons per layer (share of each group's neurons, %)",
            (i32::try_from(size.0 / 2).unwrap_or(0), 10),
            TextStyle::from(("sans-serif", 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(drawing)?;
        let (_, body) = root.split_vertically(40);
        let areas = body.split_evenly((rows, columns));
        for ((title, counts, color), area) in panels.iter().zip(areas.iter()) {
            layer_panel(area, title, counts, &histogram.layers, *color)?;
        }
        Ok(())
    })
}

fn layer_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    counts: &[usize],
    layers: &[usize],
    color: RGBColor,
) -> Result<(), String> {
    let total: usize = counts.iter().sum();
    let shares: Vec<f64> = counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                100.0 * c as f64 / total as f64
            }
        })
        .collect();
    let top = shares.iter().copied().fold(0.0f64, f64::max).max(1.0) * 1.1;
    let n = layers.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{title} ({total} neurons)"),
            ("sans-serif", 13).into_font(),
        )
        .margin(6)
        .margin_right(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(-0.5f64..(n - 0.5), 0f64..top)
        .map_err(drawing)?;
    let layer_at = |v: f64| -> Option<usize> {
        let i = v.round();
        ((v - i).abs() < 1e-6 && i >= 0.0)
            .then(|| layers.get(i as usize).copied())
            .flatten()
    };
    let ticks = layers.len().clamp(1, 8);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(0)
        .x_labels(ticks)
        .y_labels(5)
        .x_label_formatter(&|v| layer_at(*v).map(|l| l.to_string()).unwrap_or_default())
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("layer")
        .label_style(("sans-serif", 10).into_font())
        .axis_desc_style(("sans-serif", 11).into_font())
        .draw()
        .map_err(drawing)?;
    chart
        .draw_series(
            shares
                .iter()
                .enumerate()
                .filter(|(_, &s)| s > 0.0)
                .map(|(i, &s)| {
                    let x = i as f64;
                    Rectangle::new([(x - 0.4, 0.0), (x + 0.4, s)], color.filled())
                }),
        )
        .map_err(drawing)?;
    Ok(())
}

/// One series of a bar panel: a bar per category (named by the figure's legend).
#[derive(Debug, Clone)]
pub(crate) struct BarSeries {
    /// Fill colour.
    pub color: RGBColor,
    /// One value per category (`None`: no bar).
    pub values: Vec<Option<f64>>,
    /// Standard errors drawn as whiskers (empty, or one per category).
    pub errors: Vec<Option<f64>>,
}

/// A panel of grouped bars.
#[derive(Debug, Clone)]
pub(crate) struct BarPanel {
    /// Caption above the panel.
    pub title: String,
    /// Y-axis caption.
    pub y_caption: String,
    /// Category labels under the groups.
    pub categories: Vec<String>,
    /// The series, drawn side by side within each group.
    pub series: Vec<BarSeries>,
    /// Show values on a log10 axis (bars start at 1; values <= 0 are not drawn).
    pub log10: bool,
}

impl BarPanel {
    /// The values (and value ± error) as drawn: log10 when asked.
    fn drawn(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        if self.log10 {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    }

    /// The y range covering 0 and every bar and whisker, with a margin.
    fn y_range(&self) -> (f64, f64) {
        let (mut low, mut high) = (0.0f64, 0.0f64);
        for s in &self.series {
            for (i, v) in s.values.iter().enumerate() {
                let Some(v) = v.filter(|v| v.is_finite()) else {
                    continue;
                };
                let e = s.errors.get(i).copied().flatten().unwrap_or(0.0).abs();
                for w in [v - e, v, v + e] {
                    if let Some(d) = self.drawn(w) {
                        low = low.min(d);
                        high = high.max(d);
                    }
                }
            }
        }
        if high - low < 1e-12 {
            high += 1.0;
        }
        let margin = 0.08 * (high - low);
        (if low < 0.0 { low - margin } else { low }, high + margin)
    }
}

/// A figure of bar panels side by side under one title and one legend.
pub(crate) fn bar_figure_svg(
    figure: &'static str,
    title: &str,
    legend: &[(String, RGBColor)],
    panels: &[BarPanel],
) -> Result<String, ReportError> {
    let categories: usize = panels.iter().map(|p| p.categories.len()).max().unwrap_or(1);
    let panel_w = u32::try_from(categories)
        .unwrap_or(1)
        .saturating_mul(110)
        .clamp(300, 900);
    let columns = u32::try_from(panels.len().max(1)).unwrap_or(1);
    // Wide enough for the title (16 px text, ~9 px a character) and the legend row (~7 px a
    // character plus the swatch), whatever the number of panels.
    let title_w = u32::try_from(title.chars().count())
        .unwrap_or(0)
        .saturating_mul(9)
        .saturating_add(40);
    let legend_w = legend
        .iter()
        .map(|(name, _)| 24 + 7 * u32::try_from(name.chars().count()).unwrap_or(0))
        .sum::<u32>()
        .saturating_add(40);
    let size = ((panel_w * columns).max(title_w).max(legend_w), 420u32);
    svg_document(figure, size, |root| {
        let width = i32::try_from(size.0).unwrap_or(0);
        root.draw(&Text::new(
            title.to_string(),
            (width / 2, 8),
            TextStyle::from(("sans-serif", 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(drawing)?;
        // The legend on one row under the title, centred (widths estimated at 7 px a char).
        let widths: Vec<i32> = legend
            .iter()
            .map(|(name, _)| 24 + 7 * i32::try_from(name.chars().count()).unwrap_or(0))
            .collect();
        let mut x = (width - widths.iter().sum::<i32>()) / 2;
        for ((name, color), w) in legend.iter().zip(&widths) {
            root.draw(&Rectangle::new([(x, 34), (x + 14, 46)], color.filled()))
                .map_err(drawing)?;
            root.draw(&Text::new(
                name.clone(),
                (x + 18, 40),
                TextStyle::from(("sans-serif", 12).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(drawing)?;
            x += w;
        }
        let (_, body) = root.split_vertically(56);
        let areas = body.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(areas.iter()) {
            bar_panel(area, panel)?;
        }
        Ok(())
    })
}

fn bar_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &BarPanel,
) -> Result<(), String> {
    let n = panel.categories.len().max(1);
    let (y_low, y_high) = panel.y_range();
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title.clone(), ("sans-serif", 13).into_font())
        .margin(8)
        .margin_right(14)
        .x_label_area_size(40)
        .y_label_area_size(62)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y_low..y_high)
        .map_err(drawing)?;
    let log10 = panel.log10;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .y_max_light_lines(0)
        .y_desc(panel.y_caption.clone())
        .label_style(("sans-serif", 10).into_font())
        .axis_desc_style(("sans-serif", 11).into_font())
        .y_label_formatter(&|v| {
            if log10 {
                format_power(*v)
            } else {
                format_value(*v)
            }
        })
        .draw()
        .map_err(drawing)?;
    let count = panel.series.len().max(1) as f64;
    let width = 0.8 / count;
    for (k, series) in panel.series.iter().enumerate() {
        let left = |i: usize| i as f64 - 0.4 + width * k as f64;
        let bars: Vec<Rectangle<(f64, f64)>> = series
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let d = panel.drawn((*v)?)?;
                Some(Rectangle::new(
                    [(left(i) + 0.01, 0.0), (left(i) + width - 0.01, d)],
                    series.color.filled(),
                ))
            })
            .collect();
        chart.draw_series(bars).map_err(drawing)?;
        let whiskers: Vec<PathElement<(f64, f64)>> = series
            .values
            .iter()
            .zip(&series.errors)
            .enumerate()
            .filter_map(|(i, (v, e))| {
                let (v, e) = ((*v)?, (*e)?);
                let (lo, hi) = (panel.drawn(v - e.abs())?, panel.drawn(v + e.abs())?);
                let x = left(i) + width / 2.0;
                Some(PathElement::new(
                    vec![(x, lo), (x, hi)],
                    BLACK.stroke_width(1),
                ))
            })
            .collect();
        chart.draw_series(whiskers).map_err(drawing)?;
    }
    chart
        .draw_series(LineSeries::new(
            [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(drawing)?;
    // Text in pixels of `area` (chart coordinates map to pixels of the whole picture).
    let (base_x, base_y) = area.get_base_pixel();
    let at = |x: f64, y: f64| {
        let (px, py) = chart.backend_coord(&(x, y));
        (px - base_x, py - base_y)
    };
    let style =
        TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, label) in panel.categories.iter().enumerate() {
        let (x, y) = at(i as f64, y_low);
        area.draw(&Text::new(label.clone(), (x, y + 6), style.clone()))
            .map_err(drawing)?;
    }
    // Each bar's value at its end (so a zero is visible too).
    for (k, series) in panel.series.iter().enumerate() {
        for (i, v) in series.values.iter().enumerate() {
            let Some((v, d)) = v.and_then(|v| Some((v, panel.drawn(v)?))) else {
                continue;
            };
            let x = i as f64 - 0.4 + width * (k as f64 + 0.5);
            let (px, py) = at(x, d);
            let (pos, dy) = if d >= 0.0 {
                (VPos::Bottom, -2)
            } else {
                (VPos::Top, 2)
            };
            area.draw(&Text::new(
                format_value(v),
                (px, py + dy),
                TextStyle::from(("sans-serif", 9).into_font()).pos(Pos::new(HPos::Center, pos)),
            ))
            .map_err(drawing)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_compactly() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(12.3456), "12.35");
        assert_eq!(format_value(-0.5), "-0.5");
        assert_eq!(format_value(1234.0), "1234");
        assert_eq!(format_value(2.5e9), "2.50e9");
        assert_eq!(format_value(0.00012), "1.20e-4");
        assert_eq!(format_value(f64::NAN), "-");
        assert_eq!(format_power(10.0), "1e10");
        assert_eq!(format_power(2.0), "100");
        assert_eq!(format_power(-3.0), "1e-3");
        assert_eq!(format_power(0.5), "3.162");
    }

    #[test]
    fn layer_panels_show_every_group() {
        let histogram = LayerHistogram {
            layers: vec![0, 1, 2],
            overall: vec![1, 0, 3],
            per_relation: vec![("P1".into(), vec![1, 0, 1]), ("P2".into(), vec![0, 0, 2])],
        };
        let svg = layers_svg(&histogram).unwrap();
        for text in [
            "all relations (4 neurons)",
            "P1 (2 neurons)",
            "P2 (2 neurons)",
            "layer",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
    }

    #[test]
    fn bar_figures_draw_bars_whiskers_and_log_axes() {
        let panel = |log10| BarPanel {
            title: "panel".into(),
            y_caption: "y".into(),
            categories: vec!["a".into(), "b".into()],
            series: vec![
                BarSeries {
                    color: RED,
                    values: vec![Some(2.0), Some(-1.0)],
                    errors: vec![Some(0.5), None],
                },
                BarSeries {
                    color: BLUE,
                    values: vec![None, Some(1000.0)],
                    errors: vec![],
                },
            ],
            log10,
        };
        let linear = panel(false);
        let (low, high) = linear.y_range();
        assert!(low < -1.0 && high > 1000.0);
        let log = panel(true);
        let (low, high) = log.y_range();
        assert!(low == 0.0 && high > 3.0 && high < 4.0);
        let svg = bar_figure_svg(
            "test",
            "Title",
            &[("one".into(), RED), ("two".into(), BLUE)],
            &[linear, log],
        )
        .unwrap();
        for text in ["Title", "one", "two", "panel"] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.matches("<polyline").count() >= 1);
    }
}

/// One line of a [`curve_svg`] figure: labelled points joined in their order.
pub(crate) struct Curve {
    pub name: String,
    pub color: RGBColor,
    /// `(x, y, label)`; the label is written beside the point.
    pub points: Vec<(f64, f64, String)>,
}

/// Curves of points on linear axes from 0 to 100 (shares in %), with a legend under the title:
/// e.g. the success of fact updates against the damage they do.
pub(crate) fn curve_svg(
    figure: &'static str,
    title: &str,
    (x_caption, y_caption): (&str, &str),
    curves: &[Curve],
) -> Result<String, ReportError> {
    let size = (640u32, 520u32);
    svg_document(figure, size, |root| {
        let (head, body) = root.split_vertically(34 + 18 * curves.len() as u32);
        head.draw(&Text::new(
            title.to_string(),
            (size.0 as i32 / 2, 8),
            TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(drawing)?;
        for (i, curve) in curves.iter().enumerate() {
            let y = 36 + 18 * i as i32;
            head.draw(&Rectangle::new(
                [(80, y - 5), (94, y + 5)],
                curve.color.filled(),
            ))
            .map_err(drawing)?;
            head.draw(&Text::new(
                curve.name.clone(),
                (100, y),
                TextStyle::from(("sans-serif", 12).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(drawing)?;
        }
        let mut chart = ChartBuilder::on(&body)
            .margin(12)
            .margin_right(24)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..100f64, 0f64..100f64)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_max_light_lines(1)
            .y_max_light_lines(1)
            .x_desc(x_caption)
            .y_desc(y_caption)
            .label_style(("sans-serif", 10).into_font())
            .axis_desc_style(("sans-serif", 11).into_font())
            .draw()
            .map_err(drawing)?;
        for curve in curves {
            let xy: Vec<(f64, f64)> = curve.points.iter().map(|(x, y, _)| (*x, *y)).collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), curve.color.stroke_width(2)))
                .map_err(drawing)?;
            chart
                .draw_series(xy.iter().map(|&p| Circle::new(p, 4, curve.color.filled())))
                .map_err(drawing)?;
            chart
                .draw_series(curve.points.iter().map(|(x, y, label)| {
                    EmptyElement::at((*x, *y))
                        + Text::new(label.clone(), (6, -12), ("sans-serif", 10).into_font())
                }))
                .map_err(drawing)?;
        }
        Ok(())
    })
}
