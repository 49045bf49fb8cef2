//! Weight edits of value slots that can be undone bit for bit and saved as small patch files.
//!
//! Every weight edit of this crate goes through [`edit_value_slots`]: it checks everything
//! (neurons inside the model, value shapes, finite values) before writing anything, reads the
//! current value slots, writes the new ones, and returns an [`EditHandle`] holding both. The
//! handle's [`EditHandle::restore`] writes the old values back exactly (float32 copies, no
//! arithmetic), and [`EditHandle::patch`] is a [`Patch`] that can be saved.
//!
//! # Patch files
//!
//! A patch is a safetensors file with two float32 tensors, `old_values` and `new_values`, both
//! `[n, hidden]` (row `i` is the value slot of neuron `i`), and one metadata entry,
//! `kn_edit_patch`, a JSON object:
//!
//! ```text
//! { "format": "kn-edit-patch", "version": 1,
//!   "model": { "architecture", "kind", "num_layers", "ffn_width", "hidden_size",
//!              "vocab_size", "fingerprint" },
//!   "neurons": [[layer, neuron], ...],
//!   "description": "..." }
//! ```
//!
//! [`apply_patch`] refuses a patch whose model differs from the loaded one in any of those
//! fields ([`EditError::ModelMismatch`], [`EditError::FingerprintMismatch`]). Edits applied on
//! top of each other are undone in reverse order.

use crate::error::{torch, EditError, Result};
use kn_model::tch::{Device, Kind, Tensor};
use kn_model::{KnowledgeModel, ModelInfo};
use kn_schema::{ModelDifference, Neuron};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The name of the metadata entry holding a patch's header.
pub const PATCH_METADATA_KEY: &str = "kn_edit_patch";
/// The `format` field of a patch header.
pub const PATCH_FORMAT: &str = "kn-edit-patch";
/// The current patch version.
pub const PATCH_VERSION: u32 = 1;

/// Checks that `info` describes the model a patch or handle was made for (`expected`):
/// architecture fields first ([`EditError::ModelMismatch`]), then the weights' fingerprint
/// ([`EditError::FingerprintMismatch`]); see [`ModelInfo::difference`].
pub fn check_model(expected: &ModelInfo, info: &ModelInfo) -> Result<()> {
    match expected.difference(info) {
        None => Ok(()),
        Some(ModelDifference::Architecture(field, patch, model)) => Err(EditError::ModelMismatch {
            field,
            patch,
            model,
        }),
        Some(ModelDifference::Fingerprint(patch, model)) => {
            Err(EditError::FingerprintMismatch { patch, model })
        }
    }
}

/// A saved weight edit: which value slots, their old and new values, and for which model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    /// The model it applies to.
    pub model: ModelInfo,
    /// The edited neurons, each once (`[layer, neuron]` pairs in the header); row `i` of the
    /// values is neuron `i`.
    pub neurons: Vec<Neuron>,
    /// Value slots before the edit, row-major `[neurons.len(), hidden_size]`.
    pub old_values: Vec<f32>,
    /// Value slots after the edit, row-major `[neurons.len(), hidden_size]`.
    pub new_values: Vec<f32>,
    /// What the edit was (free text).
    pub description: String,
}

#[derive(Serialize, Deserialize)]
struct PatchHeader {
    format: String,
    version: u32,
    model: ModelInfo,
    neurons: Vec<Neuron>,
    #[serde(default)]
    description: String,
}

