"""The same mergekit-moe YAML through the real mergekit-moe (0.1.5) and `upcycle convert --recipe`.

Per YAML (gate modes hidden, hidden_avg, cheap_embed, random, uniform_random; Mixtral and Qwen2-MoE
outputs; shared experts; llama, mistral and qwen2 sources made by `upcycle init`) both outputs must have:
- equivalent configs: transformers' reading of both config.json files is equal except for the keys in
  MAY_DIFFER (harmless, each with its reason) and the case's own deliberate differences;
- bitwise equal tensors (experts, shared expert, embeddings, attention, norms, lm_head, zero biases),
  except where a difference is deliberate and then checked to be exactly that: a residual_scale'd
  down_proj written wider than its source (mergekit rounds the product to the source dtype first),
  and noise_scale experts (both add N(0, σ²) noise, from different generators: checked as a
  distribution);
- router rows equal within a tolerance derived from how each side computes them (row_tolerance), or
  for random gate modes (different generators by design) rows with the documented distribution;
- clean loads in transformers (hf_judge.load) and bitwise equal logits once the deliberately different
  tensors of mergekit's output are copied into upcycle's model: the configs then act the same;
- upcycle's own engine reading mergekit's output (transformers-5 fused layout) gives transformers' logits.
"""
import math
import re

import numpy as np
import pytest
import torch
import transformers
import yaml

import hf_judge
import mergekit_support as mk

# Keys where transformers' readings of the two configs may differ in every case, and why.
MAY_DIFFER = {
    # mergekit builds MixtralConfig/Qwen2MoeConfig from the dense config's dict, which keeps llama-only
    # keys; neither MoE class reads them (upcycle writes the target family's keys).
    "attention_bias": "llama key carried over by mergekit; unused by mixtral/qwen2_moe",
    "mlp_bias": "llama key carried over by mergekit; unused by mixtral/qwen2_moe",
    # Qwen2MoeConfig's default is 28, upcycle writes 0; read only when use_sliding_window is true, and
    # both write false.
    "max_window_layers": "inert with use_sliding_window false",
}

BF16_U = 2.0 ** -9  # bf16 unit roundoff (8 significand bits)
PROBE_IDS = [1, 43, 75, 84, 84, 87, 47, 35, 90, 87, 90, 84, 76, 47, 3, 200, 17, 260, 99, 5]

SOURCES = {  # directory: (arch, seed, dtype, more init flags) for `upcycle init --preset tiny`
    "base": ("llama", 1, "bf16"), "a": ("llama", 2, "bf16"), "b": ("llama", 3, "bf16"),
    "c": ("llama", 4, "bf16"), "wide_heads": ("llama", 5, "bf16", "--head-dim", "32"),
    "mbase": ("mistral", 11, "f32"), "ma": ("mistral", 12, "f32"), "mb": ("mistral", 13, "f32"),
    "qbase": ("qwen2", 21, "bf16"), "qa": ("qwen2", 22, "bf16"), "qb": ("qwen2", 23, "bf16"),
}


class Case:
    def __init__(self, yaml_text, mergekit_flags=(), config_differs=()):
        self.yaml_text = yaml_text
        self.spec = yaml.safe_load(yaml_text)
        self.mergekit_flags = list(mergekit_flags)
        self.config_differs = set(config_differs)  # deliberate: must differ (see docs/formats.md)


