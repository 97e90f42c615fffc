"""transformers reads what `upcycle init` writes, and computes what upcycle computes.

Every family × expert layout × file dtype loads with AutoModelForCausalLM.from_pretrained without a
complaint, and its float32 logits on 72 tokens and 16 greedy tokens equal upcycle's, first as written
(HF's initializer_range 0.02) and then sharpened (hf_out_support.sharpen). Then each config semantic
the families carry: sliding windows, RoPE scalings, qk-norm, norm_topk_prob, the shared-expert gate,
tied embeddings, an explicit head_dim, Mixtral's router jitter; each is shown to change upcycle's
logits (so the match is evidence), and what upcycle cannot run is refused with a one-line error.
"""
import numpy as np
import pytest
import torch

import hf_judge
import hf_out_support as hf

DENSE = ["llama", "mistral", "qwen2", "qwen3"]
MOE = ["mixtral", "qwen2_moe", "qwen3_moe", "dots1"]
MATRIX = [(f, "per-expert") for f in DENSE + MOE] + [(f, "fused") for f in MOE]


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("arch,layout", MATRIX)
def test_init_output(upcycle, tmp_path, arch, layout, dtype):
    flags = ["--expert-layout", layout] if layout == "fused" else []
    model = hf.init(upcycle, tmp_path / arch, arch, *flags, dtype=dtype)
    names = hf.tensor_names(model)
    assert any(".experts.gate_up_proj" in n for n in names) == (layout == "fused")
    hf.judge(upcycle, model, tmp_path)
    hf.sharpen(model)
    hf.judge(upcycle, model, tmp_path)


def sharp(upcycle, tmp_path, arch, *flags, dtype="f32"):
    model = hf.init(upcycle, tmp_path / arch, arch, *flags, dtype=dtype)
    hf.sharpen(model)
    return model


# (family, config edit that turns a window shorter than the prompt on). qwen2/qwen3 window the layers
# from max_window_layers on; qwen2_moe needs layer_types (test_qwen2_moe_window_needs_layer_types).
WINDOWS = [
    ("mistral", dict(sliding_window=8)),
    ("mixtral", dict(sliding_window=8)),
    ("qwen2", dict(use_sliding_window=True, sliding_window=8, max_window_layers=1)),
    ("qwen3", dict(use_sliding_window=True, sliding_window=8, max_window_layers=1)),
    ("qwen3_moe", dict(use_sliding_window=True, sliding_window=8)),
    ("qwen2_moe", dict(use_sliding_window=True, sliding_window=8, max_window_layers=1,
                       layer_types=["full_attention", "sliding_attention"])),
    ("dots1", dict(sliding_window=8, max_window_layers=1)),  # no switch: the window alone turns it on
]


@pytest.mark.parametrize("arch,window", WINDOWS, ids=[w[0] for w in WINDOWS])
def test_sliding_window(upcycle, tmp_path, arch, window):
    model = sharp(upcycle, tmp_path, arch)
    hf.edit_config(model, sliding_window=None, use_sliding_window=False)
    full = hf.judge(upcycle, model, tmp_path, generate=False)
    hf.edit_config(model, **window)
    windowed = hf.judge(upcycle, model, tmp_path)
    hf.assert_differs(windowed, full, f"{arch} sliding window 8")
    if "max_window_layers" in window and arch != "qwen2_moe":
        hf.edit_config(model, max_window_layers=0)  # now layer 0 is windowed too
        hf.assert_differs(hf.judge(upcycle, model, tmp_path, generate=False), windowed, "max_window_layers")


def test_qwen2_moe_window_needs_layer_types(upcycle, tmp_path):
    model = sharp(upcycle, tmp_path, "qwen2_moe")
    hf.edit_config(model, use_sliding_window=True, sliding_window=8, max_window_layers=1)
    # transformers 5 windows layer 0 here (even layers below max_window_layers), qwen2's rule layer 1.
    hf_model = hf_judge.load(model)
    assert hf_model.config.layer_types == ["sliding_attention", "full_attention"]
    err = upcycle("logits", model, "--tokens", "5 6 7", "--out", tmp_path / "x.npy", expect_rc=2).stderr
    assert "needs 'layer_types'" in err and str(model / "config.json") in err, err
    assert not (tmp_path / "x.npy").exists()


LLAMA3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=64)
ROPES = [("llama", "v4", dict(rope_type="linear", factor=4.0)), ("llama", "v4", LLAMA3),
         ("qwen3_moe", "v5", dict(rope_type="linear", factor=4.0)), ("qwen3_moe", "v5", LLAMA3),
         ("mixtral", "v4", LLAMA3), ("qwen2", "v4-type", dict(type="linear", factor=2.0))]


