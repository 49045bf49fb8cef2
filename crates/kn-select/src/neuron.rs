//! Neurons and attribution score matrices.
//!
//! A [`Neuron`] is an FFN intermediate unit: (layer, index within the layer), with the model's
//! own layer numbering (0-based). In JSON it is the pair `[layer, index]`, as in the authors'
//! result files.
//!
//! A [`ScoreMatrix`] holds one prompt's attribution scores, row-major: row `r` is layer
//! `layers[r]`, with `width` neurons. This is the layout of kn-attribution's
//! `ndarray::Array2<f32>` (row r = layer `layers[r]`), which converts without copying the
//! layout logic:
//!
//! ```text
//! let m = ScoreMatrix::new(layers.to_vec(), scores.ncols(), scores.iter().copied().collect())?;
//! ```
//!
//! (`Array2::iter` walks in logical row-major order whatever the memory layout.) This crate does
//! not depend on ndarray or tch.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SelectError};

pub use kn_schema::Neuron;

/// The attribution scores of one prompt: row-major, row `r` = layer `layers[r]`.
///
/// Invariants (checked by [`ScoreMatrix::new`] and on deserialization): at least one layer and
/// one neuron per layer, distinct layers, `data.len() == layers.len() * width`, every score
/// finite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawScoreMatrix")]
pub struct ScoreMatrix {
    layers: Vec<usize>,
    width: usize,
    data: Vec<f32>,
}

/// The unchecked serialized form of [`ScoreMatrix`].
#[derive(Deserialize)]
struct RawScoreMatrix {
    layers: Vec<usize>,
    width: usize,
    data: Vec<f32>,
}

impl TryFrom<RawScoreMatrix> for ScoreMatrix {
    type Error = SelectError;

    fn try_from(raw: RawScoreMatrix) -> Result<Self> {
        Self::new(raw.layers, raw.width, raw.data)
    }
}

impl ScoreMatrix {
    /// Builds a matrix from row-major data, checking the invariants.
    pub fn new(layers: Vec<usize>, width: usize, data: Vec<f32>) -> Result<Self> {
        if layers.is_empty() || width == 0 {
            return Err(SelectError::EmptyMatrix);
        }
        let expected = layers
            .len()
            .checked_mul(width)
            .ok_or(SelectError::ShapeMismatch {
                layers: layers.len(),
                width,
                expected: usize::MAX,
                found: data.len(),
            })?;
        if data.len() != expected {
            return Err(SelectError::ShapeMismatch {
                layers: layers.len(),
                width,
                expected,
                found: data.len(),
            });
        }
        let mut sorted = layers.clone();
        sorted.sort_unstable();
        if let Some(layer) = sorted.windows(2).find_map(|w| match w {
            [a, b] if a == b => Some(*a),
            _ => None,
        }) {
            return Err(SelectError::DuplicateLayer(layer));
        }
        let matrix = Self {
            layers,
            width,
            data,
        };
        if let Some((neuron, value)) = matrix.iter().find(|(_, v)| !v.is_finite()) {
            return Err(SelectError::NonFinite {
                layer: neuron.layer,
                index: neuron.index,
                value,
            });
        }
        Ok(matrix)
    }

    /// Builds a matrix from one row per layer (all rows of equal length).
    pub fn from_rows(layers: Vec<usize>, rows: &[Vec<f32>]) -> Result<Self> {
        let width = rows.first().map_or(0, Vec::len);
        if rows.len() != layers.len() || rows.iter().any(|r| r.len() != width) {
            return Err(SelectError::ShapeMismatch {
                layers: layers.len(),
                width,
                expected: layers.len().saturating_mul(width),
                found: rows.iter().map(Vec::len).sum(),
            });
        }
        Self::new(layers, width, rows.concat())
    }

    /// The layer of each row.
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// Neurons per layer.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The scores, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The number of scores (`layers * width`).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Always false: a valid matrix has at least one score.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The scores of row `r` (layer `layers()[r]`).
    pub fn row(&self, r: usize) -> Option<&[f32]> {
        let start = r.checked_mul(self.width)?;
        self.data.get(start..start.checked_add(self.width)?)
    }

