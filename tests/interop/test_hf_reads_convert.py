"""transformers reads what `upcycle convert` writes, and computes what upcycle computes.

Sources are tiny dense checkpoints of each family written by `upcycle init` and sharpened
(hf_out_support.sharpen), the mistral one with an 8-token window. Outputs: every preset from every
dense family, each output family in both expert layouts and as f32 and bf16 files, partial-MoE layouts
(mlp_only_layers, decoder_sparse_step), depth tiling, from-scratch models, and the mergekit-moe YAMLs
of tests/data/mergekit. Each must load without a complaint and match upcycle's logits and greedy
tokens (hf_out_support.judge). Conversions a family cannot express are refused in one line.
"""
import json
import re

import numpy as np
import pytest
import torch

from transformers.convert_slow_tokenizer import bytes_to_unicode

import hf_judge
import hf_out_support as hf

DENSE = ["llama", "mistral", "qwen2", "qwen3"]


def make_source(upcycle, out, arch, seed=1, layers=2):
    model = hf.init(upcycle, out, arch, "--layers", layers, seed=seed)
    hf.sharpen(model, seed=seed)
    if arch == "mistral":
        hf.edit_config(model, sliding_window=8)  # carried into the MoE config: must keep working
    return model


@pytest.fixture(scope="module")
def sources(upcycle, tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    cache = {}

    def get(arch, seed=1, layers=2):
        if (arch, seed, layers) not in cache:
            cache[arch, seed, layers] = make_source(upcycle, root / f"{arch}-{seed}-{layers}", arch, seed, layers)
        return cache[arch, seed, layers]
    return get


def convert(upcycle, out, *args):
    upcycle("convert", *args, out)
    return out


def model_type(path):
    return hf.read_config(path)["model_type"]


# Family auto picks: mixtral when it can express the recipe, else qwen2_moe; qwen3 -> qwen3_moe.
AUTO = {
    ("komatsuzaki2022", "llama"): "qwen2_moe", ("komatsuzaki2022", "mistral"): "qwen2_moe",
    ("komatsuzaki2022", "qwen2"): "qwen2_moe", ("komatsuzaki2022", "qwen3"): "qwen3_moe",
    ("drop-upcycling", "llama"): "mixtral", ("drop-upcycling", "mistral"): "mixtral",
    ("drop-upcycling", "qwen2"): "qwen2_moe", ("drop-upcycling", "qwen3"): "qwen3_moe",
    ("nvidia-granular", "llama"): "qwen2_moe", ("nvidia-granular", "mistral"): "qwen2_moe",
    ("nvidia-granular", "qwen2"): "qwen2_moe", ("nvidia-granular", "qwen3"): "qwen3_moe",
    ("qwen-fine-grained", "llama"): "qwen2_moe", ("qwen-fine-grained", "mistral"): "qwen2_moe",
    ("qwen-fine-grained", "qwen2"): "qwen2_moe",  # from qwen3: refused (test_refusals)
    ("btx", "llama"): "mixtral", ("btx", "mistral"): "mixtral",
    ("btx", "qwen2"): "qwen2_moe", ("btx", "qwen3"): "qwen3_moe",
}


@pytest.mark.parametrize("preset,arch", AUTO, ids=[f"{p}-{a}" for p, a in AUTO])
def test_preset(upcycle, sources, tmp_path, preset, arch):
    want = AUTO[preset, arch]
    extra = ["--expert-sources", f"{sources(arch)},{sources(arch, seed=2)}"] if preset == "btx" else []
    out = convert(upcycle, tmp_path / "moe", sources(arch), "--preset", preset, "--seed", 4, *extra)
    assert model_type(out) == want
    hf.judge(upcycle, out, tmp_path)


# Every output family each dense family can become, in both layouts and as f32 and bf16 files.
FORMATS = [("llama", "mixtral"), ("llama", "qwen2_moe"), ("mistral", "mixtral"), ("mistral", "qwen2_moe"),
           ("qwen2", "qwen2_moe"), ("qwen3", "qwen3_moe")]


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("layout", ["per-expert", "fused"])
@pytest.mark.parametrize("arch,fmt", FORMATS, ids=[f"{a}-{f}" for a, f in FORMATS])
def test_format(upcycle, sources, tmp_path, arch, fmt, layout, dtype):
    out = convert(upcycle, tmp_path / "moe", sources(arch), "--experts", 4, "--top-k", 2, "--format", fmt,
                  "--router-init", "normal:0.5", "--expert-init", "noise", "--noise-std", 0.1,
                  "--expert-layout", layout, "--dtype", dtype, "--seed", 5)
    config = hf.read_config(out)
    assert config["model_type"] == fmt and config["torch_dtype"] == {"f32": "float32", "bf16": "bfloat16"}[dtype]
    assert any(n.endswith("mlp.experts.gate_up_proj") for n in hf.tensor_names(out)) == (layout == "fused")
    if arch == "mistral":
        windowed = config.get("layer_types") or []
        assert config.get("sliding_window") == 8 and "full_attention" not in windowed
    hf.judge(upcycle, out, tmp_path)


def sparse_layers(model):
    return [i for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "experts")]