@pytest.mark.parametrize("arch,spelling,scaling", ROPES, ids=[f"{a}-{s['rope_type' if 'rope_type' in s else 'type']}"
                                                              f"-{sp}" for a, sp, s in ROPES])
def test_rope_scaling(upcycle, tmp_path, arch, spelling, scaling):
    """Each scaling type changes the logits on 72 tokens (llama3's original length 64 puts most
    frequencies of a 16-wide head in the scaled and smoothed bands) and matches transformers, in the
    v4 spelling (rope_scaling + rope_theta, `type` before 4.42) and the v5 one (rope_parameters)."""
    model = sharp(upcycle, tmp_path, arch)
    plain = hf.judge(upcycle, model, tmp_path, generate=False)
    theta = hf.read_config(model)["rope_theta"]
    if spelling == "v5":
        hf.edit_config(model, drop=["rope_scaling", "rope_theta"], rope_parameters=dict(scaling, rope_theta=theta))
    else:
        hf.edit_config(model, rope_scaling=scaling)
    scaled = hf.judge(upcycle, model, tmp_path)
    hf.assert_differs(scaled, plain, f"rope {scaling}")


def test_rope_theta(upcycle, tmp_path):
    model = sharp(upcycle, tmp_path, "llama")
    plain = hf.judge(upcycle, model, tmp_path, generate=False)
    hf.edit_config(model, rope_theta=500.0)
    hf.assert_differs(hf.judge(upcycle, model, tmp_path), plain, "rope_theta 500")


# RoPE upcycle does not run: refused by every command that computes, never approximated.
REFUSED_ROPES = [
    ("dynamic", dict(rope_type="dynamic", factor=4.0), "rope type 'dynamic' is not supported"),
    ("yarn", dict(rope_type="yarn", factor=8.0, original_max_position_embeddings=64), "rope type 'yarn'"),
    ("longrope", dict(rope_type="longrope", short_factor=[1.0] * 8, long_factor=[2.0] * 8, factor=8.0,
                      original_max_position_embeddings=64), "rope type 'longrope'"),
    # transformers 5 would default the length to max_position_embeddings (and warn when equal).
    ("llama3-no-length", dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0),
     "needs 'original_max_position_embeddings'"),
]


@pytest.mark.parametrize("name,scaling,message", REFUSED_ROPES, ids=[r[0] for r in REFUSED_ROPES])
def test_unsupported_rope_is_refused(upcycle, tmp_path, name, scaling, message):
    model = hf.init(upcycle, tmp_path / "llama", "llama")
    hf.edit_config(model, rope_scaling=scaling)
    out = tmp_path / "x.npy"
    for cmd in (["logits", model, "--tokens", "5 6 7", "--out", out],
                ["generate", model, "--tokens", "5 6 7", "--max-new-tokens", 2]):
        proc = upcycle(*cmd, expect_rc=2)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "config.json" in lines[0], proc.stderr
        assert proc.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("arch", ["qwen3", "qwen3_moe"])
def test_qk_norm(upcycle, tmp_path, arch):
    model = sharp(upcycle, tmp_path, arch)
    normed = hf.judge(upcycle, model, tmp_path)
    for layer in range(2):
        for which in ("q_norm", "k_norm"):
            hf.set_tensor(model, f"model.layers.{layer}.self_attn.{which}.weight", torch.ones_like)
    hf.assert_differs(hf.judge(upcycle, model, tmp_path, generate=False), normed, "q_norm/k_norm weights")


@pytest.mark.parametrize("arch", ["qwen2_moe", "qwen3_moe"])
def test_norm_topk_prob(upcycle, tmp_path, arch):
    model = sharp(upcycle, tmp_path, arch, "--norm-topk-prob", "false")
    assert hf.read_config(model)["norm_topk_prob"] is False
    plain = hf.judge(upcycle, model, tmp_path)
    hf.edit_config(model, norm_topk_prob=True)
    hf.assert_differs(hf.judge(upcycle, model, tmp_path), plain, "norm_topk_prob")


def test_shared_expert_gate(upcycle, tmp_path):
    model = sharp(upcycle, tmp_path, "qwen2_moe")
    gated = hf.judge(upcycle, model, tmp_path)
    for layer in range(2):  # sigmoid(0) = 1/2 on every token instead of a per-token gate
        hf.set_tensor(model, f"model.layers.{layer}.mlp.shared_expert_gate.weight", torch.zeros_like)
    hf.assert_differs(hf.judge(upcycle, model, tmp_path), gated, "the shared-expert gate")