CASES = {
    # A clown car: three fine-tunes routed by the base's last-token hidden states; negative prompts;
    # noise and residual_scale on one expert (noise first, then the scale, in both tools).
    "hidden_mixtral": Case("""
base_model: base
gate_mode: hidden
dtype: bfloat16
experts_per_token: 2
experts:
  - source_model: a
    positive_prompts: ["Hello, how are you today?", "Tell me a story about a dragon."]
    negative_prompts: ["Solve for x: 3x + 5 = 11"]
  - source_model: b
    positive_prompts: ["def reverse(xs): return xs[::-1]"]
  - source_model: c
    positive_prompts: ["Solve for x: 3x + 5 = 11", "What is the integral of x^2?"]
    noise_scale: 0.01
    residual_scale: 0.5
""", ["--random-seed", "3"]),
    # Qwen2-MoE from llama sources (zero q/k/v biases), a shared expert with a prompt gate, bf16 sources
    # written as float32 (so the residual_scale'd down_proj shows the upcast rounding difference).
    "cheap_embed_qwen_shared": Case("""
base_model: base
architecture: qwen
gate_mode: cheap_embed
dtype: float32
experts_per_token: 1
experts:
  - source_model: a
    positive_prompts: ["def main():", "#include <stdio.h>"]
  - source_model: b
    positive_prompts: ["The derivative of sin(x) is"]
    negative_prompts: ["def main():"]
    residual_scale: 0.7
shared_experts:
  - source_model: base
    positive_prompts: ["The", "A"]
    residual_scale: 0.1
"""),
    # float32 mistral sources written as bfloat16, random router, a source used twice. mergekit's
    # Mixtral writer drops the source's sliding_window; upcycle keeps the dense model's attention span.
    "random_mixtral_mistral": Case("""
base_model: mbase
gate_mode: random
dtype: bfloat16
experts:
  - source_model: mbase
  - source_model: ma
  - source_model: mb
    residual_scale: 0.3
  - source_model: ma
""", ["--random-seed", "7"], config_differs=["sliding_window"]),
    # nn.Linear's default init for the router; mergekit wants prompts here although it never reads them.
    "uniform_random_mixtral": Case("""
base_model: base
gate_mode: uniform_random
experts_per_token: 1
experts:
  - source_model: a
    positive_prompts: ["x"]
  - source_model: b
    positive_prompts: ["y"]
  - source_model: c
    positive_prompts: ["z"]
""", ["--random-seed", "9"]),
    # Qwen2 sources (real q/k/v biases), random router: the shared expert has no prompts, so its gate
    # row is drawn too (mergekit's rule); output dtype = the base's (no `dtype`).
    "random_qwen2_shared": Case("""
base_model: qbase
architecture: qwen
gate_mode: random
experts:
  - source_model: qa
  - source_model: qb
  - source_model: qbase
  - source_model: qa
    residual_scale: 0.6
shared_experts:
  - source_model: qbase
    residual_scale: 0.25
""", ["--random-seed", "8"]),
    # Mean-over-tokens hidden states on Qwen2 sources. One prompt per expert: mergekit pads a batch of
    # several prompts and then averages over the pad positions too (docs/formats.md, Interop).
    "hidden_avg_qwen2_shared": Case("""
base_model: qbase
architecture: qwen
gate_mode: hidden_avg
dtype: bfloat16
experts_per_token: 2
experts:
  - source_model: qa
    positive_prompts: ["Once upon a time"]
  - source_model: qb
    positive_prompts: ["import numpy as np"]
    negative_prompts: ["Once upon a time"]
  - source_model: qbase
    positive_prompts: ["2 + 2 = 4"]
shared_experts:
  - source_model: qbase
    positive_prompts: ["the"]
"""),
}


@pytest.fixture(scope="module")
def workdir(upcycle, tmp_path_factory):
    root = tmp_path_factory.mktemp("mergekit")
    for name, (arch, seed, dtype, *flags) in SOURCES.items():
        mk.make_source(upcycle, root / name, arch, seed, dtype, *flags)
    return root


_RUNS = {}


@pytest.fixture
def run(workdir, upcycle, request):
    """Both tools on one case's YAML, once per case: (Case, upcycle dir, mergekit dir)."""
    name = request.param
    if name not in _RUNS:
        case = CASES[name]
        yaml_path = workdir / f"{name}.yaml"
        yaml_path.write_text(case.yaml_text)
        ours, theirs = workdir / f"{name}.upcycle", workdir / f"{name}.mergekit"
        try:
            upcycle("convert", "--recipe", yaml_path, ours)
            mk.run_mergekit(yaml_path, theirs, *case.mergekit_flags)
            _RUNS[name] = (case, ours, theirs)
        except Exception as e:  # every test of the case reports the same failure
            _RUNS[name] = e
    if isinstance(_RUNS[name], Exception):
        raise _RUNS[name]
    return _RUNS[name]


