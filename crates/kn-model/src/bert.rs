//! BERT masked language model (the paper's model) on libtorch, loaded from a Hugging Face
//! style directory: `config.json`, `model.safetensors`, `vocab.txt` (and optionally
//! `tokenizer_config.json` for `do_lower_case`).
//!
//! Neuron = GELU output of `intermediate.dense` at the `[MASK]` position; value slot = column of
//! `output.dense.weight`. The MLM decoder is tied to the word embeddings when the file holds
//! no separate `cls.predictions.decoder.weight`.

use crate::common::{
    self, answer_positions, apply_edits, check_batch, check_layer, check_layer_count, rows_at,
};
use crate::error::{guard, ModelError, Result};
use crate::model::{
    ActivationEdit, AnswerPolicy, CleanPass, EncodedPrompt, ForwardOutput, KnowledgeModel,
    ModelInfo, ModelKind,
};
use crate::weights::WeightMap;
use kn_config::BertConfig;
use kn_tokenizer::{Tokenizer, WordPiece};
use std::path::Path;
use tch::{Device, Kind, Tensor};

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

struct BertLayer {
    query: (Tensor, Tensor),
    key: (Tensor, Tensor),
    value: (Tensor, Tensor),
    attention_out: (Tensor, Tensor),
    attention_norm: LayerNorm,
    intermediate: (Tensor, Tensor),
    output: (Tensor, Tensor),
    output_norm: LayerNorm,
}

/// BERT with its masked-LM head.
pub struct BertMaskedLm {
    info: ModelInfo,
    device: Device,
    tokenizer: WordPiece,
    heads: i64,
    eps: f64,
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    token_type_embedding: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<BertLayer>,
    head_transform: (Tensor, Tensor),
    head_norm: LayerNorm,
    decoder: Tensor,
    decoder_bias: Tensor,
    mask_id: i64,
    cls_id: i64,
    sep_id: i64,
    pad_id: i64,
    unk_id: i64,
}

impl BertMaskedLm {
    /// Loads a BERT masked LM from a Hugging Face style directory.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config_text = crate::load::read_config_text(&config_path)?;
        let config = BertConfig::from_json(&config_text).map_err(|e| ModelError::Config {
            path: config_path.clone(),
            reason: e.to_string(),
        })?;

        let vocab_path = dir.join("vocab.txt");
        let lowercase = lowercase_setting(dir, &vocab_path)?;
        let tokenizer = WordPiece::from_vocab_file(&vocab_path, lowercase, lowercase)?;
        let special = |name: &str, id: Option<u32>| {
            id.map(i64::from).ok_or_else(|| ModelError::Config {
                path: vocab_path.clone(),
                reason: format!("the vocabulary has no {name} token"),
            })
        };
        let mask_id = special("[MASK]", tokenizer.mask_id())?;
        let cls_id = special("[CLS]", tokenizer.cls_id())?;
        let sep_id = special("[SEP]", tokenizer.sep_id())?;
        let pad_id = special("[PAD]", tokenizer.pad_id())?;
        let unk_id = i64::from(tokenizer.unk_id());

        let (mut weights, fingerprint) =
            WeightMap::from_safetensors_dir(dir, device, crate::Dtype::F32)?;