@pytest.mark.parametrize("arch,fmt", [("qwen2", "qwen2_moe"), ("llama", "qwen2_moe"), ("qwen3", "qwen3_moe")])
def test_partial_moe(upcycle, sources, tmp_path, arch, fmt):
    """MoE on layer 3 of 4 only: convert writes mlp_only_layers [0, 1, 2]; the same layout spelled
    decoder_sparse_step 2 + mlp_only_layers [1] must read identically on both sides."""
    out = convert(upcycle, tmp_path / "moe", sources(arch, layers=4), "--moe-layers", "3", "--experts", 4,
                  "--format", fmt, "--router", "softmax-topk", "--router-init", "normal:0.5", "--seed", 2)
    config = hf.read_config(out)
    assert config["mlp_only_layers"] == [0, 1, 2] and config["decoder_sparse_step"] == 1
    names = hf.tensor_names(out)
    assert "model.layers.0.mlp.gate_proj.weight" in names and "model.layers.3.mlp.gate.weight" in names
    assert sparse_layers(hf_judge.load(out)) == [3]
    first = hf.judge(upcycle, out, tmp_path)
    hf.edit_config(out, mlp_only_layers=[1], decoder_sparse_step=2)
    assert sparse_layers(hf_judge.load(out)) == [3]
    assert hf_judge.max_relative_error(hf.judge(upcycle, out, tmp_path), first) == 0.0


@pytest.mark.parametrize("order", ["tiled", "stacked"])
@pytest.mark.parametrize("arch", DENSE)
def test_depth_tile(upcycle, sources, tmp_path, arch, order):
    out = convert(upcycle, tmp_path / "deep", sources(arch), "--depth-tile", 2, "--depth-order", order)
    assert hf.read_config(out)["num_hidden_layers"] == 4 and model_type(out) == arch
    hf.judge(upcycle, out, tmp_path)


@pytest.mark.parametrize("arch,layout", [("llama", "per-expert"), ("qwen2", "fused"), ("qwen3", "fused")])
def test_from_scratch(upcycle, sources, tmp_path, arch, layout):
    out = convert(upcycle, tmp_path / "scratch", sources(arch), "--from-scratch", "--experts", 4,
                  "--expert-layout", layout, "--shared-experts", 1 if arch == "qwen2" else 0)
    hf.judge(upcycle, out, tmp_path)


def byte_tokenizer(path):
    """A tokenizer.json with one token per byte (GPT-2's byte-to-unicode alphabet, no merges): the
    prompt gate modes encode their prompts with it."""
    chars = bytes_to_unicode()
    level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": level,
           "post_processor": None, "decoder": level,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                     "vocab": {chars[b]: b for b in range(256)}, "merges": []}}
    (path / "tokenizer.json").write_text(json.dumps(tok))


@pytest.mark.parametrize("yaml", ["clown_car_hidden.yaml", "sparse_upcycle_random.yaml", "qwen_shared_expert.yaml",
                                  "btx_average.yaml"])
