"""`upcycle check --target transformers|llama.cpp` against the real tools on tiny checkpoints:

- transformers 5.23: every checkpoint `check` passes loads cleanly and runs (fused experts, a
  zero-width shared expert, yarn RoPE, windows on some layers); the one it flags (a RoPE type
  transformers does not know) fails in transformers;
- llama.cpp (llama-cpp-python, via `upcycle export gguf`): where `check` passes, llama.cpp computes
  transformers' logits (1e-4 of their scale, f32 KV cache); where it flags the top-k normalisation
  (qwen2_moe with norm_topk_prob true, qwen3_moe with false), the GGUF of the same weights — which the
  exporter writes for the twin llama.cpp accepts, since the GGUF has no key for that flag — gives
  logits far from what transformers computes for the flagged config, i.e. llama.cpp computes another
  model, as the rule says.
"""
import json

import numpy as np
import pytest

import hf_judge
from llama_cpp_support import llama

TOLERANCE = 1e-4
IDS = [3, 17, 42, 99, 150, 201, 7, 64, 128, 255, 300, 11]


def make(upcycle, path, arch, *flags, patch=None):
    upcycle("init", "--arch", arch, "--preset", "tiny", "--seed", "5", *flags, path)
    if patch:
        config = json.loads((path / "config.json").read_text())
        config.update(patch)
        (path / "config.json").write_text(json.dumps(config, indent=2))
    return path


def check(upcycle, path, target):
    proc = upcycle("check", path, "--target", target, expect_rc=None)
    assert proc.returncode in (0, 2), proc.stderr
    return proc.returncode == 0, proc.stdout


def runs_in_transformers(path):
    try:
        model = hf_judge.load(path)
        return bool(np.isfinite(hf_judge.logits(model, IDS)).all())
    except Exception as e:  # the flagged case: transformers refuses to build or run the model
        print(f"{path.name}: transformers: {type(e).__name__}: {e}")
        return False


TRANSFORMERS_CASES = [
    ("rope_unknown", "llama", [], {"rope_scaling": {"rope_type": "ntk_custom", "factor": 2.0}}),
    ("rope_yarn", "llama", [], {"rope_scaling": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 256}}),
    ("fused_qwen3_moe", "qwen3_moe", ["--expert-layout", "fused"], None),
    ("no_shared_qwen2_moe", "qwen2_moe", ["--shared-expert-intermediate-size", "0"], None),
    ("qwen2_some_windows", "qwen2", [], {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1}),
]


@pytest.mark.parametrize("name,arch,flags,patch", TRANSFORMERS_CASES, ids=[c[0] for c in TRANSFORMERS_CASES])
def test_check_agrees_with_transformers(upcycle, tmp_path, name, arch, flags, patch):
    path = make(upcycle, tmp_path / name, arch, *flags, patch=patch)
    compatible, out = check(upcycle, path, "transformers")
    assert compatible == runs_in_transformers(path), out


@pytest.fixture(scope="module")
def tokenizer(upcycle, tmp_path_factory):
    """A byte-level BPE trained on a few words: llama.cpp needs some vocabulary in the GGUF."""
    d = tmp_path_factory.mktemp("tok")
    words = ["sea", "wind", "light", "house", "ship", "night", "star", "wave", "tide", "lamp"]
    (d / "text.txt").write_text("\n".join(" ".join(words[(i * 7 + j) % 10] for j in range(9)) for i in range(500)))
    upcycle("data", "train-tokenizer", "--vocab-size", "300", "--input", d / "text.txt", "--out", d / "tokenizer.json")
    return d / "tokenizer.json"


def llama_cpp_logits(gguf_path):
    model = llama(gguf_path)
    model.reset()
    model.eval(IDS)
    return np.array(model.scores[:len(IDS)], dtype=np.float32)


# (arch, the norm_topk_prob llama.cpp's graph implements, the one it does not)
NORM_CASES = [("qwen2_moe", "false", "true"), ("qwen3_moe", "true", "false")]


@pytest.mark.parametrize("arch,accepted,flagged", NORM_CASES, ids=[c[0] for c in NORM_CASES])
def test_check_agrees_with_llama_cpp_on_topk_normalisation(upcycle, tmp_path, tokenizer, arch, accepted, flagged):
    good = make(upcycle, tmp_path / "good", arch, "--norm-topk-prob", accepted)
    bad = make(upcycle, tmp_path / "bad", arch, "--norm-topk-prob", flagged)
    assert (good / "model.safetensors").read_bytes() == (bad / "model.safetensors").read_bytes()
    assert check(upcycle, good, "llama.cpp")[0]
    compatible, out = check(upcycle, bad, "llama.cpp")
    assert not compatible and "norm_topk_prob" in out, out

    (good / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    upcycle("export", "gguf", good, tmp_path / "m.gguf", "--type", "f32")
    theirs = llama_cpp_logits(tmp_path / "m.gguf")
    agree = hf_judge.max_relative_error(theirs, hf_judge.logits(hf_judge.load(good), IDS))
    differ = hf_judge.max_relative_error(theirs, hf_judge.logits(hf_judge.load(bad), IDS))
    print(f"{arch}: llama.cpp vs transformers, norm_topk_prob {accepted}: {agree:.2e}; {flagged}: {differ:.2e}")
    assert agree <= TOLERANCE
    assert differ > 10 * TOLERANCE


def test_check_agrees_with_llama_cpp_on_mixtral(upcycle, tmp_path, tokenizer):
    path = make(upcycle, tmp_path / "mixtral", "mixtral")
    assert check(upcycle, path, "llama.cpp")[0]
    (path / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    upcycle("export", "gguf", path, tmp_path / "m.gguf", "--type", "f32")
    error = hf_judge.max_relative_error(llama_cpp_logits(tmp_path / "m.gguf"), hf_judge.logits(hf_judge.load(path), IDS))
    print(f"mixtral: llama.cpp vs transformers {error:.2e}")
    assert error <= TOLERANCE
