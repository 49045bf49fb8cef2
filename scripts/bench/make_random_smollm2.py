#!/usr/bin/env python3
"""Writes a Hugging Face Llama directory with SmolLM2-135M's shapes (30 layers, hidden 576,
FFN 1536, 9 query / 3 key-value heads, vocabulary 49152, tied embeddings) and random weights,
with the tiny-llama fixture's tokenizer (its ids all lie inside the vocabulary). Attribution
speed does not depend on the weights' values, so this stands in for SmolLM2 where the GGUF
cannot go (e.g. a GPU machine that receives at most 64 MiB of files).

    python scripts/bench/make_random_smollm2.py OUT_DIR
"""
import shutil
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

REPO = Path(__file__).resolve().parents[2]


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "smollm2-random")
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, head_dim=64, vocab_size=49152, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(str(out), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(REPO / "fixtures" / "tiny-llama" / name, out / name)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