fn format_error(reason: impl Into<String>) -> EditError {
    EditError::PatchFormat {
        reason: reason.into(),
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Patch {
    /// Checks the patch's own consistency: neurons inside its model, each once, and both value
    /// arrays of `neurons.len() * hidden_size` entries.
    pub fn check_shape(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for &Neuron {
            layer,
            index: neuron,
        } in &self.neurons
        {
            if layer >= self.model.num_layers || neuron >= self.model.ffn_width {
                return Err(format_error(format!(
                    "neuron ({layer}, {neuron}) is outside the patch's model"
                )));
            }
            if !seen.insert((layer, neuron)) {
                return Err(format_error(format!(
                    "neuron ({layer}, {neuron}) is listed twice"
                )));
            }
        }
        let expected = self
            .neurons
            .len()
            .checked_mul(self.model.hidden_size)
            .ok_or_else(|| format_error("size overflow"))?;
        for (name, values) in [
            ("old_values", &self.old_values),
            ("new_values", &self.new_values),
        ] {
            if values.len() != expected {
                return Err(format_error(format!(
                    "{name} has {} values, {} neurons x hidden size {} need {expected}",
                    values.len(),
                    self.neurons.len(),
                    self.model.hidden_size
                )));
            }
        }
        Ok(())
    }

    /// The patch that undoes this one (old and new values swapped).
    pub fn reversed(&self) -> Patch {
        Patch {
            model: self.model.clone(),
            neurons: self.neurons.clone(),
            old_values: self.new_values.clone(),
            new_values: self.old_values.clone(),
            description: format!("undo: {}", self.description),
        }
    }

    /// The patch as safetensors bytes (see the module docs).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check_shape()?;
        let header = PatchHeader {
            format: PATCH_FORMAT.into(),
            version: PATCH_VERSION,
            model: self.model.clone(),
            neurons: self.neurons.clone(),
            description: self.description.clone(),
        };
        let header = serde_json::to_string(&header).map_err(|e| format_error(e.to_string()))?;
        let metadata: HashMap<String, String> = [(PATCH_METADATA_KEY.to_string(), header)]
            .into_iter()
            .collect();
        let shape = vec![self.neurons.len(), self.model.hidden_size];
        let old = f32_bytes(&self.old_values);
        let new = f32_bytes(&self.new_values);
        let view = |data| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
        };
        let tensors = [
            (
                "new_values",
                view(&new).map_err(|e| format_error(e.to_string()))?,
            ),
            (
                "old_values",
                view(&old).map_err(|e| format_error(e.to_string()))?,
            ),
        ];
        safetensors::serialize(tensors, &Some(metadata)).map_err(|e| format_error(e.to_string()))
    }

    /// Reads a patch from safetensors bytes, checking its format, version and shapes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Patch> {
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| format_error(format!("not a safetensors file: {e}")))?;
        let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| format_error(e.to_string()))?;
        let header = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(PATCH_METADATA_KEY))
            .ok_or_else(|| {
                format_error(format!(
                    "no {PATCH_METADATA_KEY} metadata: not a kn-edit patch"
                ))
            })?;
        let header: PatchHeader =
            serde_json::from_str(header).map_err(|e| format_error(format!("bad header: {e}")))?;
        if header.format != PATCH_FORMAT {
            return Err(format_error(format!(
                "format is {:?}, expected {PATCH_FORMAT:?}",
                header.format
            )));
        }
        if header.version != PATCH_VERSION {
            return Err(format_error(format!(
                "version {} is not supported (this build reads {PATCH_VERSION})",
                header.version
            )));
        }
        let read = |name: &str| -> Result<Vec<f32>> {
            let view = file
                .tensor(name)
                .map_err(|e| format_error(format!("{name}: {e}")))?;
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(format_error(format!(
                    "{name} is {:?}, expected F32",
                    view.dtype()
                )));
            }
            let expected = [header.neurons.len(), header.model.hidden_size];
            if view.shape() != expected {
                return Err(format_error(format!(
                    "{name} has shape {:?}, expected {expected:?}",
                    view.shape()
                )));
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let patch = Patch {
            old_values: read("old_values")?,
            new_values: read("new_values")?,
            model: header.model,
            neurons: header.neurons,
            description: header.description,
        };
        patch.check_shape()?;
        Ok(patch)
    }

    /// Writes the patch to `path` atomically (`kn_schema::write_atomically`: an exclusive
    /// temporary file, never a planted one, removed on failure).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        let io = |source| EditError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        kn_schema::write_atomically(path, &bytes).map_err(io)
    }

    /// Reads a patch file.
    pub fn load(path: &Path) -> Result<Patch> {
        let bytes = std::fs::read(path).map_err(|source| EditError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Patch::from_bytes(&bytes)
    }
}

