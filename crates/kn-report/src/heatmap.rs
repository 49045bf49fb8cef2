//! The heatmap of one fact's attribution scores (`DIR/scores/<fact>.npy`): one row per
//! attributed layer, one column per rank 1..K of that layer's K highest-scoring FFN neurons,
//! coloured by score on a diverging palette centred on zero (blue negative, white zero, red
//! positive) with a colour bar; the fact's refined knowledge neurons are outlined and labelled
//! with their neuron index.

use crate::error::ReportError;
use crate::figures::{drawing, format_value};
use crate::npy::Matrix;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeSet;
use std::path::Path;

/// A `(layer, neuron)` pair.
use kn_schema::Neuron;

/// The `k` highest scores of `row` as `(neuron, score)`, highest first (ties: lower neuron
/// first; NaN ranks last).
pub(crate) fn top_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let mut indexed: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
    indexed.sort_by(|a, b| key(b.1).total_cmp(&key(a.1)).then(a.0.cmp(&b.0)));
    indexed.truncate(k);
    indexed
}

/// What the heatmap shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Heatmap {
    /// `fact: subject -> object`.
    pub title: String,
    /// The layers of the rows, in the scores file's row order (the run's layers).
    pub layers: Vec<usize>,
    /// Per row, the top-K `(neuron, score)`, highest first.
    pub cells: Vec<Vec<(usize, f32)>>,
    /// The fact's refined knowledge neurons `(layer, neuron)`.
    pub marked: BTreeSet<Neuron>,
    /// K.
    pub k: usize,
}

