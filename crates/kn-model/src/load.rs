//! Opening a model from what a user types: `default`, a GGUF file, or a Hugging Face style
//! directory whose `config.json` names a BERT or a Llama-family model (llama, mistral, qwen2,
//! qwen3).

use crate::bert::BertMaskedLm;
use crate::decoder::DecoderLm;
use crate::error::{ModelError, Result};
use crate::model::KnowledgeModel;
use crate::precision::Dtype;
use std::path::{Path, PathBuf};
use tch::Device;

/// File name of the default model, SmolLM2-135M-Instruct (Q4_1 GGUF).
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// File name of Gemma-3-270M (base, Q4_K_M GGUF), `--model gemma-3-270m`.
pub const GEMMA3_270M_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

/// The models `scripts/fetch-model.sh --model NAME` installs, by the name `--model` takes, with
/// their file in the model directory.
pub const NAMED_MODELS: [(&str, &str); 2] = [
    ("default", DEFAULT_MODEL_FILE),
    ("gemma-3-270m", GEMMA3_270M_FILE),
];

/// Where the default model is expected: `$KN_MODEL_DIR`, else `$KN_CACHE_DIR/models`, else
/// `$XDG_CACHE_HOME/knowledge-neurons/models`, else `~/.cache/knowledge-neurons/models`
/// (the same rule as `scripts/fetch-model.sh`).
pub fn default_model_path() -> PathBuf {
    model_dir().join(DEFAULT_MODEL_FILE)
}

/// Where `scripts/fetch-model.sh --model gemma-3-270m` puts Gemma-3-270M.
pub fn gemma3_270m_path() -> PathBuf {
    model_dir().join(GEMMA3_270M_FILE)
}

/// A non-empty environment variable as a path.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The project's cache: `$KN_CACHE_DIR`, else `$XDG_CACHE_HOME/knowledge-neurons`, else
/// `~/.cache/knowledge-neurons` (the same rule as `scripts/common.sh`). Fetched models live in
/// its `models/`, generated benchmark models in its `bench/`.
pub fn cache_dir() -> PathBuf {
    env_path("KN_CACHE_DIR").unwrap_or_else(|| {
        env_path("XDG_CACHE_HOME")
            .unwrap_or_else(|| {
                env_path("HOME")
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join(".cache")
            })
            .join("knowledge-neurons")
    })
}

/// The directory of fetched models (see [`default_model_path`]).
fn model_dir() -> PathBuf {
    env_path("KN_MODEL_DIR").unwrap_or_else(|| cache_dir().join("models"))
}

/// Resolves a model argument (`default`, `gemma-3-270m`, a path) to a path.
pub fn resolve_model_path(spec: &str) -> PathBuf {
    match NAMED_MODELS.iter().find(|(name, _)| *name == spec) {
        Some((_, file)) => model_dir().join(file),
        None => PathBuf::from(spec),
    }
}

/// Loads the model named by `spec` (`default`, a `.gguf` file or a model directory) onto
/// `device`, in float32.
pub fn load_model(spec: &str, device: Device) -> Result<Box<dyn KnowledgeModel>> {
    load_model_as(spec, device, Dtype::F32)
}

/// [`load_model`] with the weight matrices held and multiplied in `dtype` (see [`Dtype`]).
/// BERT runs in float32 only: another `dtype` is refused, naming it.
pub fn load_model_as(spec: &str, device: Device, dtype: Dtype) -> Result<Box<dyn KnowledgeModel>> {
    let path = resolve_model_path(spec);
    if !path.exists() {
        let hint = match spec {
            "default" => " (run scripts/fetch-model.sh to fetch the default model)".to_string(),
            "gemma-3-270m" => {
                " (run scripts/fetch-model.sh --model gemma-3-270m to fetch it)".to_string()
            }
            _ => String::new(),
        };
        return Err(ModelError::UnknownModelFormat {
            path,
            reason: format!("no such file or directory{hint}"),
        });
    }
    if path.is_dir() {
        return load_directory(&path, device, dtype);
    }
    if has_gguf_magic(&path)? {
        return Ok(Box::new(DecoderLm::load_gguf(&path, device, dtype)?));
    }
    Err(ModelError::UnknownModelFormat {
        path,
        reason: "not a GGUF file (bad magic) and not a model directory".into(),
    })
}

fn has_gguf_magic(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"GGUF"),
        Err(_) => Ok(false),
    }
}

/// Reads a model's `config.json`, capped at `kn_schema::CONFIG_FILE_LIMIT` (a configuration
/// is small; an endless or huge file is refused instead of read into memory).
pub(crate) fn read_config_text(path: &Path) -> Result<String> {
    kn_schema::read_capped_text(path, kn_schema::CONFIG_FILE_LIMIT, "model configuration").map_err(
        |e| match e {
            kn_schema::SchemaError::Io { path, source } => ModelError::Io { path, source },
            other => ModelError::Config {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        },
    )
}

fn load_directory(dir: &Path, device: Device, dtype: Dtype) -> Result<Box<dyn KnowledgeModel>> {
    let config_path = dir.join("config.json");
    let text = read_config_text(&config_path)?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: config_path.clone(),
        reason: e.to_string(),
    })?;
    let model_type = json
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    match model_type {
        "bert" if dtype != Dtype::F32 => Err(ModelError::InvalidArgument(format!(
            "--dtype {dtype}: BERT ({}) runs in f32 only",
            dir.display()
        ))),
        "bert" => Ok(Box::new(BertMaskedLm::load(dir, device)?)),
        // Every other model_type is a decoder; kn_config names the supported ones when it is not.
        _ => Ok(Box::new(DecoderLm::load_hf_dir(dir, device, dtype)?)),
    }
}