/// Undo information of an applied edit: restores the previous value slots bit for bit.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "an EditHandle is the only way to undo the edit"]
pub struct EditHandle {
    patch: Patch,
}

impl EditHandle {
    /// Writes the old value slots back. Checks first that `model` is the model edited.
    pub fn restore(&self, model: &mut dyn KnowledgeModel) -> Result<()> {
        check_model(&self.patch.model, model.info())?;
        write_rows(
            model,
            &self.patch.neurons,
            &self.patch.old_values,
            &self.patch.new_values,
        )
    }

    /// The edit as a patch (old values = the slots before this edit).
    pub fn patch(&self) -> &Patch {
        &self.patch
    }

    /// Consumes the handle into its patch.
    pub fn into_patch(self) -> Patch {
        self.patch
    }

    /// The edited neurons, in the order of the value rows.
    pub fn neurons(&self) -> &[Neuron] {
        &self.patch.neurons
    }

    /// Saves the edit as a patch file.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.patch.save(path)
    }
}

/// Rows `[n, hidden]` of a row-major slice, for the neurons of one layer.
fn layer_rows(values: &[f32], rows: &[usize], hidden: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * hidden);
    for &row in rows {
        if let Some(slice) = values.get(row * hidden..(row + 1) * hidden) {
            out.extend_from_slice(slice);
        }
    }
    out
}

/// Groups the rows of `neurons` by layer: layer -> (neuron indices, row indices).
fn group_by_layer(neurons: &[Neuron]) -> BTreeMap<usize, (Vec<usize>, Vec<usize>)> {
    let mut groups: BTreeMap<usize, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (row, &Neuron { layer, index }) in neurons.iter().enumerate() {
        let neuron = index;
        let entry = groups.entry(layer).or_default();
        entry.0.push(neuron);
        entry.1.push(row);
    }
    groups
}

/// Reads the value slots of `neurons` as row-major float32 `[n, hidden]`.
pub(crate) fn read_rows(model: &dyn KnowledgeModel, neurons: &[Neuron]) -> Result<Vec<f32>> {
    let hidden = model.info().hidden_size;
    let mut out = vec![0f32; neurons.len() * hidden];
    for (layer, (layer_neurons, rows)) in group_by_layer(neurons) {
        let slots = model.value_slots(layer, &layer_neurons)?;
        let values = torch(|| {
            Vec::<f32>::try_from(
                &slots
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous()
                    .flatten(0, -1),
            )
        })?
        .map_err(kn_model::ModelError::from)?;
        if values.len() != layer_neurons.len() * hidden {
            return Err(EditError::Model(kn_model::ModelError::Torch(format!(
                "value_slots of layer {layer} returned {} values, expected {}",
                values.len(),
                layer_neurons.len() * hidden
            ))));
        }
        for (i, &row) in rows.iter().enumerate() {
            if let (Some(dst), Some(src)) = (
                out.get_mut(row * hidden..(row + 1) * hidden),
                values.get(i * hidden..(i + 1) * hidden),
            ) {
                dst.copy_from_slice(src);
            }
        }
    }
    Ok(out)
}

/// Writes `values` into the value slots of `neurons`, layer by layer; if a layer fails, the
/// layers already written get `previous` back (best effort) and the error is returned.
fn write_rows(
    model: &mut dyn KnowledgeModel,
    neurons: &[Neuron],
    values: &[f32],
    previous: &[f32],
) -> Result<()> {
    let hidden = model.info().hidden_size;
    let groups = group_by_layer(neurons);
    let tensor = |rows: &[usize], source: &[f32]| -> Result<Tensor> {
        let data = layer_rows(source, rows, hidden);
        torch(|| Tensor::from_slice(&data).reshape([rows.len() as i64, hidden as i64]))
    };
    let mut written: Vec<(usize, &Vec<usize>, &Vec<usize>)> = Vec::new();
    for (&layer, (layer_neurons, rows)) in &groups {
        let result = tensor(rows, values)
            .and_then(|t| Ok(model.set_value_slots(layer, layer_neurons, &t)?));
        if let Err(error) = result {
            for &(done_layer, done_neurons, done_rows) in written.iter().rev() {
                if let Ok(t) = tensor(done_rows, previous) {
                    let _ = model.set_value_slots(done_layer, done_neurons, &t);
                }
            }
            return Err(error);
        }
        written.push((layer, layer_neurons, rows));
    }
    Ok(())
}

