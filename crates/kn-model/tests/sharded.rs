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

// ---- `--dtype bf16|f16`: weights held and multiplied in half precision ----

use kn_model::{load_model_as, Dtype as Precision};

/// The fixtures of every decoder architecture (and a GGUF file).
const DECODERS: [&str; 11] = [
    "tiny-llama",
    "tiny-llama.gguf",
    "family/tiny-llama3",
    "family/tiny-mistral",
    "family/tiny-qwen2",
    "family/tiny-qwen3",
    "family/tiny-gemma3",
    "family/tiny-phi3",
    "family/tiny-gpt2",
    "family/tiny-gpt-neo",
    "family/tiny-gpt-neox",
];

fn load_as(path: &Path, dtype: Precision) -> Box<dyn KnowledgeModel> {
    load_model_as(path.to_str().unwrap(), Device::Cpu, dtype)
        .unwrap_or_else(|e| panic!("{} in {dtype}: {e}", path.display()))
}

/// Every decoder in bf16 and f16 predicts what it does in float32 up to the rounding of its
/// weights and products: logits within 3 % (bf16: 8 bits of mantissa) or 0.5 % (f16) of the
/// largest, the same top token (up to that rounding); and not the float32 numbers, so the half type is what runs.
#[test]
fn half_precision_computes_close_to_float32_on_every_decoder() {
    for name in DECODERS {
        let reference = logits(load_as(&fixture(name), Precision::F32).as_ref());
        let largest = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        let top = |l: &[f32]| (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
        for (dtype, tolerance) in [(Precision::Bf16, 3e-2), (Precision::F16, 5e-3)] {
            let model = load_as(&fixture(name), dtype);
            assert_eq!(model.info().dtype, dtype, "{name}");
            assert_eq!(
                model.output_projection().0.kind(),
                kn_model::torch_kind(dtype),
                "{name}"
            );
            let got = logits(model.as_ref());
            let error = got
                .iter()
                .zip(&reference)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                error <= tolerance * largest,
                "{name} {dtype}: {error} of {largest}"
            );
            assert!(error > 0.0, "{name} {dtype}: computed in float32");
            // The same top token, unless float32's top two are within the rounding (random
            // tiny models have near-flat logits).
            let (want, found) = (top(&reference), top(&got));
            assert!(
                want == found || reference[want] - reference[found] <= 2.0 * tolerance * largest,
                "{name} {dtype}: top token {found}, float32's {want}"
            );
        }
    }
}

/// A bfloat16 checkpoint loaded in bf16 holds its stored values exactly (what float32 widens
/// them to), and value slots written back after an edit restore the weights bit for bit.
#[test]
fn bfloat16_shards_load_in_bf16_as_stored_and_edits_restore_them() {
    let to_bf16 = |dtype: Dtype, data: &[u8]| {
        map_f32(dtype, data, Dtype::BF16, |v| {
            half::bf16::from_f32(v).to_le_bytes().to_vec()
        })
    };
    let dir = sharded_copy("tiny-llama", 2, to_bf16);
    let wide = load_as(dir.path(), Precision::F32);
    let mut narrow = load_as(dir.path(), Precision::Bf16);
    let neurons = [0, 3, 7];
    let slots = narrow.value_slots(1, &neurons).unwrap();
    assert_eq!(slots.kind(), Kind::Float);
    assert!(slots.equal(&wide.value_slots(1, &neurons).unwrap()));
    assert!(narrow
        .output_embedding(5)
        .unwrap()
        .equal(&wide.output_embedding(5).unwrap()));
    let before = logits(narrow.as_ref());
    narrow
        .set_value_slots(1, &neurons, &(&slots * 3.0 + 0.01))
        .unwrap();
    assert_ne!(logits(narrow.as_ref()), before);
    narrow.set_value_slots(1, &neurons, &slots).unwrap();
    assert!(narrow.value_slots(1, &neurons).unwrap().equal(&slots));
    assert_eq!(logits(narrow.as_ref()), before);
}

/// float16 holds values up to ±65504: a weight beyond is refused at load, naming the tensor
/// and the way out; bf16 takes it.
#[test]
fn float16_refuses_weights_beyond_its_range() {
    let huge = |dtype: Dtype, data: &[u8]| {
        map_f32(dtype, data, Dtype::F32, |v| {
            (v * 1e6).to_le_bytes().to_vec()
        })
    };
    let dir = sharded_copy("tiny-llama", 1, huge);
    let message = match load_model_as(dir.path().to_str().unwrap(), Device::Cpu, Precision::F16) {
        Ok(_) => panic!("loaded in f16"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("model.")
            && message.contains("float16's range")
            && message.contains("bf16"),
        "{message}"
    );
    load_as(dir.path(), Precision::Bf16);
}

#[test]
fn bert_refuses_half_precision_by_name() {
    for dtype in [Precision::Bf16, Precision::F16] {
        let error = load_model_as(fixture("tiny-bert").to_str().unwrap(), Device::Cpu, dtype)
            .err()
            .expect("BERT loaded in half precision");
        let message = error.to_string();
        assert!(
            message.contains(dtype.name()) && message.contains("BERT"),
            "{message}"
        );
    }
}
