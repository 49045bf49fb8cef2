//! A hand-written forward and backward pass of the resumed rows of the Llama-like decoders
//! ([`covers_config`]: RMSNorm, gated SiLU or GELU-tanh FFN, rotary positions over whole heads,
//! sequential residual; with or without projection biases (Qwen2), per-head query/key norms
//! (Qwen3, Gemma-3), sandwich norms (Gemma-3), sliding windows (Mistral, Qwen2, Gemma-3) and
//! RoPE tables per layer (Gemma-3's local and global bases)), for attribution's gradients
//! ([`crate::KnowledgeModel::start_gradients_batch`]).
//!
//! It does the arithmetic of [`DecoderLm::resume_runs`] for the common case of one
//! recomputed position (a causal prompt's answer position is its last token) without autograd:
//! the forward pass keeps exactly what its backward pass reads, per layer and row: the layer's
//! input, the queries and keys before their norms, the queries, keys and values after RoPE, the
//! attention weights, the outputs of attention and FFN before their sandwich norms, the
//! residual after attention, and the FFN's gate and up projections (about 5,200 floats for
//! SmolLM2, against about 8,000 in autograd's graph), and the backward pass runs the products
//! of the transposed weights and the element-wise derivatives directly. Everything else
//! (several recomputed positions, other architectures) goes through autograd. `tests/resume.rs`
//! checks both against each other on every architecture this covers.

use super::{cached_prefix, recomputed_positions, DecoderLayer, DecoderLm, RopeTables};
use crate::common;
use crate::error::{guard, ModelError, Result};
use crate::model::CleanPass;
use kn_config::decoder::{Activation, NormKind, Positions};
use kn_config::DecoderConfig;
use kn_kernels::matmul::{linear, matmul};
use kn_kernels::rms_norm::{rms_norm_backward, rms_norm_backward_onto, rms_norm_backward_weighted};
use kn_kernels::swiglu::{swiglu, swiglu_backward};
use tch::{Kind, Tensor};

/// One run's fixed parts: its clean pass, answer position and that position's RoPE tables.
struct Run<'a> {
    clean: &'a CleanPass,
    start: i64,
    /// Per RoPE table, cos and sin at the answer position, `[1, head_dim]` each.
    ropes: RopeTables,
    /// The run's starts in the order their rows join the pass (by layer, stable).
    order: Vec<usize>,
}

/// What one layer's backward pass reads, for the rows of all runs present at that layer
/// (concatenated in run order; `rows[r]` of run `r`, 0 when it has none yet).
struct SavedLayer {
    rows: Vec<i64>,
    x_in: Tensor,
    /// Every row's RoPE cos and sin, `[N, 1, hd]` each (forward and backward share them).
    tables: (Tensor, Tensor),
    /// The queries and keys before their per-head norms, `[N, H + KV, hd]` (with such norms).
    qk_unnormed: Option<Tensor>,
    /// After RoPE: queries `[N, KV, G, hd]`, keys `[N, KV, hd]`; values `[N, KV, hd]`.
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// Per run with rows: the attention weights over its prefix and the row's own position,
    /// `[n, KV, G, P + 1]`.
    weights: Vec<Tensor>,
    /// The attention's output before its sandwich norm (with one).
    attention_out: Option<Tensor>,
    x_mid: Tensor,
    gate_up: Tensor,
    /// The FFN's output before its sandwich norm (with one).
    ffn_out: Option<Tensor>,
}

/// Per layer and run: the FFN output, before its sandwich norm, of the rows that join the stream
/// at that layer (`None` without such a norm or such rows).
type JoinedFfnOut = Vec<Vec<Option<Tensor>>>;

/// Whether the hand-written pass computes models of `config` (see the module docs).
pub fn covers_config(config: &DecoderConfig) -> bool {
    config.norm.kind == NormKind::Rms
        && config.ffn.gated
        && !config.ffn.bias
        && matches!(
            config.ffn.activation,
            Activation::Silu | Activation::GeluTanh
        )
        && !config.parallel_residual
        && matches!(&config.positions, Positions::Rotary { rotary_dim, .. }
            if *rotary_dim == config.head_dim)
}

