//! Fuzz target `model_config`: feeds arbitrary text to the readers of a model's `config.json`
//! (`kn_config::LlamaConfig::from_hf_json`, `BertConfig::from_json`: the entry the loaders call
//! before anything is allocated). Whatever is accepted must have bounded shapes: every tensor
//! shape the loader builds from it multiplies out without overflow and within a few gigabytes
//! of elements per tensor, so the loader cannot be made to allocate without limit.
#![no_main]

use kn_config::{BertConfig, LlamaConfig};
use libfuzzer_sys::fuzz_target;

/// The product of `dims`, asserted to exist and to stay below 2^40 elements.
fn bounded(dims: &[usize]) {
    let product = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .expect("a shape product overflows");
    assert!(product < 1 << 40, "shape {dims:?} is unbounded");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for add_bos in [false, true] {
        if let Ok(c) = LlamaConfig::from_hf_json(text, add_bos) {
            assert!(c.num_layers >= 1 && c.heads % c.kv_heads == 0);
            assert!(c.norm.eps.is_finite() && c.norm.eps > 0.0);
            if let kn_config::decoder::Positions::Rotary { ropes, rotary_dim, .. } = &c.positions {
                assert!(ropes.iter().all(|r| r.base.is_finite() && r.base > 0.0));
                assert!(*rotary_dim <= c.head_dim);
            }
            bounded(&[c.vocab_size, c.hidden_size]);
            bounded(&[c.heads, c.head_dim, c.hidden_size]);
            bounded(&[2, c.ffn_width, c.hidden_size]);
            bounded(&[c.num_layers, 2, c.ffn_width]);
            bounded(&[c.max_positions, c.head_dim]);
        }
    }
    if let Ok(c) = BertConfig::from_json(text) {
        assert!(c.layer_norm_eps.is_finite() && c.layer_norm_eps > 0.0);
        bounded(&[c.vocab_size, c.hidden_size]);
        bounded(&[c.max_position_embeddings, c.hidden_size]);
        bounded(&[c.type_vocab_size, c.hidden_size]);
        bounded(&[c.intermediate_size, c.hidden_size]);
        bounded(&[c.num_hidden_layers, c.intermediate_size]);
    }
});