/// Checks neurons (inside the model, each once), value count and finiteness.
fn check_edit(info: &ModelInfo, neurons: &[Neuron], values: &[f32]) -> Result<()> {
    if neurons.is_empty() {
        return Err(EditError::EmptyNeuronSet {
            context: "a weight edit".into(),
        });
    }
    let mut seen = BTreeSet::new();
    for neuron in neurons {
        crate::neurons::check_in_model(neuron, info)?;
        if !seen.insert(*neuron) {
            return Err(EditError::InvalidParameter {
                name: "neurons",
                reason: format!("({}, {}) is listed twice", neuron.layer, neuron.index),
            });
        }
    }
    let hidden = info.hidden_size;
    if values.len() != neurons.len() * hidden {
        return Err(EditError::InvalidParameter {
            name: "values",
            reason: format!(
                "{} values for {} neurons of hidden size {hidden}",
                values.len(),
                neurons.len()
            ),
        });
    }
    for (row, &Neuron { layer, index }) in neurons.iter().enumerate() {
        let neuron = index;
        if values
            .get(row * hidden..(row + 1) * hidden)
            .is_some_and(|r| r.iter().any(|v| !v.is_finite()))
        {
            return Err(EditError::NonFiniteValues { layer, neuron });
        }
    }
    Ok(())
}

/// Overwrites the value slots of `neurons` with the rows of `values` (row-major
/// `[neurons.len(), hidden]`, float32) and returns the handle that undoes it.
///
/// Checks everything before writing: neurons inside the model and each listed once, the
/// value count, finite values. `description` is stored in the patch.
pub fn edit_value_slots(
    model: &mut dyn KnowledgeModel,
    neurons: &[Neuron],
    values: &[f32],
    description: &str,
) -> Result<EditHandle> {
    let info = model.info().clone();
    check_edit(&info, neurons, values)?;
    let old_values = read_rows(model, neurons)?;
    write_rows(model, neurons, values, &old_values)?;
    Ok(EditHandle {
        patch: Patch {
            model: info,
            neurons: neurons.to_vec(),
            old_values,
            new_values: values.to_vec(),
            description: description.to_string(),
        },
    })
}

/// Applies a patch to `model` after checking that it was made for this model (architecture
/// fields, then fingerprint) and is well formed. The handle restores the slots as they were
/// just before (which equal the patch's `old_values` when the model was unedited).
pub fn apply_patch(model: &mut dyn KnowledgeModel, patch: &Patch) -> Result<EditHandle> {
    check_model(&patch.model, model.info())?;
    patch.check_shape()?;
    edit_value_slots(model, &patch.neurons, &patch.new_values, &patch.description)
}