@pytest.mark.parametrize("layout", ["per-expert", "fused"])
def test_qwen2_moe_without_shared_expert(upcycle, tmp_path, layout):
    """transformers 5 builds qwen2_moe's shared expert even at width 0 and reports its tensors missing
    when a file lacks them: upcycle writes the [0, D] / [D, 0] projections and a zero [1, D] gate."""
    model = sharp(upcycle, tmp_path, "qwen2_moe", "--shared-expert-intermediate-size", "0",
                  "--expert-layout", layout)
    names = hf.tensor_names(model)
    for layer in range(2):
        assert f"model.layers.{layer}.mlp.shared_expert_gate.weight" in names
    assert hf_judge.expected_warnings(model) == (hf_judge.ZERO_WIDTH,)
    hf.judge(upcycle, model, tmp_path)


@pytest.mark.parametrize("arch", ["llama", "qwen3", "mixtral", "qwen2_moe"])
def test_tied_embeddings(upcycle, tmp_path, arch):
    model = sharp(upcycle, tmp_path, arch, "--tie-embeddings", "true")
    assert "lm_head.weight" not in hf.tensor_names(model)
    hf.judge(upcycle, model, tmp_path)


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen3_moe"])
def test_explicit_head_dim(upcycle, tmp_path, arch):
    """head_dim 32 with hidden 64 and 4 heads: projections are 128 wide, not 64."""
    model = sharp(upcycle, tmp_path, arch, "--head-dim", "32")
    assert hf.read_config(model)["head_dim"] == 32
    hf.judge(upcycle, model, tmp_path)


def test_mixtral_router_jitter_is_training_only(upcycle, tmp_path):
    model = sharp(upcycle, tmp_path, "mixtral")
    plain = hf.judge(upcycle, model, tmp_path, generate=False)
    hf.edit_config(model, router_jitter_noise=0.5)
    jittered = hf.judge(upcycle, model, tmp_path)
    assert hf_judge.max_relative_error(jittered, plain) == 0.0


BF16_ROUNDOFF = 2.0 ** -8  # unit roundoff of bfloat16 (8 significant bits)


def token_errors(actual, expected):
    """Per position: max |a - e| over the vocabulary, relative to the logits' scale."""
    return np.abs(actual - expected).max(axis=1) / np.abs(expected).max()


@pytest.mark.parametrize("arch", DENSE + MOE)
def test_bf16_compute(upcycle, tmp_path, arch):
    """bf16 *compute* is held to the tool's own accuracy, not to 1e-4. transformers in bfloat16 rounds
    every activation, the residual stream included; `--backend cpu-bf16` rounds matmul inputs only.
    Both are measured against the float32 logits of the same bf16 weights. Dense: upcycle's error must
    not exceed transformers' own, and both stay within 16 unit roundoffs u of the logit scale. MoE: a
    rounding of size u can flip a near-tied top-k choice (a different expert for that token, and
    through attention for later ones), which no elementwise bound survives, on either side; the
    median position must still be within 16 u."""
    model = sharp(upcycle, tmp_path, arch, dtype="bf16")
    ids = hf.prompt(512)
    exact = hf_judge.logits(hf_judge.load(model), ids)
    theirs = hf_judge.logits(hf_judge.load(model, dtype=torch.bfloat16), ids)
    ours = hf_judge.upcycle_logits(upcycle, model, ids, tmp_path / "bf16.npy", backend="cpu-bf16")
    err_theirs = hf_judge.max_relative_error(theirs, exact)
    err_ours = hf_judge.max_relative_error(ours, exact)
    between = hf_judge.max_relative_error(ours, theirs)
    median_theirs = float(np.median(token_errors(theirs, exact)))
    median_ours = float(np.median(token_errors(ours, exact)))
    print(f"{arch} bf16 compute vs float32 (u = {BF16_ROUNDOFF:.2e}): max error transformers {err_theirs:.2e}, "
          f"upcycle {err_ours:.2e}, between them {between:.2e}; median position transformers "
          f"{median_theirs:.2e}, upcycle {median_ours:.2e}")
    assert err_ours > hf.TOLERANCE, "cpu-bf16 computed in float32?"
    assert max(median_ours, median_theirs) <= 16 * BF16_ROUNDOFF
    if arch in MOE:
        return
    assert err_ours <= err_theirs, f"upcycle bf16 error {err_ours:.3g} > transformers' {err_theirs:.3g}"
    assert err_theirs <= 16 * BF16_ROUNDOFF
    assert between <= 16 * BF16_ROUNDOFF
