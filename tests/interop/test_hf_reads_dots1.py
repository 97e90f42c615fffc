"""transformers' Dots1ForCausalLM reads the dots1 checkpoints upcycle writes and computes what upcycle computes.

dots1 = Qwen3 attention + DeepSeek-V3 MoE: sigmoid router scores, selection by score +
e_score_correction_bias, group-limited top-k (n_group, topk_group), routed_scaling_factor, an ungated
shared expert, dense layers below first_k_dense_replace. Sources are tiny sharpened qwen3 models.
Checks: a strict load with equal logits and greedy tokens (hf_out_support.judge) for a conversion,
then for the same file with groups, a non-zero bias and a scaling factor that each move the logits;
the function-preserving conversion passes `convert --verify`; a qwen3 window on some layers keeps its
pattern; `train --expert-bias-rate` saves the learned bias as e_score_correction_bias, which
transformers then routes with and a later run starts from; refusals are one line.
"""
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

import hf_out_support as hf

LAYERS = 3
E = 8


@pytest.fixture(scope="module")
def qwen3(upcycle, tmp_path_factory):
    model = hf.init(upcycle, tmp_path_factory.mktemp("src") / "qwen3", "qwen3", "--layers", LAYERS, seed=4)
    hf.sharpen(model, seed=4)
    return model


def convert(upcycle, qwen3, out, *flags, moe_layers=f"last:{LAYERS - 1}"):
    upcycle("convert", qwen3, "--format", "dots1", "--experts", E, "--top-k", 2, "--shared-experts", 1,
            "--moe-layers", moe_layers, *flags, out)
    return out


def read_tensor(path, name):
    for file in hf.weight_files(path):
        with safe_open(str(file), "pt") as f:
            if name in f.keys():
                return f.get_tensor(name).float().numpy()
    raise KeyError(name)


def bias_name(layer):
    return f"model.layers.{layer}.mlp.gate.e_score_correction_bias"


def test_convert_and_deepseek_routing(upcycle, qwen3, tmp_path):
    # Shuffled shards: no virtual groups, so no two experts share a router row (tied pairs would make
    # groups of 2 select exactly what the plain top-2 selects).
    out = convert(upcycle, qwen3, tmp_path / "dots1", "--granularity", 2, "--expert-split", "shuffled",
                  "--router-init", "normal:0.5", "--expert-init", "noise", "--noise-std", 0.1, "--seed", 3)
    config = hf.read_config(out)
    assert config["model_type"] == "dots1" and config["architectures"] == ["Dots1ForCausalLM"]
    assert (config["n_routed_experts"], config["n_shared_experts"], config["first_k_dense_replace"]) == (E, 1, 1)
    assert config["moe_intermediate_size"] * 2 == hf.read_config(qwen3)["intermediate_size"]
    names = hf.tensor_names(out)
    assert "model.layers.0.mlp.gate_proj.weight" in names and bias_name(1) in names
    assert "model.layers.1.mlp.shared_experts.down_proj.weight" in names
    base = hf.judge(upcycle, out, tmp_path)

    # Each DeepSeek-V3 routing feature must move the logits, so the match below is evidence that
    # both sides apply it: 4 groups of 2 experts with the best 2 groups eligible, a bias that makes
    # expert 7 (and its group) win selection, a routed scaling factor.
    hf.set_tensor(out, bias_name(1), lambda b: torch.linspace(-0.6, 0.6, E))
    hf.set_tensor(out, bias_name(2), lambda b: torch.linspace(0.5, -0.5, E))
    biased = hf.judge(upcycle, out, tmp_path)
    hf.assert_differs(biased, base, "e_score_correction_bias")
    hf.edit_config(out, n_group=4, topk_group=2)
    grouped = hf.judge(upcycle, out, tmp_path)
    hf.assert_differs(grouped, biased, "group-limited top-k")
    hf.edit_config(out, routed_scaling_factor=2.5, norm_topk_prob=False)
    hf.assert_differs(hf.judge(upcycle, out, tmp_path), grouped, "routed_scaling_factor 2.5 without renormalising")


def test_fused_bf16_file(upcycle, qwen3, tmp_path):
    out = convert(upcycle, qwen3, tmp_path / "dots1", "--router-init", "normal:0.5", "--expert-layout", "fused",
                  "--dtype", "bf16", moe_layers="all")
    assert hf.read_config(out)["first_k_dense_replace"] == 0
    hf.judge(upcycle, out, tmp_path)


def verify(upcycle, qwen3, out, *flags):
    return upcycle("convert", qwen3, "--format", "dots1", "--experts", E, "--top-k", 4, "--granularity", 2,
                   "--shared-experts", 1, *flags, "--verify", out, expect_rc=None)


