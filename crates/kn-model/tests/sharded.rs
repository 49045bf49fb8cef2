//! Checkpoints as they ship: shards listed by `model.safetensors.index.json`, in half precision,
//! memory-mapped. A sharded copy of a fixture computes exactly what the single file does, and
//! every broken index or shard is an error naming the file and the tensor.

use kn_model::tch::{Device, Kind};
use kn_model::{load_model, AnswerPolicy, KnowledgeModel, ModelError};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// A copy of `name` whose weights are split over `shards` files with an index; `convert`
/// may change each tensor's bytes and dtype. Returns the directory.
fn sharded_copy(
    name: &str,
    shards: usize,
    convert: impl Fn(Dtype, &[u8]) -> (Dtype, Vec<u8>),
) -> tempfile::TempDir {
    let source = fixture(name);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "model.safetensors" {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().cloned().collect();
    names.sort();
    let mut weight_map = BTreeMap::new();
    for (k, chunk) in names.chunks(names.len().div_ceil(shards)).enumerate() {
        let shard = format!("model-{:05}-of-{:05}.safetensors", k + 1, shards);
        let converted: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = chunk
            .iter()
            .map(|n| {
                let view = file.tensor(n).unwrap();
                let (dtype, data) = convert(view.dtype(), view.data());
                (n.clone(), dtype, view.shape().to_vec(), data)
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = converted
            .iter()
            .map(|(n, dtype, shape, data)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
                )
            })
            .collect();
        let out = safetensors::serialize(views, &None).unwrap();
        std::fs::write(dir.path().join(&shard), out).unwrap();
        for n in chunk {
            weight_map.insert(n.clone(), shard.clone());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    dir
}

fn logits(model: &dyn KnowledgeModel) -> Vec<f32> {
    let text = match model.info().kind {
        kn_model::ModelKind::Masked => "The capital of France is [MASK] .",
        kn_model::ModelKind::Causal => "The capital of France is",
    };
    let prompt = model
        .encode(text, Some("Paris"), AnswerPolicy::FirstToken)
        .unwrap();
    let out = model.forward(&[prompt], &[], false).unwrap().logits;
    Vec::<f32>::try_from(out.flatten(0, -1).to_kind(Kind::Float)).unwrap()
}

fn load_error(dir: &Path) -> ModelError {
    match load_model(dir.to_str().unwrap(), Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn sharded_checkpoints_compute_what_the_single_file_does() {
    for name in ["tiny-llama", "tiny-bert", "family/tiny-gpt2"] {
        let single = load_model(fixture(name).to_str().unwrap(), Device::Cpu).unwrap();
        let dir = sharded_copy(name, 3, |dtype, data| (dtype, data.to_vec()));
        let sharded = load_model(dir.path().to_str().unwrap(), Device::Cpu).unwrap();
        assert_eq!(logits(single.as_ref()), logits(sharded.as_ref()), "{name}");
    }
}

/// A float32 tensor's bytes with every value written by `encode`, as `dtype`; other tensors as
/// they are.
fn map_f32(
    dtype: Dtype,
    data: &[u8],
    to: Dtype,
    encode: impl Fn(f32) -> Vec<u8>,
) -> (Dtype, Vec<u8>) {
    if dtype != Dtype::F32 {
        return (dtype, data.to_vec());
    }
    let out = data
        .chunks_exact(4)
        .flat_map(|c| encode(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    (to, out)
}

#[test]
fn bfloat16_shards_are_read_as_their_float32_values() {
    // Weights rounded to bfloat16 on the way in: the model computes with exactly those values,
    // which a float32 checkpoint of the same rounded weights reproduces bit for bit.
    let to_bf16 = |dtype: Dtype, data: &[u8]| {
        map_f32(dtype, data, Dtype::BF16, |v| {
            half::bf16::from_f32(v).to_le_bytes().to_vec()
        })
    };
    let rounded_f32 = |dtype: Dtype, data: &[u8]| {
        map_f32(dtype, data, Dtype::F32, |v| {
            half::bf16::from_f32(v).to_f32().to_le_bytes().to_vec()
        })
    };
    let bf16 = sharded_copy("tiny-llama", 2, to_bf16);
    let f32 = sharded_copy("tiny-llama", 1, rounded_f32);
    let a = load_model(bf16.path().to_str().unwrap(), Device::Cpu).unwrap();
    let b = load_model(f32.path().to_str().unwrap(), Device::Cpu).unwrap();
    assert_eq!(logits(a.as_ref()), logits(b.as_ref()));
}

#[test]
fn broken_shards_and_indexes_are_errors_naming_the_file_and_tensor() {
    let same = |dtype: Dtype, data: &[u8]| (dtype, data.to_vec());
    // A missing shard: the I/O error names it.
    let dir = sharded_copy("tiny-llama", 2, same);
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let error = load_error(dir.path());
    assert!(
        error
            .to_string()
            .contains("model-00002-of-00002.safetensors"),
        "{error}"
    );

    // An index naming a tensor no shard has.
    let dir = sharded_copy("tiny-llama", 2, same);
    let index_path = dir.path().join("model.safetensors.index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    index["weight_map"]["model.layers.9.mlp.up_proj.weight"] =
        "model-00001-of-00002.safetensors".into();
    std::fs::write(&index_path, index.to_string()).unwrap();
    let error = load_error(dir.path());
    assert!(
        error
            .to_string()
            .contains("model.layers.9.mlp.up_proj.weight"),
        "{error}"
    );

    // A shard name that would leave the directory.
    index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "../x.safetensors".into();
    std::fs::write(&index_path, index.to_string()).unwrap();
    assert!(load_error(dir.path())
        .to_string()
        .contains("not a file name"));

    // A truncated shard, and one whose header claims more bytes than the file holds.
    for cut in [7usize, 200, 5000] {
        let dir = sharded_copy("tiny-llama", 2, same);
        let shard = dir.path().join("model-00001-of-00002.safetensors");
        let bytes = std::fs::read(&shard).unwrap();
        std::fs::write(&shard, &bytes[..bytes.len().saturating_sub(cut)]).unwrap();
        let error = load_error(dir.path());
        assert!(
            matches!(error, ModelError::Weights { .. })
                && error.to_string().contains("model-00001-of-00002"),
            "cut {cut}: {error}"
        );
    }
    // A dtype the loader does not take, for a weight it needs.
    let to_i32 = |dtype: Dtype, data: &[u8]| {
        if dtype == Dtype::F32 {
            (Dtype::I32, data.to_vec())
        } else {
            (dtype, data.to_vec())
        }
    };
    let dir = sharded_copy("tiny-llama", 1, to_i32);
    let error = load_error(dir.path());
    assert!(error.to_string().contains("not a float weight"), "{error}");
}