def each_case():
    return pytest.mark.parametrize("run", list(CASES), indirect=True)


def source_dtype(model):
    return {"bf16": torch.bfloat16, "f32": torch.float32}[SOURCES[model][2]]


def out_dtype(spec):
    names = {"bfloat16": torch.bfloat16, "float32": torch.float32}
    return names[spec["dtype"]] if "dtype" in spec else source_dtype(spec["base_model"])


def expert_entries(spec):
    """(canonical expert prefix, YAML entry): e0, e1, ... and `shared`."""
    entries = [(f"e{e}", x) for e, x in enumerate(spec["experts"])]
    return entries + [("shared", x) for x in spec.get("shared_experts") or []]


def deliberate(spec, name):
    """Why the canonical tensor `name` may differ between the tools, or None when it must be equal."""
    if name.endswith(".router") or name.endswith(".shared_gate"):
        return "router"
    parts = name.split(".")
    if len(parts) != 3:
        return None
    for prefix, entry in expert_entries(spec):
        if parts[1] != prefix:
            continue
        if entry.get("noise_scale"):
            return "noise"
        src = source_dtype(entry["source_model"])
        if (parts[2] == "down" and "residual_scale" in entry
                and torch.finfo(src).bits < torch.finfo(out_dtype(spec)).bits):
            return "upcast"
    return None


def row_tolerance(gate_mode, dtype):
    """Bound on ‖row_upcycle − row_mergekit‖₂ for unit-norm router rows.

    hidden*: mergekit runs the base model in bfloat16 (mergekit/moe/router.py loads it with
    torch_dtype=torch.bfloat16), upcycle in float32. In the tiny two-layer model the hidden state
    entering layer 1 has been rounded to bf16 ~5 times in mergekit (embedding, attention and MLP
    outputs, residual adds); the prompt mean, the negative-prompt subtraction, the norm and the
    division round 4 more times; each side rounds the stored row once: ~11 roundings of relative size
    ≤ u = 2⁻⁹, ≤ 11u ≈ 0.021 if all errors added up. 0.02 is used (measured: 0.005 and 0.007).
    cheap_embed: mergekit sums embedding rows in float32, upcycle in double; for ≤ 64 tokens they
    agree to ~64·2⁻²⁴ relative, < 1e-5 stored as float32 (measured 1e-7). Stored as bfloat16 an
    element may round to either neighbour: ≤ one ulp, 2u relative.
    """
    if gate_mode.startswith("hidden"):
        return 0.02
    return 2 * BF16_U if dtype == torch.bfloat16 else 1e-5


def router_rows(tensors, num_layers):
    """[L, E(+1), D]: each layer's router rows, then the shared expert's gate row when present."""
    layers = []
    for layer in range(num_layers):
        rows = tensors[f"L{layer}.router"]
        if f"L{layer}.shared_gate" in tensors:
            rows = torch.cat([rows, tensors[f"L{layer}.shared_gate"]])
        layers.append(rows)
    return torch.stack(layers)


@each_case()
def test_configs_equivalent(run):
    case, ours, theirs = run
    diff = mk.config_differences(ours, theirs)
    unexplained = {k: v for k, v in diff.items() if k not in MAY_DIFFER and k not in case.config_differs}
    assert not unexplained, f"config keys differ (upcycle, mergekit): {unexplained}"
    assert case.config_differs <= set(diff), f"expected {case.config_differs} to differ: {diff}"
    cfg = mk.hf_config(ours)
    family = "qwen2_moe" if case.spec.get("shared_experts") else "mixtral"
    assert cfg["model_type"] == family
    assert cfg["num_experts" if family == "qwen2_moe" else "num_local_experts"] == len(case.spec["experts"])
    assert cfg["num_experts_per_tok"] == case.spec.get("experts_per_token", 2)