    /// The score of a neuron, if its layer is in the matrix and its index in range.
    pub fn get(&self, neuron: Neuron) -> Option<f32> {
        let r = self.layers.iter().position(|&l| l == neuron.layer)?;
        if neuron.index >= self.width {
            return None;
        }
        self.row(r)?.get(neuron.index).copied()
    }

    /// Every (neuron, score), row by row.
    pub fn iter(&self) -> impl Iterator<Item = (Neuron, f32)> + '_ {
        self.layers.iter().enumerate().flat_map(move |(r, &layer)| {
            self.row(r)
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .map(move |(index, &v)| (Neuron { layer, index }, v))
        })
    }

    /// The largest score.
    pub fn max(&self) -> f32 {
        self.data.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }

    /// A copy with every score multiplied by `factor` (must keep scores finite).
    pub fn scaled(&self, factor: f32) -> Result<Self> {
        Self::new(
            self.layers.clone(),
            self.width,
            self.data.iter().map(|v| v * factor).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_invariants() {
        assert!(ScoreMatrix::new(vec![0, 1], 2, vec![1.0; 4]).is_ok());
        assert_eq!(
            ScoreMatrix::new(vec![], 2, vec![]),
            Err(SelectError::EmptyMatrix)
        );
        assert_eq!(
            ScoreMatrix::new(vec![0], 0, vec![]),
            Err(SelectError::EmptyMatrix)
        );
        assert!(matches!(
            ScoreMatrix::new(vec![0, 1], 2, vec![1.0; 3]),
            Err(SelectError::ShapeMismatch {
                expected: 4,
                found: 3,
                ..
            })
        ));
        assert_eq!(
            ScoreMatrix::new(vec![3, 3], 1, vec![1.0, 2.0]),
            Err(SelectError::DuplicateLayer(3))
        );
        assert!(matches!(
            ScoreMatrix::new(vec![5, 7], 2, vec![0.0, 1.0, f32::NAN, 0.0]),
            Err(SelectError::NonFinite {
                layer: 7,
                index: 0,
                ..
            })
        ));
        assert!(matches!(
            ScoreMatrix::new(vec![0], usize::MAX, vec![]),
            Err(SelectError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            ScoreMatrix::new(vec![0, 1], usize::MAX, vec![]),
            Err(SelectError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn rows_and_lookup() {
        let m = ScoreMatrix::from_rows(vec![10, 11], &[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]])
            .unwrap();
        assert_eq!(m.width(), 3);
        assert_eq!(m.row(1), Some(&[4.0, 5.0, 6.0][..]));
        assert_eq!(m.row(2), None);
        assert_eq!(m.get(Neuron::new(11, 2)), Some(6.0));
        assert_eq!(m.get(Neuron::new(11, 3)), None);
        assert_eq!(m.get(Neuron::new(0, 0)), None);
        assert_eq!(m.max(), 6.0);
        assert_eq!(m.iter().nth(4), Some((Neuron::new(11, 1), 5.0)));
        assert!(ScoreMatrix::from_rows(vec![0, 1], &[vec![1.0], vec![1.0, 2.0]]).is_err());
        assert!(ScoreMatrix::from_rows(vec![0], &[vec![1.0], vec![2.0]]).is_err());
        assert!(m.scaled(f32::MAX).is_err());
    }

    #[test]
    fn serde_forms() {
        assert_eq!(
            serde_json::to_string(&Neuron::new(9, 1234)).unwrap(),
            "[9,1234]"
        );
        assert_eq!(
            serde_json::from_str::<Neuron>("[9,1234]").unwrap(),
            Neuron::new(9, 1234)
        );
        let m = ScoreMatrix::new(vec![0], 2, vec![0.5, -1.0]).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<ScoreMatrix>(&json).unwrap(), m);
        assert!(
            serde_json::from_str::<ScoreMatrix>(r#"{"layers":[0],"width":2,"data":[1.0]}"#)
                .is_err()
        );
        assert_eq!(Neuron::new(3, 7).to_string(), "L3.7");
    }
}