        let (v, d, f) = (
            config.vocab_size as i64,
            config.hidden_size as i64,
            config.intermediate_size as i64,
        );
        check_layer_count(
            config.num_hidden_layers,
            "num_hidden_layers",
            |l| {
                weights.contains_any(&name_variants(&format!(
                    "bert.encoder.layer.{l}.output.dense.weight"
                )))
            },
            &dir.join("model.safetensors"),
        )?;
        // Checkpoints name things with or without the "bert." prefix, and old ones use
        // LayerNorm.gamma/beta instead of weight/bias.
        let mut take = |name: &str, shape: &[i64]| -> Result<Tensor> {
            let alternatives = name_variants(name);
            let refs: Vec<&str> = alternatives.iter().map(String::as_str).collect();
            weights.take(&refs, shape)
        };
        let word_embeddings = take("bert.embeddings.word_embeddings.weight", &[v, d])?;
        let position_embeddings = take(
            "bert.embeddings.position_embeddings.weight",
            &[config.max_position_embeddings as i64, d],
        )?;
        let token_types = take(
            "bert.embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size as i64, d],
        )?;
        let token_type_embedding = token_types.get(0);
        let embedding_norm = LayerNorm {
            weight: take("bert.embeddings.LayerNorm.weight", &[d])?,
            bias: take("bert.embeddings.LayerNorm.bias", &[d])?,
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("bert.encoder.layer.{l}");
            let mut linear = |name: &str, out: i64, inp: i64| -> Result<(Tensor, Tensor)> {
                Ok((
                    take(&format!("{p}.{name}.weight"), &[out, inp])?,
                    take(&format!("{p}.{name}.bias"), &[out])?,
                ))
            };
            let query = linear("attention.self.query", d, d)?;
            let key = linear("attention.self.key", d, d)?;
            let value = linear("attention.self.value", d, d)?;
            let attention_out = linear("attention.output.dense", d, d)?;
            let intermediate = linear("intermediate.dense", f, d)?;
            let output = linear("output.dense", d, f)?;
            let attention_norm = LayerNorm {
                weight: take(&format!("{p}.attention.output.LayerNorm.weight"), &[d])?,
                bias: take(&format!("{p}.attention.output.LayerNorm.bias"), &[d])?,
            };
            let output_norm = LayerNorm {
                weight: take(&format!("{p}.output.LayerNorm.weight"), &[d])?,
                bias: take(&format!("{p}.output.LayerNorm.bias"), &[d])?,
            };
            layers.push(BertLayer {
                query,
                key,
                value,
                attention_out,
                attention_norm,
                intermediate,
                output,
                output_norm,
            });
        }
        let head_transform = (
            take("cls.predictions.transform.dense.weight", &[d, d])?,
            take("cls.predictions.transform.dense.bias", &[d])?,
        );
        let head_norm = LayerNorm {
            weight: take("cls.predictions.transform.LayerNorm.weight", &[d])?,
            bias: take("cls.predictions.transform.LayerNorm.bias", &[d])?,
        };
        let decoder_bias = match take("cls.predictions.bias", &[v]) {
            Ok(bias) => bias,
            Err(ModelError::MissingTensor { .. }) => take("cls.predictions.decoder.bias", &[v])?,
            Err(other) => return Err(other),
        };
        let decoder = match weights.take_optional(&["cls.predictions.decoder.weight"], &[v, d])? {
            Some(decoder) => decoder,
            None => word_embeddings.shallow_clone(),
        };
        if tokenizer.vocab_size() != config.vocab_size {
            return Err(ModelError::Config {
                path: vocab_path,
                reason: format!(
                    "vocab.txt has {} tokens, config.json says {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        let info = ModelInfo {
            architecture: "bert".into(),
            kind: ModelKind::Masked,
            num_layers: config.num_hidden_layers,
            ffn_width: config.intermediate_size,
            hidden_size: config.hidden_size,
            vocab_size: config.vocab_size,
            max_positions: config.max_position_embeddings,
            source: dir.display().to_string(),
            fingerprint,
            dtype: crate::Dtype::F32,
        };
        Ok(Self {
            info,
            device,
            tokenizer,
            heads: config.num_attention_heads as i64,
            eps: config.layer_norm_eps,
            word_embeddings,
            position_embeddings,
            token_type_embedding,
            embedding_norm,
            layers,
            head_transform,
            head_norm,
            decoder,
            decoder_bias,
            mask_id,
            cls_id,
            sep_id,
            pad_id,
            unk_id,
        })
    }

    fn layer_norm(&self, x: &Tensor, norm: &LayerNorm) -> Tensor {
        x.layer_norm(
            [self.info.hidden_size as i64],
            Some(&norm.weight),
            Some(&norm.bias),
            self.eps,
            false,
        )
    }

    fn embed(&self, ids: &Tensor) -> Tensor {
        let length = ids.size()[1];
        let positions = self.position_embeddings.narrow(0, 0, length);
        let x = self
            .word_embeddings
            .index_select(0, &ids.flatten(0, -1))
            .reshape([ids.size()[0], length, -1]);
        self.layer_norm(
            &(x + positions + &self.token_type_embedding),
            &self.embedding_norm,
        )
    }

    /// Self-attention block of `layer`: returns the residual the FFN adds to (after the
    /// attention LayerNorm). `key_mask_bias` is `[batch, 1, 1, T]` (0 or a large negative).
    fn attention(&self, layer: &BertLayer, x: &Tensor, key_mask_bias: Option<&Tensor>) -> Tensor {
        let (batch, length, hidden) = (x.size()[0], x.size()[1], x.size()[2]);
        let head_dim = hidden / self.heads;
        let split = |t: Tensor| {
            t.reshape([batch, length, self.heads, head_dim])
                .transpose(1, 2)
        };
        let q = split(x.linear(&layer.query.0, Some(&layer.query.1)));
        let k = split(x.linear(&layer.key.0, Some(&layer.key.1)));
        let v = split(x.linear(&layer.value.0, Some(&layer.value.1)));
        let mut scores = q.matmul(&k.transpose(-1, -2)) / (head_dim as f64).sqrt();
        if let Some(bias) = key_mask_bias {
            scores = scores + bias;
        }
        let context = scores
            .softmax(-1, Kind::Float)
            .matmul(&v)
            .transpose(1, 2)
            .reshape([batch, length, hidden]);
        let projected = context.linear(&layer.attention_out.0, Some(&layer.attention_out.1));
        self.layer_norm(&(projected + x), &layer.attention_norm)
    }

    fn ffn_activation(&self, layer: &BertLayer, residual: &Tensor) -> Tensor {
        residual
            .linear(&layer.intermediate.0, Some(&layer.intermediate.1))
            .gelu("none")
    }

    fn ffn_output(&self, layer: &BertLayer, activation: &Tensor, residual: &Tensor) -> Tensor {
        self.layer_norm(
            &(activation.linear(&layer.output.0, Some(&layer.output.1)) + residual),
            &layer.output_norm,
        )
    }

    fn mlm_logits(&self, hidden: &Tensor) -> Tensor {
        self.mlm_features(hidden)
            .linear(&self.decoder, Some(&self.decoder_bias))
    }

    /// The MLM head's transform (dense, GELU, LayerNorm): what the decoder projects.
    fn mlm_features(&self, hidden: &Tensor) -> Tensor {
        let transformed = hidden
            .linear(&self.head_transform.0, Some(&self.head_transform.1))
            .gelu("none");
        self.layer_norm(&transformed, &self.head_norm)
    }
}

/// `name` plus the spellings other checkpoints use for it.
fn name_variants(name: &str) -> Vec<String> {
    let mut names = vec![name.to_string()];
    if let Some(stripped) = name.strip_prefix("bert.") {
        names.push(stripped.to_string());
    }
    for n in names.clone() {
        if n.contains("LayerNorm.weight") {
            names.push(n.replace("LayerNorm.weight", "LayerNorm.gamma"));
        }
        if n.contains("LayerNorm.bias") {
            names.push(n.replace("LayerNorm.bias", "LayerNorm.beta"));
        }
    }
    names
}

/// Whether to lowercase: `do_lower_case` of `tokenizer_config.json` when present, otherwise
/// cased when the vocabulary holds any uppercase letter.
fn lowercase_setting(dir: &Path, vocab_path: &Path) -> Result<bool> {
    let config_path = dir.join("tokenizer_config.json");
    if let Ok(text) = std::fs::read_to_string(&config_path) {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::Config {
                path: config_path.clone(),
                reason: e.to_string(),
            })?;
        if let Some(lower) = value
            .get("do_lower_case")
            .and_then(serde_json::Value::as_bool)
        {
            return Ok(lower);
        }
    }
    let vocab = std::fs::read_to_string(vocab_path).map_err(|source| ModelError::Io {
        path: vocab_path.to_path_buf(),
        source,
    })?;
    let cased = vocab
        .lines()
        .filter(|t| !(t.starts_with('[') && t.ends_with(']')))
        .any(|t| t.chars().any(char::is_uppercase));
    Ok(!cased)
}

impl KnowledgeModel for BertMaskedLm {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn device(&self) -> Device {
        self.device
    }