impl Heatmap {
    /// Selects the top `k` neurons of each row of `scores`, whose rows are `layers` in order.
    /// A row count other than `layers.len()` is an error naming `path`.
    pub fn new(
        path: &Path,
        scores: &Matrix,
        layers: &[usize],
        k: usize,
        marked: BTreeSet<Neuron>,
        title: String,
    ) -> Result<Self, ReportError> {
        if scores.rows != layers.len() {
            return Err(ReportError::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "{} rows of scores, but the run attributed {} layers (config.json \"layers\")",
                    scores.rows,
                    layers.len()
                ),
            });
        }
        let cells = (0..scores.rows)
            .map(|r| top_k(scores.row(r).unwrap_or(&[]), k))
            .collect();
        Ok(Self {
            title,
            layers: layers.to_vec(),
            cells,
            marked,
            k: k.min(scores.cols),
        })
    }

    /// The smallest and largest finite score shown (`None` when nothing finite is shown).
    pub fn range(&self) -> Option<(f32, f32)> {
        let mut values = self
            .cells
            .iter()
            .flatten()
            .map(|c| c.1)
            .filter(|v| v.is_finite())
            .peekable();
        values.peek()?;
        Some(
            values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            }),
        )
    }

    /// Knowledge neurons shown (in some row's top K) and the others.
    pub fn marked_split(&self) -> (Vec<Neuron>, Vec<Neuron>) {
        let shown: BTreeSet<Neuron> = self
            .layers
            .iter()
            .zip(&self.cells)
            .flat_map(|(&layer, row)| row.iter().map(move |&(n, _)| Neuron::new(layer, n)))
            .collect();
        self.marked.iter().partition(|n| shown.contains(n))
    }

    /// Draws the heatmap as an SVG document.
    pub fn to_svg(&self) -> Result<String, ReportError> {
        let rows = self.layers.len().max(1);
        let cols = self.k.max(1);
        let cell_w = 34u32;
        let cell_h = if rows > 40 { 12 } else { 18 };
        let plot_w = cell_w * u32::try_from(cols).unwrap_or(1);
        let plot_h = cell_h * u32::try_from(rows).unwrap_or(1);
        let (left, top, bottom, bar_w) = (70u32, 56u32, 48u32, 130u32);
        let width = left + plot_w + bar_w;
        let height = top + plot_h + bottom;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            self.draw(&root, (left, top, plot_w, plot_h), (cell_w, cell_h))
                .map_err(|reason| ReportError::Figure {
                    figure: "heatmap",
                    reason,
                })?;
            root.present().map_err(|e| ReportError::Figure {
                figure: "heatmap",
                reason: format!("{e:?}"),
            })?;
        }
        Ok(svg)
    }

    fn draw(
        &self,
        root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        (left, top, plot_w, plot_h): (u32, u32, u32, u32),
        (cell_w, cell_h): (u32, u32),
    ) -> Result<(), String> {
        let px = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        root.fill(&WHITE).map_err(drawing)?;
        let (lo, hi) = self.range().unwrap_or((0.0, 0.0));
        let scale = f64::from(lo.abs().max(hi.abs())).max(f64::MIN_POSITIVE);
        let centred = Pos::new(HPos::Center, VPos::Center);
        let (width, _) = root.dim_in_pixel();
        root.draw(&Text::new(
            self.title.clone(),
            (px(width) / 2, 8),
            TextStyle::from(("sans-serif", 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(drawing)?;
        let label = TextStyle::from(("sans-serif", 11).into_font());
        let rows = self.layers.len();
        // Row r (ascending layers in the file's order) is drawn from the bottom up.
        let row_top = |r: usize| px(top) + px(cell_h) * i32::try_from(rows - 1 - r).unwrap_or(0);
        let col_left = |c: usize| px(left) + px(cell_w) * i32::try_from(c).unwrap_or(0);
        let label_every = rows.div_ceil(40).max(1);
        for (r, (layer, row)) in self.layers.iter().zip(&self.cells).enumerate() {
            let y = row_top(r);
            if r % label_every == 0 || r + 1 == rows {
                root.draw(&Text::new(
                    format!("layer {layer}"),
                    (px(left) - 6, y + px(cell_h) / 2),
                    label.clone().pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(drawing)?;
            }
            for (c, &(neuron, score)) in row.iter().enumerate() {
                let x = col_left(c);
                let t = if score.is_finite() {
                    f64::from(score) / scale
                } else {
                    0.0
                };
                let fill = diverging(t);
                root.draw(&Rectangle::new(
                    [(x, y), (x + px(cell_w), y + px(cell_h))],
                    fill.filled(),
                ))
                .map_err(drawing)?;
                if self.marked.contains(&Neuron::new(*layer, neuron)) {
                    root.draw(&Rectangle::new(
                        [(x + 1, y + 1), (x + px(cell_w) - 1, y + px(cell_h) - 1)],
                        BLACK.stroke_width(2),
                    ))
                    .map_err(drawing)?;
                    let ink = if t.abs() > 0.6 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        neuron.to_string(),
                        (x + px(cell_w) / 2, y + px(cell_h) / 2),
                        TextStyle::from(("sans-serif", 9).into_font())
                            .color(&ink)
                            .pos(centred),
                    ))
                    .map_err(drawing)?;
                }
            }
        }
        // Frame and the rank axis.
        root.draw(&Rectangle::new(
            [(px(left), px(top)), (px(left + plot_w), px(top + plot_h))],
            BLACK.stroke_width(1),
        ))
        .map_err(drawing)?;
        let rank_every = self.k.div_ceil(25).max(1);
        for c in 0..self.k {
            if c % rank_every == 0 || c + 1 == self.k {
                root.draw(&Text::new(
                    (c + 1).to_string(),
                    (col_left(c) + px(cell_w) / 2, px(top + plot_h) + 4),
                    label.clone().pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(drawing)?;
            }
        }
        root.draw(&Text::new(
            format!(
                "rank of the neuron within its layer (top {} by score)",
                self.k
            ),
            (px(left + plot_w / 2), px(top + plot_h) + 22),
            label.clone().pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(drawing)?;
        self.draw_colour_bar(
            root,
            (px(left + plot_w) + 24, px(top)),
            px(plot_h.max(120)),
            scale,
            (lo, hi),
        )
    }

    /// The colour bar: from `min(lo, 0)` to `max(hi, 0)`, ticks at both ends and zero.
    fn draw_colour_bar(
        &self,
        root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        (x, y): (i32, i32),
        height: i32,
        scale: f64,
        (lo, hi): (f32, f32),
    ) -> Result<(), String> {
        let (low, high) = (f64::from(lo.min(0.0)), f64::from(hi.max(0.0)));
        let span = (high - low).max(f64::MIN_POSITIVE);
        let steps = 64;
        for i in 0..steps {
            let y0 = y + height * i / steps;
            let y1 = y + height * (i + 1) / steps;
            let value = high - span * (f64::from(i) + 0.5) / f64::from(steps);
            root.draw(&Rectangle::new(
                [(x, y0), (x + 16, y1.max(y0 + 1))],
                diverging(value / scale).filled(),
            ))
            .map_err(drawing)?;
        }
        root.draw(&Rectangle::new(
            [(x, y), (x + 16, y + height)],
            BLACK.stroke_width(1),
        ))
        .map_err(drawing)?;
        let style =
            TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        let mut ticks = vec![high, low];
        // Zero too, unless its label would overlap an end's (closer than 14 pixels).
        let zero_at = high / span * f64::from(height);
        if low < 0.0 && high > 0.0 && zero_at >= 14.0 && f64::from(height) - zero_at >= 14.0 {
            ticks.push(0.0);
        }
        for value in ticks {
            let ty = y + ((high - value) / span * f64::from(height)).round() as i32;
            root.draw(&PathElement::new(vec![(x + 16, ty), (x + 20, ty)], BLACK))
                .map_err(drawing)?;
            root.draw(&Text::new(format_value(value), (x + 23, ty), style.clone()))
                .map_err(drawing)?;
        }
        root.draw(&Text::new(
            "score",
            (x, y - 6),
            TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))
        .map_err(drawing)?;
        Ok(())
    }
}

/// The diverging palette: `t` in [-1, 1], blue (negative) through white to red (positive).
pub(crate) fn diverging(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let (r, g, b) = if t < 0.0 {
        (33.0, 102.0, 172.0)
    } else {
        (178.0, 24.0, 43.0)
    };
    let a = t.abs();
    let mix = |c: f64| (255.0 * (1.0 - a) + c * a).round().clamp(0.0, 255.0) as u8;
    RGBColor(mix(r), mix(g), mix(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_takes_the_highest_scores_in_order() {
        let row = [0.1, 0.5, f32::NAN, -0.2, 0.5, 0.3];
        assert_eq!(top_k(&row, 3), vec![(1, 0.5), (4, 0.5), (5, 0.3)]);
        assert_eq!(top_k(&row, 0), vec![]);
        let all = top_k(&row, 10);
        assert_eq!(all.len(), 6);
        assert_eq!(all[4], (3, -0.2));
        assert_eq!(all[5].0, 2); // NaN last
    }

    fn heatmap() -> Heatmap {
        let scores = Matrix {
            rows: 2,
            cols: 4,
            data: vec![0.0, 3.0, 1.0, 2.0, -1.0, -4.0, 0.5, 0.25],
        };
        let marked = [(7, 1), (9, 2), (9, 1)]
            .into_iter()
            .map(Neuron::from)
            .collect();
        Heatmap::new(
            Path::new("s.npy"),
            &scores,
            &[7, 9],
            2,
            marked,
            "P1:1: a -> b".into(),
        )
        .unwrap()
    }

    #[test]
    fn rows_select_their_top_neurons_and_marks_split() {
        let h = heatmap();
        assert_eq!(h.cells[0], vec![(1, 3.0), (3, 2.0)]);
        assert_eq!(h.cells[1], vec![(2, 0.5), (3, 0.25)]);
        assert_eq!(h.range(), Some((0.25, 3.0)));
        let (shown, hidden) = h.marked_split();
        assert_eq!(shown, vec![Neuron::new(7, 1), Neuron::new(9, 2)]);
        assert_eq!(hidden, vec![Neuron::new(9, 1)]);
    }

    #[test]
    fn the_svg_has_cells_outlines_and_labels() {
        let svg = heatmap().to_svg().unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "P1:1: a -&gt; b",
            "layer 7",
            "layer 9",
            "score",
            "rank of the neuron",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.matches("<rect").count() >= 4 + 2 + 64);
    }

    #[test]
    fn wrong_row_counts_name_the_file() {
        let scores = Matrix {
            rows: 1,
            cols: 1,
            data: vec![1.0],
        };
        let error = Heatmap::new(
            Path::new("x/P1_1.npy"),
            &scores,
            &[0, 1],
            3,
            BTreeSet::new(),
            String::new(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("P1_1.npy"));
    }

    #[test]
    fn palette_is_white_at_zero_and_saturates() {
        assert_eq!(diverging(0.0), RGBColor(255, 255, 255));
        assert_eq!(diverging(1.0), RGBColor(178, 24, 43));
        assert_eq!(diverging(-7.0), RGBColor(33, 102, 172));
        assert_eq!(diverging(f64::NAN), RGBColor(255, 255, 255));
    }
}
