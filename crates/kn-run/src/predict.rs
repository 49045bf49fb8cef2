//! A model's top predictions for one prompt (`kn predict`, `Model.predict` in Python), and
//! loading a model with the checks every front end makes first.

use crate::options::{at_least_one, check_thread_count};
use crate::text::shorten;
use crate::{Message, RunError};
use kn_model::{AnswerPolicy, Dtype, KnowledgeModel};
use serde::Serialize;

/// One prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The token as text.
    pub token: String,
    /// Its id.
    pub id: i64,
    /// Its probability.
    pub prob: f64,
}

/// The top predictions for a prompt (the JSON object `kn predict --json` prints).
#[derive(Debug, Clone, Serialize)]
pub struct PredictOutput {
    /// The prompt as given.
    pub prompt: String,
    /// The prompt's tokens as text.
    pub tokens: Vec<String>,
    /// The top-k predictions, most probable first.
    pub top: Vec<Prediction>,
}

/// Loads the model `spec` names (`default`, `gemma-3-270m`, a GGUF file or a Hugging Face
/// directory) on `device` (`cpu`, `cuda`, `cuda:N`) in `dtype`, with `threads` libtorch
/// threads (0: libtorch's default). Warns through `report` when the setting is slow.
pub fn load_model(
    spec: &str,
    device: &str,
    dtype: Dtype,
    threads: usize,
    report: &dyn Fn(Message),
) -> Result<Box<dyn KnowledgeModel>, RunError> {
    check_thread_count("--threads", threads)?;
    kn_model::set_threads(threads);
    let device = kn_model::parse_device(device)?;
    if dtype == Dtype::F16 && device == kn_model::tch::Device::Cpu {
        report(Message::Warning(
            "--dtype f16 on a CPU runs libtorch's slow float16 products (about 13x slower \
             than f32 on an AVX512-BF16 CPU, docs/performance.md); bf16 is the CPU's half \
             precision"
                .into(),
        ));
    }
    Ok(kn_model::load_model_as(spec, device, dtype)?)
}

/// Computes the `top_k` most probable next tokens (causal LMs) or mask fillers (masked LMs)
/// for `prompt`.
pub fn predict(
    model: &dyn KnowledgeModel,
    prompt: &str,
    top_k: usize,
) -> Result<PredictOutput, RunError> {
    at_least_one(top_k, "--top")?;
    let encoded = model.encode(prompt, None, AnswerPolicy::FirstToken)?;
    let output = model.forward(std::slice::from_ref(&encoded), &[], false)?;
    let (probs, ids) = kn_model::guard(|| {
        let probs = output.logits.get(0).softmax(-1, kn_model::tch::Kind::Float);
        let k = top_k.min(model.info().vocab_size) as i64;
        let (values, indices) = probs.topk(k, -1, true, true);
        let values: Vec<f32> = Vec::try_from(values.to_device(kn_model::tch::Device::Cpu))?;
        let indices: Vec<i64> = Vec::try_from(indices.to_device(kn_model::tch::Device::Cpu))?;
        Ok((values, indices))
    })?;
    if let Some(bad) = probs.iter().find(|p| !p.is_finite()) {
        return Err(RunError::BadInput(format!(
            "the model's output for {:?} is not finite ({bad}): its weights or settings overflow",
            shorten(prompt)
        )));
    }
    let top = probs
        .iter()
        .zip(&ids)
        .map(|(&prob, &id)| Prediction {
            token: model.token_text(id),
            id,
            prob: f64::from(prob),
        })
        .collect();
    let tokens = encoded
        .token_ids
        .iter()
        .map(|&id| model.token_text(id))
        .collect();
    Ok(PredictOutput {
        prompt: prompt.to_string(),
        tokens,
        top,
    })
}