def test_mergekit_recipe(upcycle, test_data_dir, tmp_path, yaml):
    """The YAML's models/<name> are tiny sharpened checkpoints (family from the name's prefix)."""
    text = (test_data_dir / "mergekit" / yaml).read_text()
    (tmp_path / yaml).write_text(text)
    for i, name in enumerate(sorted(set(re.findall(r"models/([A-Za-z0-9_-]+)", text)))):
        arch = "qwen3" if name.startswith("qwen3-") else "qwen2" if name.startswith("qwen2-") else "llama"
        (tmp_path / "models").mkdir(exist_ok=True)
        byte_tokenizer(make_source(upcycle, tmp_path / "models" / name, arch, seed=10 + i))
    out = tmp_path / "moe"
    upcycle("convert", "--recipe", tmp_path / yaml, out)
    hf.judge(upcycle, out, tmp_path)


def test_refusals(upcycle, sources, tmp_path):
    """Conversions the output family cannot express: one line naming the problem, exit 2, no output."""
    cases = [
        ([sources("qwen2"), "--format", "mixtral"], "non-zero tensor model.layers.0.self_attn.q_proj.bias"),
        ([sources("qwen3"), "--preset", "qwen-fine-grained"], "q_norm"),
        ([sources("llama"), "--depth-tile", 2, "--expert-layout", "fused"], "--expert-layout does not apply"),
    ]
    for args, message in cases:
        proc = upcycle("convert", *args, tmp_path / "out", expect_rc=2)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert not (tmp_path / "out").exists()


CALIBRATION = ("def add(a, b):\n    return a + b\n\nThe quick brown fox jumps over the lazy dog. Le chat est sur "
               "la table. 3 + 4 = 7; 12 * 12 = 144.\nfor i in range(10): print(i)\nimport numpy as np\n") * 2


def mlp_inputs(model, layers, ids):
    """The input of each listed layer's `mlp` (what an MoE block's router multiplies) for one sequence."""
    seen = {}
    hooks = [model.model.layers[l].mlp.register_forward_pre_hook(
        lambda mod, args, l=l: seen.__setitem__(l, args[0][0].detach().double().numpy())) for l in layers]
    with torch.no_grad():
        model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("arch,fmt,layers", [("llama", "mixtral", "all"), ("qwen3", "qwen3_moe", "1")])
def test_kmeans_router_rows_are_centroids_of_transformers_mlp_inputs(upcycle, tmp_path, arch, fmt, layers):
    """--router-init kmeans: the rows are a fixed point of cosine k-means on the dense model's mlp inputs
    as transformers computes them (row e = 0.02·√D · normalise(Σ unit inputs whose top-1 row is e)),
    no expert is empty, and the converted model's routers send those tokens top-1 to their cluster."""
    dense = make_source(upcycle, tmp_path / "dense", arch)
    byte_tokenizer(dense)
    (tmp_path / "calib.txt").write_text(CALIBRATION)
    out = convert(upcycle, tmp_path / "moe", dense, "--experts", 4, "--top-k", 1, "--format", fmt,
                  "--moe-layers", layers, "--router-init", "kmeans", "--calibration", tmp_path / "calib.txt",
                  "--seed", 3)
    ids = list(CALIBRATION.encode())  # the byte tokenizer: id = byte, no BOS
    moe = hf_judge.load(out)
    moe_layers = sparse_layers(moe)
    assert moe_layers == ([0, 1] if layers == "all" else [1])
    x_dense = mlp_inputs(hf_judge.load(dense), moe_layers, ids)
    x_moe = mlp_inputs(moe, moe_layers, ids)
    for l in moe_layers:
        w = moe.model.layers[l].mlp.gate.weight.detach().double().numpy()
        assert w.shape == (4, 64)
        np.testing.assert_allclose(np.linalg.norm(w, axis=1), 0.02 * np.sqrt(64), rtol=1e-5)
        u = x_dense[l] / np.linalg.norm(x_dense[l], axis=1, keepdims=True)
        cluster = np.argmax(u @ w.T, axis=1)
        for e in range(4):
            members = u[cluster == e]
            assert len(members) > 0, f"layer {l}: expert {e} gets no calibration token"
            c = members.sum(axis=0)
            np.testing.assert_allclose(w[e], 0.02 * np.sqrt(64) * c / np.linalg.norm(c), atol=1e-5)
        routed = np.argmax(x_moe[l] @ w.T, axis=1)  # the converted model's router logits, top-1
        assert np.mean(routed == cluster) > 0.95  # chance: 1/4