@each_case()
def test_tensors(run, workdir):
    case, ours, theirs = run
    spec = case.spec
    a, b = mk.canonical_tensors(ours), mk.canonical_tensors(theirs)
    assert sorted(a) == sorted(b), f"tensor sets differ: {sorted(set(a) ^ set(b))}"
    dtype = out_dtype(spec)
    reasons = set()
    for name in sorted(a):
        assert a[name].dtype == dtype and b[name].dtype == dtype and a[name].shape == b[name].shape, name
        why = deliberate(spec, name)
        reasons.add(why)
        if why is None:
            assert mk.bitwise_equal(a[name], b[name]), f"{name}: upcycle and mergekit differ"
        elif why == "upcast":
            # mergekit: (tensor * s) in the source dtype, then .to(out_dtype); upcycle: fp32 * s, rounded
            # once to out_dtype. So mergekit's value is upcycle's rounded to the source dtype.
            src = source_dtype(dict(expert_entries(spec))[name.split(".")[1]]["source_model"])
            assert mk.bitwise_equal(a[name].to(src).to(dtype), b[name]), name
            assert not mk.bitwise_equal(a[name], b[name]), f"{name}: expected the upcast difference"
    for prefix, entry in expert_entries(spec):
        if entry.get("noise_scale"):
            check_noise(workdir, a, b, prefix, entry)
    if spec.get("dtype") == "float32":
        assert "upcast" in reasons  # the case meant to exercise the upcast rule did


def check_noise(workdir, a, b, prefix, entry):
    """noise_scale σ: (expert − source) ~ N(0, σ²) on gate and up; down = (source + noise)·residual_scale
    (mergekit's noise_and_scale order), so down/s − source ~ N(0, σ²) too, for both tools."""
    src = mk.canonical_tensors(workdir / entry["source_model"])
    sigma, scale = entry["noise_scale"], entry.get("residual_scale", 1.0)
    for tool, tensors in (("upcycle", a), ("mergekit", b)):
        diffs = []
        for name, t in tensors.items():
            parts = name.split(".")
            if len(parts) == 3 and parts[1] == prefix:
                dense = src[f"model.layers.{parts[0][1:]}.mlp.{parts[2]}_proj.weight"].double()
                diffs.append((t.double() / (scale if parts[2] == "down" else 1.0) - dense).flatten())
        mk.assert_normal(torch.cat(diffs), 0.0, sigma, f"{tool} {prefix} noise")


@each_case()
def test_router_rows(run):
    case, ours, theirs = run
    mode = case.spec["gate_mode"]
    layers = mk.hf_config(ours)["num_hidden_layers"]
    rows_a = router_rows(mk.canonical_tensors(ours), layers)
    rows_b = router_rows(mk.canonical_tensors(theirs), layers)
    assert rows_a.shape == rows_b.shape
    if mode in ("random", "uniform_random"):
        # mergekit: torch.randn / torch.rand from torch's global generator; upcycle: its counter-based
        # RNG. Different numbers by design, the same distribution: N(0, 1), or U(−1/√D, 1/√D).
        for tool, rows in (("upcycle", rows_a), ("mergekit", rows_b)):
            if mode == "random":
                mk.assert_normal(rows, 0.0, 1.0, f"{tool} router")
            else:
                mk.assert_uniform(rows, 1 / math.sqrt(rows.shape[-1]) * (1 + BF16_U), f"{tool} router")
        assert not torch.equal(rows_a, rows_b)
        return
    dist = mk.row_distances(rows_a, rows_b)
    tol = row_tolerance(mode, out_dtype(case.spec))
    assert float(dist.max()) <= tol, f"router rows differ by up to {float(dist.max()):.3g} (tolerance {tol:.3g})"
    norms = rows_a.double().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=4 * BF16_U), "rows are not unit vectors"
    # The tolerance is far below the distance between different rows: a wrong layer, token or prompt fails.
    assert mk.min_distinct_row_distance(rows_b, across_layers=mode.startswith("hidden")) > 5 * tol