    fn tokenizer(&self) -> &dyn Tokenizer {
        &self.tokenizer
    }

    fn token_text(&self, id: i64) -> String {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.tokenizer.id_to_token(id))
            .unwrap_or("<?>")
            .to_string()
    }

    fn encode(
        &self,
        prompt: &str,
        answer: Option<&str>,
        policy: AnswerPolicy,
    ) -> Result<EncodedPrompt> {
        if prompt.trim().is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        let body: Vec<i64> = self
            .tokenizer
            .encode(prompt)?
            .into_iter()
            .map(i64::from)
            .collect();
        let mut token_ids = Vec::with_capacity(body.len() + 2);
        token_ids.push(self.cls_id);
        token_ids.extend(body);
        token_ids.push(self.sep_id);
        let masks: Vec<usize> = token_ids
            .iter()
            .enumerate()
            .filter(|(_, &id)| id == self.mask_id)
            .map(|(i, _)| i)
            .collect();
        let answer_position = match masks.as_slice() {
            [] => {
                return Err(ModelError::NoMask {
                    prompt: prompt.to_string(),
                    mask: "[MASK]".into(),
                })
            }
            [one] => *one,
            many => {
                return Err(ModelError::SeveralMasks {
                    prompt: prompt.to_string(),
                    mask: "[MASK]".into(),
                    count: many.len(),
                })
            }
        };
        if token_ids.len() > self.info.max_positions {
            return Err(ModelError::PromptTooLong {
                tokens: token_ids.len(),
                max: self.info.max_positions,
            });
        }
        let (answer_ids, targets) = match answer {
            None => (Vec::new(), Vec::new()),
            Some(answer) => {
                let ids: Vec<i64> = self
                    .tokenizer
                    .encode(answer.trim())?
                    .into_iter()
                    .map(i64::from)
                    .collect();
                if ids.contains(&self.unk_id) {
                    return Err(ModelError::BadAnswer {
                        answer: answer.to_string(),
                        reason: "is not in the vocabulary (it tokenizes to [UNK])".into(),
                    });
                }
                let (_, targets) =
                    common::answer_targets(answer, &ids, answer_position, policy, false)?;
                (ids, targets)
            }
        };
        Ok(EncodedPrompt {
            text: prompt.to_string(),
            token_ids,
            answer_position,
            answer_ids,
            targets,
        })
    }

