#!/usr/bin/env python3
"""Writes the golden fixtures for the kn-gguf crate's tests with gguf-py (PyPI `gguf`, 0.19.0).

Outputs (under fixtures/gguf/ in the repository):

* quant_types.gguf: a small GGUF v3 file (alignment 64) with metadata of every value type and one
  tensor per ggml type that kn-gguf dequantizes. Types gguf-py can quantize (F32, F16, BF16, Q4_0,
  Q4_1, Q5_0, Q5_1, Q8_0) are quantized from random data with `gguf.quants.quantize`, plus one row
  of random but valid raw blocks (odd scales: negative, subnormal, zero). The k-quants (Q2_K, Q3_K,
  Q4_K, Q5_K, Q6_K, Q8_K), which gguf-py cannot quantize, are random valid blocks built in numpy:
  random quant bits and scales, with the f16 fields set to finite values.
* quant_types_expected.json: for every tensor, the expected f32 values as IEEE bit patterns
  (exact, no decimal round trip), from `gguf.quants.dequantize` applied to the tensor bytes read
  back with `gguf.GGUFReader`. gguf-py has no Q8_K dequantizer; its expectation is `d * q`
  computed in numpy and marked as such.
* smollm2_samples.json: when the default model (SmolLM2-135M-Instruct.Q4_1.gguf, fetched by
  scripts/fetch-model.sh) is present, sample values of a few of its tensors as dequantized by
  gguf-py: the first 64 values and ~100 strided ones. Skipped (with a message) when it is absent.
* fuzz/seeds/gguf_parse/*.gguf: small valid files (v3 from gguf-py, a hand-packed v2 file, a
  metadata-only file) that seed the `gguf_parse` fuzz target.

Usage: /tmp/pyref/bin/python scripts/reference/make_gguf_fixtures.py  (any Python with gguf==0.19.0
and numpy). The output is deterministic (fixed seed).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "fixtures" / "gguf"
SEED_DIR = REPO / "fuzz" / "seeds" / "gguf_parse"
QK_K = 256

# (type, rows, columns) of each fixture tensor; columns are a multiple of the block size.
QUANTIZABLE = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
K_QUANTS = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]
ROWS = 4
COLS = 256

# Byte offsets of the f16 scale fields inside one block of each k-quant (ggml's block structs).
K_F16_FIELDS = {
    T.Q2_K: [80, 82],  # scales[16], qs[64], d, dmin
    T.Q3_K: [108],  # hmask[32], qs[64], scales[12], d
    T.Q4_K: [0, 2],  # d, dmin, scales[12], qs[128]
    T.Q5_K: [0, 2],  # d, dmin, scales[12], qh[32], qs[128]
    T.Q6_K: [208],  # ql[128], qh[64], scales[16], d
}


def f16_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite f16 values: mostly typical scale magnitudes of either sign, some subnormal, some 0."""
    mag = 10.0 ** rng.uniform(-4.0, -0.5, n)
    sign = np.where(rng.random(n) < 0.2, -1.0, 1.0)
    vals = (mag * sign).astype(np.float16)
    special = rng.random(n)
    vals = np.where(special < 0.08, np.float16(0.0), vals)
    vals = np.where((special >= 0.08) & (special < 0.16), np.float16(3.0e-6), vals)  # subnormal
    assert np.all(np.isfinite(vals))
    return vals


