"""Helpers for test_mergekit_side_by_side.py: source models, the real mergekit-moe, and comparisons.

Sources are `upcycle init --preset tiny` checkpoints plus a byte-level BPE tokenizer that both HF
tokenizers and upcycle read (256 byte tokens after <pad>, <s>, </s>; BOS <s> = id 1, as init's
config says), so the prompt gate modes have text to run. mergekit-moe runs in this process through
its own click entry point (`mergekit.scripts.moe.main`, what the console script calls): importing
torch/transformers/mergekit once per file instead of once per YAML saves ~15 s per run on 2 cores.
Both outputs are read into one canonical per-expert naming (`L{l}.e{e}.{gate,up,down}`,
`L{l}.router`, ...) so mergekit's transformers-5 fused layout and upcycle's legacy per-expert names
compare tensor by tensor.
"""
import glob
import json
import math
import os
import pathlib
import re

import torch
import transformers
from safetensors.torch import load_file
from transformers.convert_slow_tokenizer import bytes_to_unicode

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]


def _byte_to_unicode():
    """GPT-2's printable stand-in for every byte (the ByteLevel pre-tokenizer's alphabet), as
    transformers defines it."""
    return bytes_to_unicode()


def write_tokenizer(model_dir):
    """tokenizer.json + tokenizer_config.json: specials 0..2, byte tokens 3..258, no merges."""
    vocab = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
    for _, ch in sorted(_byte_to_unicode().items()):
        vocab[ch] = len(vocab)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, s in enumerate(SPECIAL_TOKENS)],
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": []},
    }
    model_dir = pathlib.Path(model_dir)
    (model_dir / "tokenizer.json").write_text(json.dumps(tokenizer))
    (model_dir / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
         "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512}))


def make_source(upcycle, model_dir, arch, seed, dtype, *init_flags):
    upcycle("init", "--arch", arch, "--preset", "tiny", "--seed", seed, "--dtype", dtype, *init_flags, model_dir)
    write_tokenizer(model_dir)


def run_mergekit(yaml_path, out_dir, *flags):
    """mergekit-moe YAML OUT --device cpu --quiet FLAGS, in this process; raises on failure.

    Runs in the YAML's directory: mergekit resolves relative model paths against the working
    directory, upcycle against the YAML file's directory."""
    from mergekit.scripts.moe import main
    args = [str(yaml_path), str(out_dir), "--device", "cpu", "--quiet", *map(str, flags)]
    cwd = os.getcwd()
    os.chdir(pathlib.Path(yaml_path).parent)
    try:
        main.main(args, standalone_mode=False)
    except SystemExit as e:  # mergekit reports refused configs with sys.exit(1)
        if e.code:
            raise AssertionError(f"mergekit-moe {' '.join(args)} exited {e.code}") from e
    finally:
        os.chdir(cwd)


_PATTERNS = [
    # transformers-5 fused experts (mergekit's Mixtral writer): [E, 2F, D] gate rows then up rows.
    (re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.gate_up_proj$"), "fused_gate_up"),
    (re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.down_proj$"), "fused_down"),
    (re.compile(r"model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.w([123])\.weight$"), "mixtral"),
    (re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight$"), "qwen"),
    (re.compile(r"model\.layers\.(\d+)\.(?:block_sparse_moe|mlp)\.gate\.weight$"), "router"),
    (re.compile(r"model\.layers\.(\d+)\.mlp\.shared_expert_gate\.weight$"), "shared_gate"),
    (re.compile(r"model\.layers\.(\d+)\.mlp\.shared_expert\.(gate|up|down)_proj\.weight$"), "shared"),
]
_MIXTRAL_W = {"1": "gate", "3": "up", "2": "down"}


def canonical_tensors(model_dir):
    """Every tensor of a checkpoint directory under one layout-independent name."""
    raw = {}
    for f in sorted(glob.glob(str(pathlib.Path(model_dir) / "*.safetensors"))):
        raw.update(load_file(f))
    out = {}
    for name, t in raw.items():
        for pattern, kind in _PATTERNS:
            m = pattern.match(name)
            if not m:
                continue
            layer = m.group(1)
            if kind == "fused_gate_up":
                f = t.shape[1] // 2
                for e in range(t.shape[0]):
                    out[f"L{layer}.e{e}.gate"], out[f"L{layer}.e{e}.up"] = t[e, :f], t[e, f:]
            elif kind == "fused_down":
                for e in range(t.shape[0]):
                    out[f"L{layer}.e{e}.down"] = t[e]
            elif kind == "mixtral":
                out[f"L{layer}.e{m.group(2)}.{_MIXTRAL_W[m.group(3)]}"] = t
            elif kind == "qwen":
                out[f"L{layer}.e{m.group(2)}.{m.group(3)}"] = t
            elif kind == "router":
                out[f"L{layer}.router"] = t
            elif kind == "shared_gate":
                out[f"L{layer}.shared_gate"] = t
            else:
                out[f"L{layer}.shared.{m.group(2)}"] = t
            break
        else:
            out[name] = t
    return out


def bitwise_equal(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.contiguous().view(torch.uint8),
                                                                     b.contiguous().view(torch.uint8))


def hf_config(model_dir):
    """config.json as transformers reads it (v4 and v5 spellings normalised), minus provenance."""
    cfg = transformers.AutoConfig.from_pretrained(str(model_dir)).to_dict()
    for key in ("_name_or_path", "transformers_version", "upcycle_recipe"):
        cfg.pop(key, None)
    return cfg


def config_differences(a_dir, b_dir):
    a, b = hf_config(a_dir), hf_config(b_dir)
    return {k: (a.get(k, "<absent>"), b.get(k, "<absent>"))
            for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")}


def row_distances(a_LED, b_LED):
    """‖a[l, e] − b[l, e]‖₂ for every layer l and router row e, in float64."""
    return (a_LED.double() - b_LED.double()).norm(dim=-1)


def min_distinct_row_distance(rows_LED, across_layers):
    """The smallest distance between rows of different experts in one layer and, with across_layers,
    between one expert's rows in different layers (cheap_embed repeats a row on every layer): a
    tolerance far below it cannot let a row of the wrong expert, prompt or layer pass."""
    rows = rows_LED.double()
    best = float("inf")
    for layer in range(rows.shape[0]):
        d = torch.cdist(rows[layer], rows[layer])
        d.fill_diagonal_(float("inf"))
        best = min(best, float(d.min()))
    if across_layers:
        for e in range(rows.shape[1]):
            d = torch.cdist(rows[:, e], rows[:, e])
            d.fill_diagonal_(float("inf"))
            best = min(best, float(d.min()))
    return best


def assert_normal(x, mean, std, what):
    """x (any shape) looks like n draws of N(mean, std²): sample mean within 5 standard errors,
    sample std within 5·std/√(2n) of std, and P(|x − mean| > 2·std) within 5 binomial standard
    errors of 4.55% (this tells a normal from a uniform of the same std, which has no such tail)."""
    x = x.double().flatten()
    n = x.numel()
    assert abs(float(x.mean()) - mean) < 5 * std / math.sqrt(n), f"{what}: mean {float(x.mean()):.4g}"
    assert abs(float(x.std()) - std) < 5 * std / math.sqrt(2 * n), f"{what}: std {float(x.std()):.4g}, want {std}"
    p = math.erfc(2 / math.sqrt(2))
    tail = float(((x - mean).abs() > 2 * std).double().mean())
    assert abs(tail - p) < 5 * math.sqrt(p * (1 - p) / n), f"{what}: P(|x| > 2σ) = {tail:.4g}, want {p:.4g}"


def assert_uniform(x, half_width, what):
    """x looks like n draws of U(−h, h): all within [−h, h], mean and std (h/√3) within 5 standard
    errors (the std of the sample variance of a uniform is h²·√(4/(45n)))."""
    x = x.double().flatten()
    n = x.numel()
    assert float(x.abs().max()) <= half_width, f"{what}: |x| up to {float(x.abs().max()):.4g} > {half_width:.4g}"
    std = half_width / math.sqrt(3)
    assert abs(float(x.mean())) < 5 * std / math.sqrt(n), f"{what}: mean {float(x.mean()):.4g}"
    var_se = half_width ** 2 * math.sqrt(4 / (45 * n))
    assert abs(float(x.var()) - std ** 2) < 5 * var_se, f"{what}: variance {float(x.var()):.4g}, want {std ** 2:.4g}"


@torch.no_grad()
def reference_prompt_rows(model, tokenizer, experts, average):
    """Router rows [L, E, D] by the definition mergekit documents, computed with transformers in float32
    on each prompt alone (no padding): per prompt the hidden state entering layer l (hidden_states[l])
    at the last token, or its mean over the prompt's tokens (average); mean over the positive prompts
    minus the mean over the negative ones; L2-normalised."""
    def mean_state(prompts):
        acc = 0
        for p in prompts:
            ids = [tokenizer.bos_token_id] + tokenizer(p, add_special_tokens=False)["input_ids"]
            states = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[:-1]
            acc = acc + torch.stack([h[0].mean(0) if average else h[0, -1] for h in states])
        return acc / len(prompts)

    rows = []
    for e in experts:
        v = mean_state(e["positive_prompts"])
        if e.get("negative_prompts"):
            v = v - mean_state(e["negative_prompts"])
        rows.append(v / v.norm(dim=-1, keepdim=True).clamp(min=1e-8))
    return torch.stack(rows, dim=1)