    fn forward(
        &self,
        prompts: &[EncodedPrompt],
        edits: &[ActivationEdit],
        capture_activations: bool,
    ) -> Result<ForwardOutput> {
        let longest = check_batch(&self.info, prompts)?;
        common::check_edits(&self.info, edits)?;
        guard(|| {
            tch::no_grad(|| {
                let (ids, mask) = common::pad_batch(prompts, longest, self.pad_id, self.device);
                let positions = answer_positions(prompts, self.device);
                let key_bias = ((mask - 1.0) * 1e9).unsqueeze(1).unsqueeze(1);
                let mut x = self.embed(&ids);
                let mut captured = Vec::new();
                for (l, layer) in self.layers.iter().enumerate() {
                    let residual = self.attention(layer, &x, Some(&key_bias));
                    let mut act = self.ffn_activation(layer, &residual);
                    apply_edits(&mut act, l, edits, &positions);
                    if capture_activations {
                        captured.push(rows_at(&act, &positions));
                    }
                    x = self.ffn_output(layer, &act, &residual);
                }
                let logits = self.mlm_logits(&rows_at(&x, &positions));
                let activations = capture_activations.then(|| Tensor::stack(&captured, 1));
                Ok(ForwardOutput {
                    logits,
                    activations,
                })
            })
        })
    }

