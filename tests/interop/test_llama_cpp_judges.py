"""llama.cpp itself (llama-cpp-python 0.3.36, compiled from source by scripts/setup) judges the GGUF
side of upcycle with the real SmolLM2-135M-Instruct:

- its own tokenizer, reading the original GGUF, encodes a varied text set exactly like the
  tokenizer.json `upcycle import` rebuilt from that GGUF (as upcycle's own tokenizer applies it);
- the imported model exported back as an f32 GGUF (`upcycle export gguf`) computes in llama.cpp the
  logits `upcycle logits` computes, and greedy decoding picks the same tokens;
- the same for an upcycled MoE of it (`upcycle convert`, then export): llama.cpp runs the experts
  upcycle wrote.
The tolerance (1e-4 of the logits' scale, as for transformers) holds with llama.cpp's KV cache in
float32: its default f16 cache rounds keys and values and moves the logits by ~1e-3 (measured
9.8e-4 on this prompt). With f32 both sides sum in float32 in their own order (ggml's generic CPU
kernels, no -march=native; upcycle through OpenBLAS): measured 2.2e-6 dense, 1.7e-6 MoE.
"""
import numpy as np
import pytest

import gguf_support as gs
import hf_judge
from llama_cpp_support import greedy, llama

TOLERANCE = 1e-4
NEW_TOKENS = 16
PROMPT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
          "<|im_start|>user\nWrite a short poem about the sea, the wind and 42 lighthouses, then explain "
          "in two sentences why lighthouses matter to sailors at night, and name three famous ones.<|im_end|>\n<|im_start|>assistant\n")


def llama_cpp_logits(model, ids):
    model.reset()
    model.eval(ids)
    return np.array(model.scores[:len(ids)], dtype=np.float32)


def upcycle_greedy(upcycle, path, ids, n):
    proc = upcycle("generate", path, "--tokens", " ".join(map(str, ids)), "--max-new-tokens", n)
    return [int(t) for t in proc.stdout.split()]


@pytest.fixture(scope="module")
def smollm2(upcycle, tmp_path_factory):
    d = tmp_path_factory.mktemp("smollm2")
    upcycle("import", gs.smollm2_gguf(), d / "imported")
    return d


@pytest.fixture(scope="module")
def prompt_ids(smollm2):
    ids = llama(gs.smollm2_gguf(), vocab_only=True).tokenize(PROMPT.encode(), add_bos=False, special=True)
    assert len(ids) >= 64
    return ids


def test_llama_cpp_tokenizer_encodes_like_the_rebuilt_tokenizer(upcycle, smollm2, tmp_path):
    theirs = llama(gs.smollm2_gguf(), vocab_only=True)
    ours = gs.upcycle_encode(upcycle, smollm2 / "imported" / "tokenizer.json", gs.TEXTS, tmp_path)
    for text, ids in zip(gs.TEXTS, ours):
        assert theirs.tokenize(text.encode(), add_bos=False, special=True) == ids, text
        assert theirs.detokenize(ids, special=True).decode("utf-8", errors="replace") == text, text


def check_against_llama_cpp(upcycle, checkpoint, gguf_path, ids, tmp_path):
    upcycle("export", "gguf", checkpoint, gguf_path, "--type", "f32")
    model = llama(gguf_path)
    theirs = llama_cpp_logits(model, ids)
    ours = hf_judge.upcycle_logits(upcycle, checkpoint, ids, tmp_path / "logits.npy")
    error = hf_judge.max_relative_error(ours, theirs)
    print(f"{checkpoint.name}: max relative error vs llama.cpp {error:.2e} over {len(ids)} tokens")
    assert error <= TOLERANCE
    assert greedy(model, ids, NEW_TOKENS) == upcycle_greedy(upcycle, checkpoint, ids, NEW_TOKENS)


def test_dense_export_runs_in_llama_cpp(upcycle, smollm2, prompt_ids, tmp_path):
    check_against_llama_cpp(upcycle, smollm2 / "imported", tmp_path / "dense.gguf", prompt_ids, tmp_path)


def test_upcycled_moe_runs_in_llama_cpp(upcycle, smollm2, prompt_ids, tmp_path):
    """An upcycled MoE of every layer (llama.cpp's MoE graph routes every layer; export refuses
    partial ones): 4 experts, top-2, with noisy experts so that routing matters — llama.cpp must pick
    and mix the experts as upcycle does. bf16 keeps the checkpoint small; the export widens it
    exactly."""
    moe = smollm2 / "moe"
    upcycle("convert", smollm2 / "imported", moe, "--experts", 4, "--top-k", 2, "--expert-init", "noise",
            "--noise-std", "0.01", "--seed", 1, "--dtype", "bf16")
    check_against_llama_cpp(upcycle, moe, tmp_path / "moe.gguf", prompt_ids, tmp_path)