/// Whether every run recomputes only its answer position (and scores only it), which is what
/// this pass covers.
pub(super) fn covers(runs: &[(&CleanPass, &[(usize, Tensor)])]) -> bool {
    runs.iter().all(|(clean, _)| {
        recomputed_positions(clean) == 1
            && clean.prompt.targets.len() == 1
            && clean.prompt.targets[0].0 == clean.prompt.answer_position
    })
}

impl DecoderLm {
    /// [`crate::KnowledgeModel::start_gradients_batch`] by the hand-written pass; the runs
    /// must be [`covers`]ed.
    pub(super) fn start_gradients_by_hand(
        &self,
        runs: &[(&CleanPass, &[(usize, Tensor)])],
        head: &mut dyn FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Vec<Tensor>>> {
        let mut prepared = Vec::with_capacity(runs.len());
        for &(clean, starts) in runs {
            prepared.push((clean, self.start_order(clean, starts)?));
        }
        let (features, (saved, joined_ffn_out), finals, runs_info) = guard(|| {
            tch::no_grad(|| {
                let runs_info: Vec<Run> = prepared
                    .into_iter()
                    .map(|(clean, order)| {
                        let start = clean.prompt.answer_position as i64;
                        let ropes = self.rope_tables_all(&Tensor::arange_start(
                            start,
                            start + 1,
                            (Kind::Int64, self.device),
                        ));
                        Run {
                            clean,
                            start,
                            ropes,
                            order,
                        }
                    })
                    .collect();
                let (saved, joined_ffn_out, finals) = self.forward_by_hand(&runs_info, runs);
                let features: Vec<Tensor> = runs_info
                    .iter()
                    .zip(&finals)
                    .zip(runs)
                    .map(|((run, x), (_, starts))| {
                        let sizes: Vec<i64> = starts.iter().map(|(_, a)| a.size()[0]).collect();
                        let features = self.rms_norm(x, &self.output_norm.weight).unsqueeze(1);
                        common::restore_row_order(&features, &run.order, &sizes)
                    })
                    .collect();
                Ok((features, (saved, joined_ffn_out), finals, runs_info))
            })
        })?;
        let gradients = head(&features)?;
        if gradients.len() != runs.len() {
            return Err(ModelError::InvalidArgument(
                "the head must return one gradient per run".into(),
            ));
        }
        guard(|| {
            tch::no_grad(|| {
                Ok(self.backward_by_hand(
                    &runs_info,
                    runs,
                    &saved,
                    &joined_ffn_out,
                    &finals,
                    &gradients,
                ))
            })
        })
    }

    /// The forward pass: per layer, what its backward pass needs; per layer and run, the FFN
    /// output of the rows that join the stream there before its sandwich norm (with one; their
    /// backward pass reads it); per run, the hidden state leaving the last layer (`[rows, d]`,
    /// rows in the order they joined).
    fn forward_by_hand(
        &self,
        runs: &[Run],
        starts: &[(&CleanPass, &[(usize, Tensor)])],
    ) -> (Vec<Option<SavedLayer>>, JoinedFfnOut, Vec<Tensor>) {
        let mut xs: Vec<Option<Tensor>> = runs.iter().map(|_| None).collect();
        let mut saved = Vec::with_capacity(self.layers.len());
        let mut joined_ffn_out = Vec::with_capacity(self.layers.len());
        for (j, weights) in self.layers.iter().enumerate() {
            if xs.iter().any(Option::is_some) {
                let rows: Vec<i64> = xs
                    .iter()
                    .map(|x| x.as_ref().map_or(0, |x| x.size()[0]))
                    .collect();
                let present: Vec<Tensor> = xs.iter().flatten().map(Tensor::shallow_clone).collect();
                let (out, layer) =
                    self.layer_forward(j, weights, runs, Tensor::cat(&present, 0), rows);
                let mut parts = out.split_with_sizes(&layer.rows, 0).into_iter();
                for (x, &n) in xs.iter_mut().zip(&layer.rows) {
                    let part = parts.next();
                    if n > 0 {
                        *x = part;
                    }
                }
                saved.push(Some(layer));
            } else {
                saved.push(None);
            }
            let mut ffn_out_here = Vec::with_capacity(runs.len());
            for (r, run) in runs.iter().enumerate() {
                // Only the answer position's FFN output of layer j changes: the rows starting
                // here are its residual plus the FFN output of their activations.
                let activations = joining_activations(run, starts[r].1, j);
                let mut before_norm = None;
                if !activations.is_empty() {
                    let projected = super::with_bias(
                        linear(&Tensor::cat(&activations, 0), &weights.down),
                        &weights.down_bias,
                    );
                    let (ffn, out) = self.sandwich_norm(projected, &weights.post_ffn_norm);
                    before_norm = out;
                    let joining = run.clean.ffn_input_residual[j].get(run.start).unsqueeze(0) + ffn;
                    let mut parts: Vec<Tensor> = xs[r].take().into_iter().collect();
                    parts.push(joining);
                    xs[r] = Some(Tensor::cat(&parts, 0));
                }
                ffn_out_here.push(before_norm);
            }
            joined_ffn_out.push(ffn_out_here);
        }
        let finals = xs
            .into_iter()
            .map(|x| x.unwrap_or_else(|| Tensor::zeros([0, 0], (Kind::Float, self.device))))
            .collect();
        (saved, joined_ffn_out, finals)
    }

    /// One layer over `x` (`[N, d]`: `rows[r]` rows of run `r`, in run order).
    fn layer_forward(
        &self,
        j: usize,
        w: &DecoderLayer,
        runs: &[Run],
        x_in: Tensor,
        rows: Vec<i64>,
    ) -> (Tensor, SavedLayer) {
        let (heads, kv, hd) = self.head_shape();
        let n = x_in.size()[0];
        let qkv = super::with_bias(
            linear(&self.rms_norm(&x_in, &w.attn_norm.weight), &w.qkv),
            &w.qkv_bias,
        );
        let parts = qkv.split_with_sizes([(heads + kv) * hd, kv * hd], -1);
        let tables = self.row_tables(runs, &rows, w.rope);
        let mut qk = parts[0].reshape([n, heads + kv, hd]);
        let mut qk_unnormed = None;
        if let Some(weight) = &w.qk_norm {
            let normed = qk.rms_norm([hd], None::<&Tensor>, self.config.norm.eps) * weight;
            qk_unnormed = Some(std::mem::replace(&mut qk, normed));
        }
        let qk = Self::rope(&qk, &tables);
        let qk = qk.split_with_sizes([heads, kv], 1);
        let q = qk[0].reshape([n, kv, heads / kv, hd]);
        let k = qk[1].contiguous();
        let v = parts[1].reshape([n, kv, hd]);
        let scale = self.config.query_scale;
        let mut attended = Vec::new();
        let mut weights = Vec::new();
        let mut offset = 0;
        for (run, &count) in runs.iter().zip(&rows) {
            if count == 0 {
                continue;
            }
            let (q, k, v) = (
                q.narrow(0, offset, count),
                k.narrow(0, offset, count),
                v.narrow(0, offset, count),
            );
            offset += count;
            let prefix = cached_prefix(run.clean, run.start, j, w.window);
            let (prefix_k, prefix_v) = (&prefix.keys, &prefix.values);
            let prefix = prefix_k.size()[1];
            let own = (&q * k.unsqueeze(2)).sum_dim_intlist(-1, true, Kind::Float);
            let scores = if prefix == 0 {
                own
            } else {
                let by_head = per_kv_head(&q).bmm(&prefix_k.transpose(1, 2)); // [KV, n G, P]
                Tensor::cat(&[from_per_kv_head(&by_head, count), own], -1)
            };
            let w_run = (scores * scale).softmax(-1, Kind::Float); // [n, KV, G, P + 1]
            let split = w_run.split_with_sizes([prefix, 1], -1);
            let mut out = &split[1] * v.unsqueeze(2);
            if prefix > 0 {
                out += from_per_kv_head(&per_kv_head(&split[0]).bmm(prefix_v), count);
            }
            attended.push(out.reshape([count, heads * hd]));
            weights.push(w_run);
        }
        let attention = super::with_bias(linear(&Tensor::cat(&attended, 0), &w.wo), &w.wo_bias);
        let (attention, attention_out) = self.sandwich_norm(attention, &w.post_attn_norm);
        let x_mid = &x_in + attention;
        let gate_up = linear(&self.rms_norm(&x_mid, &w.ffn_norm.weight), &w.up);
        let ffn = linear(&self.gated_activation(&gate_up), &w.down);
        let (ffn, ffn_out) = self.sandwich_norm(ffn, &w.post_ffn_norm);
        let x_out = &x_mid + ffn;
        let saved = SavedLayer {
            rows,
            x_in,
            tables,
            qk_unnormed,
            q,
            k,
            v,
            weights,
            attention_out,
            x_mid,
            gate_up,
            ffn_out,
        };
        (x_out, saved)
    }

    /// A branch's output after its sandwich norm (when the layer has one), and the output
    /// before it, which the backward pass reads.
    fn sandwich_norm(
        &self,
        out: Tensor,
        norm: &Option<super::NormWeights>,
    ) -> (Tensor, Option<Tensor>) {
        match norm {
            Some(norm) => (self.rms_norm(&out, &norm.weight), Some(out)),
            None => (out, None),
        }
    }

    /// The neurons' values from the fused gate and up projections: `act(gate) * up`.
    fn gated_activation(&self, gate_up: &Tensor) -> Tensor {
        match self.config.ffn.activation {
            Activation::Silu => swiglu(gate_up),
            _ => {
                let halves = gate_up.chunk(2, -1);
                halves[0].gelu("tanh") * &halves[1]
            }
        }
    }

    /// The gradient with respect to the fused gate and up projections from that with respect
    /// to the neurons' values `g`.
    fn gated_activation_backward(&self, gate_up: &Tensor, g: &Tensor) -> Tensor {
        match self.config.ffn.activation {
            Activation::Silu => swiglu_backward(gate_up, g),
            _ => {
                let halves = gate_up.chunk(2, -1);
                let (gate, up) = (&halves[0], &halves[1]);
                let g_gate = gate.gelu_backward(&(g * up), "tanh");
                Tensor::cat(&[g_gate, g * gate.gelu("tanh")], -1)
            }
        }
    }

    /// The backward pass from the head's gradients to every start's activations.
    fn backward_by_hand(
        &self,
        runs: &[Run],
        starts: &[(&CleanPass, &[(usize, Tensor)])],
        saved: &[Option<SavedLayer>],
        joined_ffn_out: &JoinedFfnOut,
        finals: &[Tensor],
        head_gradients: &[Tensor],
    ) -> Vec<Vec<Tensor>> {
        // Per run: the gradient with respect to the stream after the current layer, rows in
        // the order they joined.
        let mut gs: Vec<Option<Tensor>> = runs
            .iter()
            .zip(finals)
            .zip(head_gradients)
            .zip(starts)
            .map(|(((run, x), g), (_, starts))| {
                let sizes: Vec<i64> = starts.iter().map(|(_, a)| a.size()[0]).collect();
                let g = common::joined_row_order(&g.squeeze_dim(1), &run.order, &sizes);
                Some(rms_norm_backward(
                    x,
                    &self.output_norm.weight,
                    &g,
                    self.config.norm.eps,
                ))
            })
            .collect();
        let mut results: Vec<Vec<Option<Tensor>>> = starts
            .iter()
            .map(|(_, s)| s.iter().map(|_| None).collect())
            .collect();
        for j in (0..self.layers.len()).rev() {
            let weights = &self.layers[j];
            // Rows that joined after layer j: their gradient goes to their activations.
            for (r, run) in runs.iter().enumerate() {
                let joined: Vec<usize> = run
                    .order
                    .iter()
                    .copied()
                    .filter(|&i| starts[r].1[i].0 == j)
                    .collect();
                if joined.is_empty() {
                    continue;
                }
                let Some(g) = gs[r].take() else { continue };
                let counts: Vec<i64> = joined.iter().map(|&i| starts[r].1[i].1.size()[0]).collect();
                let total: i64 = counts.iter().sum();
                let before = g.size()[0] - total;
                let parts = g.split_with_sizes([before, total], 0);
                // Through the FFN's sandwich norm (Gemma), with its input kept by the forward pass.
                let g_ffn = sandwich_norm_backward(
                    &joined_ffn_out[j][r],
                    &weights.post_ffn_norm,
                    &parts[1],
                    self.config.norm.eps,
                );
                let activation_gradients = matmul(&g_ffn, &weights.down);
                for (&i, part) in joined
                    .iter()
                    .zip(activation_gradients.split_with_sizes(&counts, 0))
                {
                    results[r][i] = Some(part);
                }
                gs[r] = (before > 0).then(|| parts[0].shallow_clone());
            }
            if let Some(layer) = &saved[j] {
                let present: Vec<Tensor> = gs.iter().flatten().map(Tensor::shallow_clone).collect();
                let g_in = self.layer_backward(j, weights, runs, layer, Tensor::cat(&present, 0));
                let mut parts = g_in.split_with_sizes(&layer.rows, 0).into_iter();
                for (g, &n) in gs.iter_mut().zip(&layer.rows) {
                    let part = parts.next();
                    if n > 0 {
                        *g = part;
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|run| run.into_iter().flatten().collect())
            .collect()
    }

    /// One layer's backward pass: from the gradient with respect to its output to that with
    /// respect to its input (`[N, d]` both).
    fn layer_backward(
        &self,
        j: usize,
        w: &DecoderLayer,
        runs: &[Run],
        saved: &SavedLayer,
        g_out: Tensor,
    ) -> Tensor {
        let (heads, kv, hd) = self.head_shape();
        let n = g_out.size()[0];
        let eps = self.config.norm.eps;
        // FFN: x_out = x_mid + norm?(down(act(gate) * up)), gate and up from norm(x_mid).
        let g_ffn = sandwich_norm_backward(&saved.ffn_out, &w.post_ffn_norm, &g_out, eps);
        let g_act = matmul(&g_ffn, &w.down);
        let g_gate_up = self.gated_activation_backward(&saved.gate_up, &g_act);
        let g_normed = matmul(&g_gate_up, &w.up);
        let g_mid = rms_norm_backward_onto(
            Some(&g_out),
            &saved.x_mid,
            &w.ffn_norm.weight,
            &g_normed,
            eps,
        );
        // Attention: x_mid = x_in + norm?(wo(attended)).
        let g_attention =
            sandwich_norm_backward(&saved.attention_out, &w.post_attn_norm, &g_mid, eps);
        let g_attended = matmul(&g_attention, &w.wo).reshape([n, kv, heads / kv, hd]);
        let scale = self.config.query_scale;
        let (mut g_q, mut g_k, mut g_v) = (Vec::new(), Vec::new(), Vec::new());
        let mut offset = 0;
        let mut weights = saved.weights.iter();
        for (run, &count) in runs.iter().zip(&saved.rows) {
            if count == 0 {
                continue;
            }
            let Some(w_run) = weights.next() else { break };
            let range = |t: &Tensor| t.narrow(0, offset, count);
            let (q, k, v, g_o) = (
                range(&saved.q),
                range(&saved.k),
                range(&saved.v),
                range(&g_attended),
            );
            offset += count;
            let prefix = cached_prefix(run.clean, run.start, j, w.window);
            let (prefix_k, prefix_v) = (&prefix.keys, &prefix.values);
            let prefix = prefix_k.size()[1];
            let split = w_run.split_with_sizes([prefix, 1], -1);
            let g_own_weight = (&g_o * v.unsqueeze(2)).sum_dim_intlist(-1, true, Kind::Float);
            let g_weights = if prefix == 0 {
                g_own_weight
            } else {
                let to_prefix = per_kv_head(&g_o).bmm(&prefix_v.transpose(1, 2));
                Tensor::cat(&[from_per_kv_head(&to_prefix, count), g_own_weight], -1)
            };
            g_v.push((&g_o * &split[1]).sum_dim_intlist(2, false, Kind::Float));
            // softmax backward, then the scale
            let g_scores = (w_run
                * (&g_weights - (w_run * &g_weights).sum_dim_intlist(-1, true, Kind::Float)))
                * scale;
            let g_scores = g_scores.split_with_sizes([prefix, 1], -1);
            let mut g_q_run = &g_scores[1] * k.unsqueeze(2);
            if prefix > 0 {
                g_q_run += from_per_kv_head(&per_kv_head(&g_scores[0]).bmm(prefix_k), count);
            }
            g_q.push(g_q_run.reshape([count, heads, hd]));
            g_k.push((&g_scores[1] * &q).sum_dim_intlist(2, false, Kind::Float));
        }
        let g_qk = Tensor::cat(&[Tensor::cat(&g_q, 0), Tensor::cat(&g_k, 0)], 1);
        let (cos, sin) = &saved.tables;
        let mut g_qk = rope_backward(&g_qk, cos, sin);
        if let (Some(unnormed), Some(weight)) = (&saved.qk_unnormed, &w.qk_norm) {
            g_qk = rms_norm_backward_weighted(unnormed, &(g_qk * weight), eps);
        }
        let g_qk = g_qk.reshape([n, (heads + kv) * hd]);
        let g_qkv = Tensor::cat(&[g_qk, Tensor::cat(&g_v, 0).reshape([n, kv * hd])], -1);
        let g_normed = matmul(&g_qkv, &w.qkv);
        rms_norm_backward_onto(
            Some(&g_mid),
            &saved.x_in,
            &w.attn_norm.weight,
            &g_normed,
            eps,
        )
    }

    /// Query heads, key-value heads and head width.
    fn head_shape(&self) -> (i64, i64, i64) {
        (
            self.config.heads as i64,
            self.config.kv_heads as i64,
            self.config.head_dim as i64,
        )
    }

    /// Every row's cos and sin of RoPE table `table` (its run's answer position), `[N, 1, hd]`
    /// each.
    fn row_tables(&self, runs: &[Run], rows: &[i64], table: usize) -> (Tensor, Tensor) {
        let hd = self.config.head_dim as i64;
        let (cos, sin): (Vec<Tensor>, Vec<Tensor>) = runs
            .iter()
            .zip(rows)
            .filter(|(_, &n)| n > 0)
            .map(|(run, &n)| {
                let (cos, sin) = &run.ropes[table];
                (cos.expand([n, hd], false), sin.expand([n, hd], false))
            })
            .unzip();
        (
            Tensor::cat(&cos, 0).unsqueeze(1),
            Tensor::cat(&sin, 0).unsqueeze(1),
        )
    }
}

/// The activations of `run`'s starts at layer `j`, in the order their rows join the stream.
fn joining_activations(run: &Run, starts: &[(usize, Tensor)], j: usize) -> Vec<Tensor> {
    run.order
        .iter()
        .filter(|&&i| starts[i].0 == j)
        .map(|&i| starts[i].1.shallow_clone())
        .collect()
}

/// `[n, KV, G, c]` as one matrix per key-value head, `[KV, n G, c]`.
fn per_kv_head(x: &Tensor) -> Tensor {
    let size = x.size();
    x.transpose(0, 1)
        .reshape([size[1], size[0] * size[2], size[3]])
}

/// The inverse of [`per_kv_head`] for `n` rows: `[KV, n G, c]` to `[n, KV, G, c]`.
fn from_per_kv_head(x: &Tensor, n: i64) -> Tensor {
    let size = x.size();
    x.reshape([size[0], n, size[1] / n, size[2]])
        .transpose(0, 1)
}

/// The gradient with respect to a branch's output before its sandwich norm (when the layer
/// has one; `out` is then that output) from that with respect to the residual add `g`.
fn sandwich_norm_backward(
    out: &Option<Tensor>,
    norm: &Option<super::NormWeights>,
    g: &Tensor,
    eps: f64,
) -> Tensor {
    match (out, norm) {
        (Some(out), Some(norm)) => rms_norm_backward(out, &norm.weight, g, eps),
        _ => g.shallow_clone(),
    }
}

/// Gradient of the rotate-half RoPE `y = x cos + rotate_half(x) sin` with respect to `x`:
/// `g cos + rotate_halfᵀ(g sin)`, where `rotate_halfᵀ(a, b) = (b, −a)`.
fn rope_backward(g: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let rotated = g * sin;
    let halves = rotated.chunk(2, -1);
    g * cos + Tensor::cat(&[&halves[1], &halves[0].neg()], -1)
}
