//! Bad input to the model layer: every case gives a typed error naming the problem, never a
//! panic. Uses the committed tiny fixtures, altered in temporary copies.

use kn_model::tch::Device;
use kn_model::{load_model, AnswerPolicy, ModelError};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// A temporary copy of a fixture directory.
fn copy_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, key: &str, value: serde_json::Value) {
    let path = dir.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json[key] = value;
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
}

fn load_error(path: &Path) -> ModelError {
    match load_model(path.to_str().unwrap(), Device::Cpu) {
        Ok(_) => panic!("{} loaded but should not have", path.display()),
        Err(error) => error,
    }
}

#[test]
fn missing_path_names_the_path() {
    let error = load_error(Path::new("/nonexistent/model.gguf"));
    assert!(
        matches!(error, ModelError::UnknownModelFormat { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("/nonexistent/model.gguf"));
}

#[test]
fn a_file_that_is_not_gguf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    std::fs::write(&path, b"not a model at all").unwrap();
    assert!(matches!(
        load_error(&path),
        ModelError::UnknownModelFormat { .. }
    ));
}

#[test]
fn truncated_gguf_is_a_gguf_error() {
    let bytes = std::fs::read(fixture("tiny-llama.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [10, 200, bytes.len() / 2, bytes.len() - 1] {
        let path = dir.path().join(format!("cut{cut}.gguf"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let error = load_error(&path);
        assert!(
            matches!(error, ModelError::Gguf(_)),
            "cut at {cut}: {error}"
        );
    }
}

#[test]
fn directory_without_config_is_an_io_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let error = load_error(dir.path());
    assert!(matches!(error, ModelError::Io { .. }), "{error}");
    assert!(error.to_string().contains("config.json"));
}

#[test]
fn unsupported_model_type_is_a_config_error() {
    let dir = copy_dir("tiny-bert");
    edit_config(dir.path(), "model_type", "falcon".into());
    let error = load_error(dir.path());
    assert!(matches!(error, ModelError::Config { .. }), "{error}");
    assert!(error.to_string().contains("model_type"), "{error}");
}

#[test]
fn config_and_weights_disagreeing_is_a_shape_error() {
    let dir = copy_dir("tiny-bert");
    edit_config(dir.path(), "intermediate_size", 80.into());
    let error = load_error(dir.path());
    assert!(matches!(error, ModelError::ShapeMismatch { .. }), "{error}");
    assert!(error.to_string().contains("intermediate.dense"));

    // A layer count the weights do not hold is refused before any layer is built, naming
    // the key; so is one that would silently drop layers the weights hold.
    for layers in [4, 2] {
        let dir = copy_dir("tiny-llama");
        edit_config(dir.path(), "num_hidden_layers", layers.into());
        let error = load_error(dir.path());
        assert!(matches!(error, ModelError::Config { .. }), "{error}");
        assert!(error.to_string().contains("num_hidden_layers"), "{error}");
    }
}

#[test]
fn impossible_head_counts_are_config_errors() {
    let dir = copy_dir("tiny-llama");
    edit_config(dir.path(), "num_key_value_heads", 3.into());
    assert!(matches!(load_error(dir.path()), ModelError::Config { .. }));
    let dir = copy_dir("tiny-bert");
    edit_config(dir.path(), "num_attention_heads", 5.into());
    assert!(matches!(load_error(dir.path()), ModelError::Config { .. }));
}

#[test]
fn truncated_or_corrupt_safetensors_is_a_weights_error() {
    let dir = copy_dir("tiny-bert");
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    assert!(matches!(load_error(dir.path()), ModelError::Weights { .. }));
    // A header length far past the end of the file.
    let mut corrupt = bytes.clone();
    corrupt[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&path, &corrupt).unwrap();
    assert!(matches!(load_error(dir.path()), ModelError::Weights { .. }));
}

#[test]
fn missing_weights_file_names_it() {
    let dir = copy_dir("tiny-bert");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let error = load_error(dir.path());
    assert!(error.to_string().contains("model.safetensors"), "{error}");
}

#[test]
fn masked_prompts_need_exactly_one_mask() {
    let model = load_model(fixture("tiny-bert").to_str().unwrap(), Device::Cpu).unwrap();
    let error = model
        .encode(
            "The capital of France is Paris .",
            None,
            AnswerPolicy::FirstToken,
        )
        .unwrap_err();
    assert!(matches!(error, ModelError::NoMask { .. }), "{error}");
    let error = model
        .encode(
            "[MASK] is the capital of [MASK] .",
            None,
            AnswerPolicy::FirstToken,
        )
        .unwrap_err();
    assert!(
        matches!(error, ModelError::SeveralMasks { count: 2, .. }),
        "{error}"
    );
    assert!(matches!(
        model.encode("  ", None, AnswerPolicy::FirstToken),
        Err(ModelError::EmptyPrompt)
    ));
}

#[test]
fn answers_must_tokenize_as_the_policy_needs() {
    let bert = load_model(fixture("tiny-bert").to_str().unwrap(), Device::Cpu).unwrap();
    let error = bert
        .encode(
            "The capital of France is [MASK] .",
            Some("iPhone"),
            AnswerPolicy::FirstToken,
        )
        .unwrap_err();
    assert!(matches!(error, ModelError::BadAnswer { .. }), "{error}");
    let error = bert
        .encode(
            "The capital of France is [MASK] .",
            Some("Paris"),
            AnswerPolicy::WholeAnswer,
        )
        .unwrap_err();
    assert!(matches!(error, ModelError::BadAnswer { .. }), "{error}");

    let llama = load_model(fixture("tiny-llama").to_str().unwrap(), Device::Cpu).unwrap();
    let error = llama
        .encode(
            "The capital of France is",
            Some("   "),
            AnswerPolicy::FirstToken,
        )
        .unwrap_err();
    assert!(matches!(error, ModelError::BadAnswer { .. }), "{error}");
    let long = llama
        .encode(
            "The capital of France is",
            Some("Xyzzyq Quuxplugh"),
            AnswerPolicy::FirstToken,
        )
        .unwrap();
    assert!(long.answer_ids.len() > 1);
    let error = llama
        .encode(
            "The capital of France is",
            Some("Xyzzyq Quuxplugh"),
            AnswerPolicy::SingleToken,
        )
        .unwrap_err();
    assert!(matches!(error, ModelError::BadAnswer { .. }), "{error}");
}

#[test]
fn prompts_longer_than_the_context_are_refused() {
    let llama = load_model(fixture("tiny-llama").to_str().unwrap(), Device::Cpu).unwrap();
    let long = "word ".repeat(400);
    assert!(matches!(
        llama.encode(&long, None, AnswerPolicy::FirstToken),
        Err(ModelError::PromptTooLong { max: 256, .. })
    ));
}

#[test]
fn layer_neuron_and_token_indices_are_checked() {
    let mut model = load_model(fixture("tiny-llama").to_str().unwrap(), Device::Cpu).unwrap();
    assert!(matches!(
        model.value_slots(3, &[0]),
        Err(ModelError::LayerOutOfRange {
            layer: 3,
            layers: 3
        })
    ));
    assert!(matches!(
        model.value_slots(0, &[96]),
        Err(ModelError::NeuronOutOfRange {
            neuron: 96,
            width: 96
        })
    ));
    assert!(matches!(
        model.output_embedding(600),
        Err(ModelError::TokenOutOfRange { .. })
    ));
    assert!(matches!(
        model.output_embedding(-1),
        Err(ModelError::TokenOutOfRange { .. })
    ));
    let wrong_shape =
        kn_model::tch::Tensor::zeros([2, 64], (kn_model::tch::Kind::Float, Device::Cpu));
    assert!(matches!(
        model.set_value_slots(0, &[1], &wrong_shape),
        Err(ModelError::InvalidArgument(_))
    ));
    assert!(matches!(
        model.forward(&[], &[], false),
        Err(ModelError::InvalidArgument(_))
    ));
}

#[test]
fn unknown_devices_are_refused() {
    assert!(kn_model::parse_device("gpu0").is_err());
}

/// `key = value` in a copy of `fixture` must be refused as a configuration error naming `key`.
fn assert_refused_naming(fixture_name: &str, key: &str, value: serde_json::Value) {
    let dir = copy_dir(fixture_name);
    edit_config(dir.path(), key, value.clone());
    let error = load_error(dir.path());
    assert!(
        matches!(error, ModelError::Config { .. }) && error.to_string().contains(key),
        "{fixture_name}: {key} = {value}: {error}"
    );
}

/// The sizes that once aborted the process ("memory allocation of 48000000000 bytes failed")
/// or panicked ("capacity overflow"), and a family around them, for every size key of both
/// directory formats: each is an error naming the key, before anything is allocated.
#[test]
fn absurd_sizes_in_config_json_are_errors_naming_the_key() {
    let values = [
        serde_json::json!(1e9),
        serde_json::json!(1u64 << 31),
        serde_json::json!(1u64 << 62),
        serde_json::json!(u64::MAX),
        serde_json::json!(1u64 << 40),
        serde_json::json!(1e300),
        serde_json::json!(-1),
        serde_json::json!(2.5),
    ];
    for key in [
        "num_hidden_layers",
        "hidden_size",
        "intermediate_size",
        "vocab_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
    ] {
        for value in &values {
            assert_refused_naming("tiny-llama", key, value.clone());
        }
    }
    for key in [
        "num_hidden_layers",
        "hidden_size",
        "intermediate_size",
        "vocab_size",
        "num_attention_heads",
        "max_position_embeddings",
        "type_vocab_size",
    ] {
        for value in &values {
            assert_refused_naming("tiny-bert", key, value.clone());
        }
    }
}

#[test]
fn nan_producing_settings_are_refused_at_load() {
    for value in [serde_json::json!(-1e-5), serde_json::json!(0.0)] {
        assert_refused_naming("tiny-llama", "rms_norm_eps", value.clone());
        assert_refused_naming("tiny-bert", "layer_norm_eps", value);
    }
    // transformers 4.x key and 5.x table.
    assert_refused_naming("tiny-llama", "rope_theta", serde_json::json!(0));
    assert_refused_naming(
        "tiny-llama",
        "rope_parameters",
        serde_json::json!({"rope_type": "default", "rope_theta": -1.0}),
    );
}

/// The offset of the value of GGUF metadata `key` (after its name and 4-byte type).
fn gguf_value_offset(bytes: &[u8], key: &str) -> usize {
    let at = bytes
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap_or_else(|| panic!("{key} not in the fixture"));
    at + key.len() + 4
}

/// A copy of tiny-llama.gguf with `bytes` written at `key`'s value.
fn gguf_with(key: &str, value: &[u8]) -> (tempfile::TempDir, PathBuf) {
    gguf_changed("tiny-llama.gguf", |bytes| {
        let at = gguf_value_offset(bytes, key);
        bytes[at..at + value.len()].copy_from_slice(value);
    })
}

/// A copy of the GGUF fixture `name` changed by `change`.
fn gguf_changed(name: &str, change: impl FnOnce(&mut Vec<u8>)) -> (tempfile::TempDir, PathBuf) {
    let mut bytes = std::fs::read(fixture(name)).unwrap();
    change(&mut bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn absurd_block_counts_and_nan_settings_in_gguf_are_errors_naming_the_key() {
    // llama.block_count is a u32 in the fixture.
    for count in [0u32, 2, 4, 1025, 1 << 20, 1 << 31, u32::MAX] {
        let (_dir, path) = gguf_with("llama.block_count", &count.to_le_bytes());
        let error = load_error(&path);
        assert!(
            matches!(error, ModelError::Config { .. })
                && error.to_string().contains("llama.block_count"),
            "block_count {count}: {error}"
        );
    }
    for key in [
        "llama.rope.freq_base",
        "llama.attention.layer_norm_rms_epsilon",
    ] {
        for value in [f32::NAN, f32::INFINITY, 0.0, -1.0] {
            let (_dir, path) = gguf_with(key, &value.to_le_bytes());
            let error = load_error(&path);
            assert!(
                matches!(error, ModelError::Config { .. }) && error.to_string().contains(key),
                "{key} = {value}: {error}"
            );
        }
    }
}

#[test]
fn qwen2_gguf_keys_and_tensors_are_checked_by_name() {
    let fixture_name = "family/tiny-qwen2.gguf";
    for count in [0u32, 2, 1025, u32::MAX] {
        let (_dir, path) = gguf_changed(fixture_name, |bytes| {
            let at = gguf_value_offset(bytes, "qwen2.block_count");
            bytes[at..at + 4].copy_from_slice(&count.to_le_bytes());
        });
        let error = load_error(&path);
        assert!(
            error.to_string().contains("qwen2.block_count"),
            "block_count {count}: {error}"
        );
    }
    let key = "qwen2.attention.layer_norm_rms_epsilon";
    let (_dir, path) = gguf_changed(fixture_name, |bytes| {
        let at = gguf_value_offset(bytes, key);
        bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert!(load_error(&path).to_string().contains(key));
    // A bias the architecture needs, renamed away.
    let (_dir, path) = gguf_changed(fixture_name, |bytes| {
        let name = b"blk.1.attn_k.bias";
        let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
        bytes[at + name.len() - 4..at + name.len()].copy_from_slice(b"bia_");
    });
    let error = load_error(&path);
    assert!(error.to_string().contains("blk.1.attn_k.bias"), "{error}");
}

#[test]
fn a_nan_weight_in_a_gguf_file_is_refused_naming_the_tensor() {
    // tiny-llama.gguf is all F32: its last four bytes are the last float of the last tensor.
    let (_dir, path) = gguf_changed("tiny-llama.gguf", |bytes| {
        let end = bytes.len();
        bytes[end - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let error = load_error(&path);
    assert!(
        matches!(error, ModelError::Weights { .. })
            && error.to_string().contains("NaN or infinite"),
        "{error}"
    );
}

#[test]
fn a_nan_or_infinite_weight_is_refused_naming_the_tensor() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let dir = copy_dir("tiny-llama");
        let path = dir.path().join("model.safetensors");
        let mut bytes = std::fs::read(&path).unwrap();
        // The last four bytes are the last float of the last tensor of the file.
        let end = bytes.len();
        bytes[end - 4..].copy_from_slice(&bad.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        let error = load_error(dir.path());
        assert!(
            matches!(error, ModelError::Weights { .. })
                && error.to_string().contains("NaN or infinite"),
            "{bad}: {error}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_endless_config_json_is_refused_after_a_bounded_read() {
    let dir = copy_dir("tiny-llama");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("config.json")).unwrap();
    let error = load_error(dir.path());
    assert!(error.to_string().contains("larger than"), "{error}");
}

/// Every decoder architecture refuses what it does not implement, and weights that contradict
/// its configuration, naming the key or the tensor.
#[test]
fn decoder_architectures_refuse_unimplemented_keys_and_contradicting_weights() {
    for (fixture_name, key, value) in [
        (
            "family/tiny-gemma3",
            "attn_logit_softcapping",
            serde_json::json!(50.0),
        ),
        (
            "family/tiny-gemma3",
            "final_logit_softcapping",
            serde_json::json!(30.0),
        ),
        (
            "family/tiny-llama3",
            "rope_parameters",
            serde_json::json!({"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}),
        ),
        (
            "family/tiny-phi3",
            "rope_parameters",
            serde_json::json!({"rope_type": "longrope", "rope_theta": 1e4}),
        ),
        (
            "family/tiny-gpt2",
            "scale_attn_by_inverse_layer_idx",
            serde_json::json!(true),
        ),
        ("family/tiny-llama3", "mlp_bias", serde_json::json!(true)),
        (
            "family/tiny-mistral",
            "hidden_act",
            serde_json::json!("relu"),
        ),
        (
            "family/tiny-gpt-neo",
            "attention_types",
            serde_json::json!([[["global", "sparse"], 3]]),
        ),
    ] {
        assert_refused_naming(fixture_name, key, value);
    }
    // Shapes the weights contradict: the tensor is named.
    for (fixture_name, key, value, tensor) in [
        ("family/tiny-gpt2", "n_inner", 80, "mlp.c_fc"),
        (
            "family/tiny-gpt-neox",
            "intermediate_size",
            80,
            "dense_h_to_4h",
        ),
        ("family/tiny-gemma3", "intermediate_size", 80, "gate_proj"),
        ("family/tiny-phi3", "intermediate_size", 80, "gate_up_proj"),
    ] {
        let dir = copy_dir(fixture_name);
        edit_config(dir.path(), key, value.into());
        let error = load_error(dir.path());
        assert!(
            matches!(error, ModelError::ShapeMismatch { .. }) && error.to_string().contains(tensor),
            "{fixture_name}: {error}"
        );
    }
}