def random_blocks(rng: np.random.Generator, qtype: T, n_blocks: int) -> np.ndarray:
    """n_blocks valid raw blocks of `qtype` with random bits and finite scales, shape (n, size)."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype == T.Q8_K:
        d = (10.0 ** rng.uniform(-4.0, -1.0, n_blocks)).astype(np.float32)
        blocks[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
        return blocks
    if qtype in K_F16_FIELDS:
        fields = K_F16_FIELDS[qtype]
    else:
        # 32-element types: d first; Q4_1 and Q5_1 also have m right after it.
        fields = [0, 2] if qtype in (T.Q4_1, T.Q5_1) else [0]
    for off in fields:
        blocks[:, off:off + 2] = f16_scales(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return blocks


def quantized_tensor(rng: np.random.Generator, qtype: T) -> np.ndarray:
    """The stored form (float array for F32/F16, uint8 bytes otherwise) of a (ROWS, COLS) tensor."""
    data = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    data[0, :32] = 0.0  # an all-zero block (scale 0)
    data[1, :32] *= 1000.0  # a block with large values
    data[2, 32:64] *= 1e-4  # a block with tiny values
    if qtype == T.F32:
        return data
    if qtype == T.F16:
        data[3, :8] = [0.0, -0.0, 65504.0, -65504.0, 6.0e-8, -3.0e-6, np.inf, -np.inf]
        return gguf.quants.quantize(data, qtype)
    if qtype == T.BF16:
        q = gguf.quants.quantize(data, qtype)
        # Last row: random bf16 bit patterns that are not NaN (exponent all ones excluded).
        bits = rng.integers(0, 1 << 16, size=COLS, dtype=np.uint32)
        bits = np.where((bits & 0x7F80) == 0x7F80, bits & 0xBFFF, bits).astype(np.uint16)
        q[3] = bits.view(np.uint8)
        return q
    q = gguf.quants.quantize(data, qtype)
    block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
    q[3] = random_blocks(rng, qtype, COLS // block_size).reshape(-1)
    return q


def k_quant_tensor(rng: np.random.Generator, qtype: T) -> np.ndarray:
    n_blocks = ROWS * COLS // QK_K
    return random_blocks(rng, qtype, n_blocks).reshape(ROWS, -1)


def bits(values: np.ndarray) -> list[int]:
    return [int(x) for x in np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.uint32)]


def write_quant_types() -> None:
    rng = np.random.default_rng(20261126)
    path = OUT_DIR / "quant_types.gguf"
    w = gguf.GGUFWriter(path, arch="kn-test")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.15625)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo w\u00f6rld \u2713")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 3.141592653589793)
    w.add_key_value("test.array_i32", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.array_u16", [7, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_array("test.array_str", ["a", "bb", ""])
    w.add_array("test.nested", [[1, 2], [3]])

    tensors: dict[str, tuple[T, np.ndarray]] = {}
    for qtype in QUANTIZABLE:
        tensors[f"t.{qtype.name}"] = (qtype, quantized_tensor(rng, qtype))
    for qtype in K_QUANTS:
        tensors[f"t.{qtype.name}"] = (qtype, k_quant_tensor(rng, qtype))
    for name, (qtype, stored) in tensors.items():
        if qtype in (T.F32, T.F16):
            w.add_tensor(name, stored)
        else:
            w.add_tensor(name, stored, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    reader = gguf.GGUFReader(path)
    expected = []
    for t in reader.tensors:
        qtype = T(t.tensor_type)
        raw = np.array(t.data)
        if qtype == T.Q8_K:
            blocks = raw.reshape(-1, gguf.GGML_QUANT_SIZES[qtype][1])
            d = blocks[:, 0:4].copy().view(np.float32)
            q = blocks[:, 4:4 + QK_K].copy().view(np.int8).astype(np.float32)
            values = (d * q).reshape(-1)
            source = "numpy d * q (gguf-py 0.19.0 has no Q8_K dequantizer)"
        else:
            values = gguf.quants.dequantize(raw, qtype)
            source = f"gguf.quants.dequantize (gguf {gguf_version()})"
        shape = [int(x) for x in reversed(t.shape)]  # row-major (ggml dims reversed)
        assert int(np.prod(shape)) == values.size, (t.name, shape, values.shape)
        expected.append({
            "name": t.name,
            "type": qtype.name,
            "shape": shape,
            "source": source,
            "expected_f32_bits": bits(values),
        })
    write_json(OUT_DIR / "quant_types_expected.json", {
        "generator": "scripts/reference/make_gguf_fixtures.py",
        "file": "quant_types.gguf",
        "tensors": expected,
    })
    print(f"wrote {path} ({path.stat().st_size} bytes) and quant_types_expected.json", file=sys.stderr)


def model_path() -> Path:
    if os.environ.get("KN_MODEL_DIR"):
        return Path(os.environ["KN_MODEL_DIR"]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cache = os.environ.get("KN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "knowledge-neurons",
    )
    return Path(cache) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def write_model_samples() -> None:
    path = model_path()
    if not path.is_file():
        print(f"model not found at {path}; run scripts/fetch-model.sh to also write smollm2_samples.json",
              file=sys.stderr)
        return
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    reader = gguf.GGUFReader(path)
    wanted = ["token_embd.weight", "blk.0.ffn_down.weight", "blk.0.attn_norm.weight", "output_norm.weight"]
    by_name = {t.name: t for t in reader.tensors}
    samples = []
    for name in wanted:
        t = by_name[name]
        qtype = T(t.tensor_type)
        values = gguf.quants.dequantize(np.array(t.data), qtype).reshape(-1)
        n = values.size
        stride = max(1, n // 100)
        strided = list(range(0, n, stride)) + [n - 1]
        samples.append({
            "name": name,
            "type": qtype.name,
            "shape": [int(x) for x in reversed(t.shape)],
            "first_64_f32_bits": bits(values[:64]),
            "sample_indices": strided,
            "sample_f32_bits": bits(values[strided]),
        })
    write_json(OUT_DIR / "smollm2_samples.json", {
        "generator": "scripts/reference/make_gguf_fixtures.py",
        "model": path.name,
        "model_sha256": sha,
        "tensors": samples,
    })
    print("wrote smollm2_samples.json", file=sys.stderr)


def write_fuzz_seeds() -> None:
    import struct

    SEED_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)

    # A small v3 file from gguf-py: a few metadata types and one tensor of several kinds.
    path = SEED_DIR / "tiny_v3.gguf"
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_uint32("llama.block_count", 1)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b"])
    w.add_key_value("tokenizer.ggml.token_type", [1, 1, 3], V.ARRAY, sub_type=V.INT32)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_tensor("norm", rng.standard_normal(4).astype(np.float32))
    w.add_tensor("half", rng.standard_normal(8).astype(np.float16))
    q8 = gguf.quants.quantize(rng.standard_normal((2, 32)).astype(np.float32), T.Q8_0)
    w.add_tensor("q8", q8, raw_dtype=T.Q8_0)
    q41 = gguf.quants.quantize(rng.standard_normal((1, 64)).astype(np.float32), T.Q4_1)
    w.add_tensor("q41", q41, raw_dtype=T.Q4_1)
    w.add_tensor("q4k", random_blocks(rng, T.Q4_K, 1).reshape(1, -1), raw_dtype=T.Q4_K)
    w.add_tensor("q6k", random_blocks(rng, T.Q6_K, 1).reshape(1, -1), raw_dtype=T.Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # A hand-packed v2 file with a nested array and a Q4_0 tensor.
    def s(text: str) -> bytes:
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    head = b"GGUF" + struct.pack("<IQQ", 2, 1, 2)
    head += s("general.name") + struct.pack("<I", 8) + s("v2")
    head += s("nested") + struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 4, 2) + struct.pack("<II", 5, 6)
    head += s("w") + struct.pack("<I", 2) + struct.pack("<QQ", 32, 1) + struct.pack("<IQ", 2, 0)
    head += b"\0" * (-len(head) % 32)
    block = np.float16(0.25).tobytes() + bytes(range(0, 256, 16))
    (SEED_DIR / "hand_v2.gguf").write_bytes(head + block)

    # Metadata only, no tensors and no padding.
    meta = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("general.alignment") + struct.pack("<II", 4, 64)
    (SEED_DIR / "metadata_only.gguf").write_bytes(meta)
    print(f"wrote fuzz seeds to {SEED_DIR}", file=sys.stderr)


def gguf_version() -> str:
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # pragma: no cover
        return "unknown"


def write_json(path: Path, obj: object) -> None:
    # One tensor per line keeps diffs readable while the file stays compact.
    text = json.dumps(obj, separators=(",", ":"))
    path.write_text(text + "\n")


def main() -> None:
    if gguf_version() != "0.19.0":
        print(f"warning: expected gguf 0.19.0, found {gguf_version()}", file=sys.stderr)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_quant_types()
    write_model_samples()
    write_fuzz_seeds()


if __name__ == "__main__":
    main()