    fn clean_pass(&self, prompt: &EncodedPrompt) -> Result<CleanPass> {
        check_batch(&self.info, std::slice::from_ref(prompt))?;
        guard(|| {
            tch::no_grad(|| {
                let ids = Tensor::from_slice(&prompt.token_ids)
                    .to_device(self.device)
                    .unsqueeze(0);
                let position = prompt.answer_position as i64;
                let mut x = self.embed(&ids);
                let mut hidden_in = vec![x.get(0)];
                let mut residuals = Vec::new();
                let mut activations = Vec::new();
                for layer in &self.layers {
                    let residual = self.attention(layer, &x, None);
                    let act = self.ffn_activation(layer, &residual);
                    activations.push(act.get(0).get(position));
                    x = self.ffn_output(layer, &act, &residual);
                    residuals.push(residual.get(0));
                    hidden_in.push(x.get(0));
                }
                let target_positions: Vec<i64> =
                    prompt.targets.iter().map(|&(p, _)| p as i64).collect();
                let target_logits = if target_positions.is_empty() {
                    Tensor::zeros([0, self.info.vocab_size as i64], (Kind::Float, self.device))
                } else {
                    let index = Tensor::from_slice(&target_positions).to_device(self.device);
                    self.mlm_logits(&x.get(0).index_select(0, &index))
                };
                Ok(CleanPass {
                    prompt: prompt.clone(),
                    hidden_in,
                    ffn_input_residual: residuals,
                    activations: Tensor::stack(&activations, 0),
                    keys: Vec::new(),
                    values: Vec::new(),
                    target_logits,
                })
            })
        })
    }

    fn output_projection(&self) -> (Tensor, Option<Tensor>) {
        (
            self.decoder.shallow_clone(),
            Some(self.decoder_bias.shallow_clone()),
        )
    }

    fn forward_features_from_layers(
        &self,
        clean: &CleanPass,
        starts: &[(usize, Tensor)],
    ) -> Result<Tensor> {
        let (order, _) = common::check_starts(&self.info, clean, starts)?;
        guard(|| {
            let position = clean.prompt.answer_position as i64;
            let length = clean.hidden_in[0].size()[0];
            let mut pending = order.iter().peekable();
            let mut x: Option<Tensor> = None; // [rows so far, T, d]
            for (j, weights) in self.layers.iter().enumerate() {
                if let Some(current) = x.take() {
                    let residual = self.attention(weights, &current, None);
                    let act = self.ffn_activation(weights, &residual);
                    x = Some(self.ffn_output(weights, &act, &residual));
                }
                while let Some(&&i) = pending.peek().filter(|&&&i| starts[i].0 == j) {
                    pending.next();
                    let activations = &starts[i].1;
                    let n = activations.size()[0];
                    // Layer j: only the answer position's FFN output changes.
                    let residual = clean.ffn_input_residual[j].get(position).unsqueeze(0);
                    let changed = self.ffn_output(weights, activations, &residual); // [n, d]
                    let clean_out = clean.hidden_in[j + 1]
                        .unsqueeze(0)
                        .expand([n, length, -1], false);
                    let rows = Tensor::cat(
                        &[
                            clean_out.narrow(1, 0, position),
                            changed.unsqueeze(1),
                            clean_out.narrow(1, position + 1, length - position - 1),
                        ],
                        1,
                    );
                    x = Some(match x.take() {
                        Some(current) => Tensor::cat(&[current, rows], 0),
                        None => rows,
                    });
                }
            }
            let Some(x) = x else {
                return Err(ModelError::InvalidArgument("no rows to run".into()));
            };
            let targets: Vec<i64> = clean
                .prompt
                .targets
                .iter()
                .map(|&(p, _)| p as i64)
                .collect();
            let index = Tensor::from_slice(&targets).to_device(self.device);
            let features = self.mlm_features(&x.index_select(1, &index));
            let sizes: Vec<i64> = starts.iter().map(|(_, a)| a.size()[0]).collect();
            Ok(common::restore_row_order(&features, &order, &sizes))
        })
    }

    fn value_slots(&self, layer: usize, neurons: &[usize]) -> Result<Tensor> {
        common::read_value_slots(&self.info, layer, neurons, |l| {
            self.layers[l].output.0.shallow_clone()
        })
    }

    fn set_value_slots(&mut self, layer: usize, neurons: &[usize], values: &Tensor) -> Result<()> {
        check_layer(&self.info, layer)?;
        common::write_value_slots(
            &self.info,
            layer,
            neurons,
            values,
            &mut self.layers[layer].output.0,
        )
    }

    fn output_embedding(&self, token: i64) -> Result<Tensor> {
        common::check_token(&self.info, token)?;
        guard(|| Ok(self.decoder.get(token).copy()))
    }
}