# transformers parameter → canonical tensor names it holds (transformers 5 fuses the experts).
_PARAM_PATTERNS = [
    (re.compile(r"model\.layers\.(\d+)\.mlp\.gate\.weight$"), lambda l, e: [f"L{l}.router"]),
    (re.compile(r"model\.layers\.(\d+)\.mlp\.shared_expert_gate\.weight$"), lambda l, e: [f"L{l}.shared_gate"]),
    (re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.gate_up_proj$"),
     lambda l, e: [f"L{l}.e{i}.{m}" for i in range(e) for m in ("gate", "up")]),
    (re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.down_proj$"), lambda l, e: [f"L{l}.e{i}.down" for i in range(e)]),
    (re.compile(r"model\.layers\.(\d+)\.mlp\.shared_expert\.(gate|up|down)_proj\.weight$"), None),
]


def canonical_of_param(name, num_experts):
    for pattern, names in _PARAM_PATTERNS:
        m = pattern.match(name)
        if m:
            return [f"L{m.group(1)}.shared.{m.group(2)}"] if names is None else names(m.group(1), num_experts)
    return []


@each_case()
def test_transformers_logits(run, workdir, upcycle):
    case, ours, theirs = run
    model_a, model_b = hf_judge.load(ours), hf_judge.load(theirs)
    params_b = dict(model_b.named_parameters())
    with torch.no_grad():
        for name, p in model_a.named_parameters():
            if torch.equal(p, params_b[name]):
                continue
            # Only parameters holding a deliberately different tensor may differ once loaded.
            held = canonical_of_param(name, len(case.spec["experts"]))
            assert any(deliberate(case.spec, n) for n in held), f"{name} differs after loading"
            p.copy_(params_b[name])
    la, lb = hf_judge.logits(model_a, PROBE_IDS), hf_judge.logits(model_b, PROBE_IDS)
    assert np.array_equal(la, lb), f"equal weights, logits differ by {hf_judge.max_relative_error(la, lb):.3g}"
    # upcycle's engine reads mergekit's transformers-5 fused layout and v5 config spellings.
    ours_on_theirs = hf_judge.upcycle_logits(upcycle, theirs, PROBE_IDS, workdir / "logits.npy")
    err = hf_judge.max_relative_error(ours_on_theirs, lb)
    # fp32 on both sides, different summation orders: measured ~3.5e-7; a misread tensor gives O(1).
    assert err < 1e-5, f"upcycle's logits on mergekit's output differ from transformers' by {err:.3g}"


@each_case()
def test_side_files(run, workdir):
    """upcycle copies the base's tokenizer and generation files byte for byte; mergekit re-saves the
    tokenizer (with pad_token set to BOS, its own padding setting). Both encode the prompts alike."""
    case, ours, theirs = run
    base = workdir / case.spec["base_model"]
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (ours / f).read_bytes() == (base / f).read_bytes(), f
    tok_a = transformers.AutoTokenizer.from_pretrained(str(ours))
    tok_b = transformers.AutoTokenizer.from_pretrained(str(theirs))
    prompts = [p for e in case.spec["experts"] for p in e.get("positive_prompts", [])] or ["Hello, world"]
    for p in prompts:
        assert tok_a(p)["input_ids"] == tok_b(p)["input_ids"]


# Where mergekit 0.1.5 is wrong, upcycle keeps its behaviour; these pin both sides, so a mergekit that
# fixes a bug fails here and docs/formats.md (Interop, mergekit-moe) gets updated.

def convert_both(upcycle, workdir, name, text):
    yaml_path = workdir / f"{name}.yaml"
    yaml_path.write_text(text)
    upcycle("convert", "--recipe", yaml_path, workdir / f"{name}.upcycle")
    return yaml_path, workdir / f"{name}.upcycle", workdir / f"{name}.mergekit"


def test_hidden_avg_ignores_padding(workdir, upcycle):
    """mergekit batches an expert's prompts with left padding and its hidden_avg divides the sum over
    all positions, pads included, by the padded length (moe/router.py get_hidden_states); upcycle
    averages each prompt over its own tokens. Judge: the definition, computed by transformers in fp32."""
    text = """
base_model: base
gate_mode: hidden_avg
dtype: float32
experts:
  - source_model: a
    positive_prompts: ["Hi", "Tell me a long story about a dragon and a knight."]
  - source_model: b
    positive_prompts: ["def reverse(xs): return xs[::-1]", "x"]
    negative_prompts: ["Hi"]
"""
    yaml_path, ours, theirs = convert_both(upcycle, workdir, "hidden_avg_padding", text)
    mk.run_mergekit(yaml_path, theirs)
    model = hf_judge.load(workdir / "base")
    tok = transformers.AutoTokenizer.from_pretrained(str(workdir / "base"))
    want = mk.reference_prompt_rows(model, tok, yaml.safe_load(text)["experts"], average=True)
    layers = want.shape[0]
    got_ours = router_rows(mk.canonical_tensors(ours), layers)
    got_theirs = router_rows(mk.canonical_tensors(theirs), layers)
    # Both fp32 (upcycle's engine vs torch): measured ~2e-7.
    assert float(mk.row_distances(got_ours, want).max()) < 1e-5
    # mergekit's pad positions (BOS states) pull its rows far off: measured 0.6-0.8.
    assert float(mk.row_distances(got_theirs, want).min()) > 10 * row_tolerance("hidden_avg", torch.float32)


def test_qwen_zero_biases_follow_head_dim(workdir, upcycle):
    """Llama sources → Qwen2-MoE get zero q/k/v biases. mergekit sizes them heads × hidden/heads
    (moe/qwen.py), wrong when head_dim ≠ hidden/heads, and transformers refuses its checkpoint;
    upcycle sizes them heads × head_dim."""
    text = """
base_model: wide_heads
architecture: qwen
gate_mode: random
experts:
  - source_model: wide_heads
  - source_model: wide_heads
shared_experts:
  - source_model: wide_heads
"""
    yaml_path, ours, theirs = convert_both(upcycle, workdir, "wide_heads_qwen", text)
    mk.run_mergekit(yaml_path, theirs, "--i-understand-this-is-not-useful-without-training")
    cfg = mk.hf_config(ours)
    heads, kv, head_dim = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    assert head_dim * heads != cfg["hidden_size"]
    a, b = mk.canonical_tensors(ours), mk.canonical_tensors(theirs)
    for proj, n in (("q", heads), ("k", kv), ("v", kv)):
        name = f"model.layers.0.self_attn.{proj}_proj.bias"
        assert a[name].shape == (n * head_dim,) and not a[name].any()
        assert b[name].shape == (n * cfg["hidden_size"] // heads,)
    hf_judge.load(ours)
    with pytest.raises(Exception, match="mismatch"):
        hf_judge.load(theirs)


def test_shared_expert_from_its_own_source(workdir, upcycle):
    """A shared expert whose source_model is neither the base nor an expert: mergekit opens loaders for
    the base and the experts only and fails (AttributeError on None in moe/qwen.py); upcycle reads it."""
    text = """
base_model: base
architecture: qwen
gate_mode: random
experts:
  - source_model: a
  - source_model: b
shared_experts:
  - source_model: c
"""
    yaml_path, ours, theirs = convert_both(upcycle, workdir, "shared_own_source", text)
    with pytest.raises(AttributeError):
        mk.run_mergekit(yaml_path, theirs)
    got, src = mk.canonical_tensors(ours), mk.canonical_tensors(workdir / "c")
    for m in ("gate", "up", "down"):
        assert mk.bitwise_equal(got[f"L1.shared.{m}"], src[f"model.layers.1.mlp.{m}_proj.weight"])
    hf_judge.load(ours)