def test_function_preserving(upcycle, qwen3, tmp_path):
    """Renormalised sigmoid weights over whole virtual groups sum to one (weight scaling G), and a
    silent shared expert adds nothing: the dense function, as --verify measures and transformers agrees."""
    proc = verify(upcycle, qwen3, tmp_path / "exact", "--router-init", "zeros", "--shared-expert-scale", 0)
    assert proc.returncode == 0 and "verify: ok" in proc.stdout, proc.stdout + proc.stderr
    dense = hf.judge(upcycle, qwen3, tmp_path, generate=False)
    moe = hf.judge(upcycle, tmp_path / "exact", tmp_path)
    assert np.max(np.abs(moe - dense)) / np.max(np.abs(dense)) < 1e-4
    # The shared expert at full strength adds to the output: no longer the dense function.
    loud = verify(upcycle, qwen3, tmp_path / "loud", "--router-init", "zeros")
    assert "shared experts add to the routed output" in loud.stdout + loud.stderr


def test_trained_bias_is_exported(upcycle, qwen3, tmp_path):
    """--expert-bias-rate: the bias after training is the checkpoint's e_score_correction_bias (the same
    values the trainer state records), transformers routes with it to upcycle's logits, and a run
    continuing from the checkpoint starts from it."""
    from token_data import write_dataset
    moe = convert(upcycle, qwen3, tmp_path / "dots1", "--router-init", "normal:0.5", "--seed", 1)
    stream = (np.arange(8192) * 7 % 61 + 3).tolist()
    data = write_dataset(tmp_path / "data", 512, stream)

    def train(model, run, steps, rate):
        upcycle("train", "--model", model, "--data", data, "--out", run, "--steps", steps, "--micro-batch", 2,
                "--seq-len", 32, "--lr", 1e-3, "--schedule", "constant", "--save-every", steps, "--eval-every", 0,
                "--expert-bias-rate", rate, "--threads", 1)
        return run / "checkpoints" / f"step-{steps:08d}"

    checkpoint = train(moe, tmp_path / "run", 4, 0.05)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    for layer in (1, 2):
        saved = read_tensor(checkpoint, bias_name(layer))
        assert np.any(saved != 0), f"layer {layer}: no bias learned"
        np.testing.assert_array_equal(saved, np.float32(state["expert_bias"][str(layer)]))
        # 4 sign steps of 0.05 from zero: every entry a multiple of 0.05 within ±0.2.
        assert np.all(np.abs(saved) <= 0.2 + 1e-6)
    hf.judge(upcycle, checkpoint, tmp_path)
    # A run from the checkpoint starts from its bias: one more step moves each entry by at most 0.05,
    # where a restart from zeros could not reach the saved entries beyond ±0.05.
    before = read_tensor(checkpoint, bias_name(1))
    assert np.max(np.abs(before)) > 0.05 + 1e-6
    after = read_tensor(train(checkpoint, tmp_path / "run2", 1, 0.05), bias_name(1))
    assert np.max(np.abs(after - before)) <= 0.05 + 1e-6


@pytest.mark.parametrize("flags,message", [
    (["--format", "deepseek_v3"], "multi-head latent attention"),
    (["--format", "dots1", "--shared-experts", 0], "always has a shared expert"),
    (["--format", "dots1", "--shared-experts", 1, "--moe-layers", "first:1"], "first_k_dense_replace"),
], ids=["deepseek_v3", "no-shared-expert", "dense-after-moe"])
def test_refusals(upcycle, qwen3, tmp_path, flags, message):
    proc = upcycle("convert", qwen3, *flags, tmp_path / "out", expect_rc=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_llama_is_refused(upcycle, tmp_path):
    llama = hf.init(upcycle, tmp_path / "llama", "llama")
    proc = upcycle("convert", llama, "--format", "dots1", "--shared-experts", 1, tmp_path / "out", expect_rc=2)
    assert "q_norm/k_norm" in proc.stderr and not (tmp_path / "out").exists()


def test_window_on_some_layers(upcycle, tmp_path):
    """A qwen3 model windowing layers ≥ max_window_layers (which qwen3_moe cannot express) keeps its
    pattern as dots1, and transformers applies the same window (8 < the 72-token prompt)."""
    source = hf.init(upcycle, tmp_path / "qwen3", "qwen3", seed=2)
    hf.sharpen(source, seed=2)
    hf.edit_config(source, use_sliding_window=True, sliding_window=8, max_window_layers=1)
    out = tmp_path / "dots1"
    upcycle("convert", source, "--format", "dots1", "--shared-experts", 1, "--experts", 4,
            "--router-init", "normal:0.5", out)
    config = hf.read_config(out)
    assert config["sliding_window"] == 8 and config["layer_types"] == ["full_attention", "sliding_attention"]
    windowed = hf.judge(upcycle, out, tmp_path)
    hf.edit_config(out, sliding_window=None, drop=("layer_types",))
    hf.assert_differs(windowed, hf.judge(upcycle, out, tmp_path, generate=False), "the window on layer 1")