/// Whether the value slots of `patch`'s neurons now hold its `old_values` bit for bit (the
/// edit was undone).
pub fn verify_restored(model: &dyn KnowledgeModel, patch: &Patch) -> Result<bool> {
    let now = read_rows(model, &patch.neurons)?;
    Ok(now.len() == patch.old_values.len()
        && now
            .iter()
            .zip(&patch.old_values)
            .all(|(a, b)| a.to_bits() == b.to_bits()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ModelInfo {
        ModelInfo {
            architecture: "llama".into(),
            kind: kn_model::ModelKind::Causal,
            num_layers: 3,
            ffn_width: 8,
            hidden_size: 2,
            vocab_size: 10,
            max_positions: 16,
            source: "x".into(),
            fingerprint: "abc".into(),
            dtype: Default::default(),
        }
    }

    fn patch() -> Patch {
        Patch {
            model: identity(),
            neurons: vec![Neuron::new(0, 1), Neuron::new(2, 7)],
            old_values: vec![1.0, -2.0, 0.1, f32::MIN_POSITIVE],
            new_values: vec![0.0, -0.0, 3.5e-40, 1e30],
            description: "test".into(),
        }
    }

    fn info_of(id: &ModelInfo) -> ModelInfo {
        ModelInfo {
            source: "elsewhere".into(),
            ..id.clone()
        }
    }

    #[test]
    fn bytes_round_trip_bit_for_bit() {
        let patch = patch();
        let back = Patch::from_bytes(&patch.to_bytes().unwrap()).unwrap();
        assert_eq!(back.neurons, patch.neurons);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.old_values), bits(&patch.old_values));
        assert_eq!(bits(&back.new_values), bits(&patch.new_values));
        assert_eq!(back.model, patch.model);
        assert_eq!(back.description, "test");
        assert_eq!(patch.reversed().new_values, patch.old_values);
    }

    #[test]
    fn malformed_patches_are_refused() {
        assert!(matches!(
            Patch::from_bytes(b"nope"),
            Err(EditError::PatchFormat { .. })
        ));
        let mut bad = patch();
        bad.neurons.push(Neuron::new(0, 1));
        assert!(matches!(bad.to_bytes(), Err(EditError::PatchFormat { .. })));
        let mut bad = patch();
        bad.new_values.pop();
        assert!(bad.check_shape().is_err());
        let mut bad = patch();
        bad.neurons[1] = Neuron::new(3, 0);
        assert!(bad.check_shape().is_err());
        // A safetensors file without the header.
        let data = f32_bytes(&[1.0, 2.0]);
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 2], &data)
            .unwrap();
        let bytes = safetensors::serialize([("old_values", view)], &None).unwrap();
        assert!(matches!(
            Patch::from_bytes(&bytes),
            Err(EditError::PatchFormat { .. })
        ));
    }

    #[test]
    fn identity_checks_fields_then_fingerprint() {
        let id = identity();
        assert!(check_model(&id, &info_of(&id)).is_ok());
        let mut other = info_of(&id);
        other.architecture = "bert".into();
        other.fingerprint = "zzz".into();
        assert!(matches!(
            check_model(&id, &other),
            Err(EditError::ModelMismatch {
                field: "architecture",
                ..
            })
        ));
        let mut other = info_of(&id);
        other.hidden_size = 3;
        assert!(matches!(
            check_model(&id, &other),
            Err(EditError::ModelMismatch {
                field: "hidden_size",
                ..
            })
        ));
        let mut other = info_of(&id);
        other.fingerprint = "zzz".into();
        assert!(matches!(
            check_model(&id, &other),
            Err(EditError::FingerprintMismatch { .. })
        ));
    }

    #[test]
    fn edit_checks_catch_bad_input() {
        let info = info_of(&identity());
        assert!(matches!(
            check_edit(&info, &[], &[]),
            Err(EditError::EmptyNeuronSet { .. })
        ));
        assert!(matches!(
            check_edit(&info, &[Neuron::new(3, 0)], &[0.0, 0.0]),
            Err(EditError::LayerOutOfRange { .. })
        ));
        assert!(matches!(
            check_edit(&info, &[Neuron::new(0, 8)], &[0.0, 0.0]),
            Err(EditError::NeuronOutOfRange { .. })
        ));
        assert!(check_edit(&info, &[Neuron::new(0, 1), Neuron::new(0, 1)], &[0.0; 4]).is_err());
        assert!(check_edit(&info, &[Neuron::new(0, 1)], &[0.0; 3]).is_err());
        assert!(matches!(
            check_edit(&info, &[Neuron::new(0, 1)], &[0.0, f32::NAN]),
            Err(EditError::NonFiniteValues { .. })
        ));
        assert!(check_edit(&info, &[Neuron::new(0, 1)], &[0.0, 1.0]).is_ok());
    }

    #[test]
    fn grouping_keeps_rows() {
        let groups = group_by_layer(&[Neuron::new(2, 5), Neuron::new(0, 1), Neuron::new(2, 3)]);
        assert_eq!(groups[&2], (vec![5, 3], vec![0, 2]));
        assert_eq!(
            layer_rows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 0], 2),
            vec![5.0, 6.0, 1.0, 2.0]
        );
    }
}
