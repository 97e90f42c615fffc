"""Helpers of the "transformers reads what upcycle writes" tests (test_hf_reads_*.py).

`judge` is the check every case ends with: transformers loads the directory cleanly (hf_judge.load),
its float32 logits on PROMPT equal `upcycle logits` within a relative tolerance, and 16 greedy tokens
of `model.generate` equal `upcycle generate`. It returns upcycle's logits so a test can also show that
the semantic it exercises changes them (`assert_differs`): a check that cannot fail proves nothing.

`sharpen` makes a random checkpoint discriminative. At HF's initializer_range 0.02 a tiny model's
attention is nearly uniform and its logits nearly flat, so a wrong RoPE, window or routing may move
them by less than the tolerance. It rewrites the weights in place (same names, shapes and dtype):
matrices ×8, norm weights drawn from U(0.5, 1.5), biases from N(0, 0.5²), each seeded by its name.
"""
import json
import pathlib
import zlib

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import hf_judge

PROMPT_LEN = 72    # ≥ 64 tokens of logits
NEW_TOKENS = 16
TOLERANCE = 1e-4   # max relative error of float32 logits (hf_judge.max_relative_error)
DIFFERS = 1e-2     # a semantic "changes the logits" when they move by at least this, 100× TOLERANCE


def prompt(vocab_size, seed=0, length=PROMPT_LEN):
    """Token ids 3.. vocab-1 (ids 0-2 are the bos/eos/pad of some families)."""
    return np.random.default_rng(seed).integers(3, vocab_size, length).tolist()


def read_config(path):
    return json.loads((pathlib.Path(path) / "config.json").read_text())


def edit_config(path, drop=(), **changes):
    """Sets keys of path/config.json (and removes `drop`), keeping the file's other keys."""
    file = pathlib.Path(path) / "config.json"
    config = json.loads(file.read_text())
    for key in drop:
        config.pop(key, None)
    config.update(changes)
    file.write_text(json.dumps(config, indent=2) + "\n")
    return config


def init(upcycle, out, arch, *flags, dtype="f32", seed=1):
    """`upcycle init --preset tiny` (vocab 512, D 64, 2 layers, 4 heads / 2 kv heads, F 192, 4 experts)."""
    upcycle("init", "--arch", arch, "--preset", "tiny", "--dtype", dtype, "--seed", seed, *flags, out)
    return pathlib.Path(out)


def weight_files(path):
    return sorted(pathlib.Path(path).glob("*.safetensors"))


def tensor_names(path):
    names = set()
    for file in weight_files(path):
        with safe_open(str(file), "pt") as f:
            names.update(f.keys())
    return names


def _sharpened(name, t, seed):
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if name.endswith("norm.weight"):
        return torch.from_numpy(rng.uniform(0.5, 1.5, t.shape).astype(np.float32))
    if name.endswith(".bias"):
        return torch.from_numpy(rng.normal(0.0, 0.5, t.shape).astype(np.float32))
    return t.float() * 8.0


def sharpen(path, seed=0, only=None):
    """Rewrites the checkpoint's weights in place (see the module doc). `only(name)` picks tensors."""
    for file in weight_files(path):
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        for name, t in tensors.items():
            if only is None or only(name):
                tensors[name] = _sharpened(name, t, seed).to(t.dtype)
        save_file(tensors, str(file), metadata=metadata)


def set_tensor(path, name, fn):
    """Replaces one tensor by fn(tensor as float32), keeping its dtype."""
    for file in weight_files(path):
        with safe_open(str(file), "pt") as f:
            if name not in f.keys():
                continue
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        tensors[name] = fn(tensors[name].float()).to(tensors[name].dtype)
        save_file(tensors, str(file), metadata=metadata)
        return
    raise KeyError(f"{name} not in {path}")


def eos_ids(path):
    eos = read_config(path).get("eos_token_id")
    return set() if eos is None else set(eos if isinstance(eos, list) else [eos])


def hf_greedy(model, ids):
    """NEW_TOKENS greedy tokens of model.generate, every one the plain argmax: with the eos ids
    cleared, generate neither stops nor suppresses eos (hf_judge.greedy's min_new_tokens would)."""
    model.generation_config.eos_token_id = None
    return hf_judge.greedy(model, ids, NEW_TOKENS)


def upcycle_greedy(upcycle, path, ids, backend="cpu"):
    out = upcycle("generate", path, "--tokens", " ".join(map(str, ids)), "--max-new-tokens", NEW_TOKENS,
                  "--backend", backend).stdout
    return [int(t) for t in out.split()]


def judge(upcycle, path, tmp_path, ids=None, tolerance=TOLERANCE, generate=True):
    """Loads `path` with transformers, checks logits and greedy tokens against upcycle; returns
    upcycle's logits [T, V]."""
    model = hf_judge.load(path)
    ids = ids if ids is not None else prompt(model.config.vocab_size)
    expected = hf_judge.logits(model, ids)
    actual = hf_judge.upcycle_logits(upcycle, path, ids, tmp_path / f"{pathlib.Path(path).name}-logits.npy")
    assert actual.shape == expected.shape, f"{path}: logits shape {actual.shape}, transformers {expected.shape}"
    error = hf_judge.max_relative_error(actual, expected)
    print(f"{path}: logits relative error {error:.2e}")  # shown by pytest -s / -rP (docs/formats.md)
    assert error <= tolerance, f"{path}: logits differ from transformers by {error:.3g} (> {tolerance:g})"
    if generate:
        theirs = hf_greedy(model, ids)
        stops = eos_ids(path) & set(theirs)
        # upcycle stops at an eos: such a prompt would compare fewer than NEW_TOKENS tokens.
        assert not stops, f"{path}: greedy continuation hits eos {stops}; pick another prompt"
        ours = upcycle_greedy(upcycle, path, ids)
        assert ours == theirs, f"{path}: greedy tokens differ\n upcycle:      {ours}\n transformers: {theirs}"
    return actual


def assert_differs(a, b, what):
    """The semantic under test moves upcycle's logits by ≥ DIFFERS (relative), so the match with
    transformers is evidence that both sides apply it."""
    change = hf_judge.max_relative_error(a, b)
    assert change >= DIFFERS, f"{what} changes the logits by only {change:.3g}: the test cannot see it"
