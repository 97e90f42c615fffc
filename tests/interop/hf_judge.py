"""transformers as the judge: load a checkpoint directory, report every loading complaint, run it.

Shared by the interop tests. `load` fails on missing, unexpected or mismatched keys and on any warning
transformers logs or raises while loading, so a test that loads through it already checks "loads
unchanged". `logits` and `greedy` run in float32 on the CPU; `upcycle_logits` and `upcycle_greedy`
run the same computation through the binary under test.
"""
import json
import logging
import pathlib
import warnings

import numpy as np
import torch
import transformers


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


# torch warns while transformers builds the zero-width Linear modules of a qwen2_moe config without a
# shared expert (shared_expert_intermediate_size 0), before any file is read: it says nothing about
# the checkpoint, so load() allows it for exactly those configs.
ZERO_WIDTH = "Initializing zero-element tensors is a no-op"


def expected_warnings(path):
    config = json.loads((pathlib.Path(path) / "config.json").read_text())
    zero_width = config.get("model_type") == "qwen2_moe" and config.get("shared_expert_intermediate_size") == 0
    return (ZERO_WIDTH,) if zero_width else ()


def load(path, dtype=torch.float32, allow_warnings=()):
    """AutoModelForCausalLM.from_pretrained(path) in eval mode; asserts a clean load.

    allow_warnings: substrings of warnings a caller knows to be unrelated to the checkpoint (the
    zero-width shared expert's is always allowed where the config asks for one).
    """
    allow_warnings = tuple(allow_warnings) + expected_warnings(path)
    handler = _Collect()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    transformers.logging.set_verbosity_warning()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, info = transformers.AutoModelForCausalLM.from_pretrained(
                str(path), dtype=dtype, output_loading_info=True)
    finally:
        logger.removeHandler(handler)
    complaints = {k: v for k, v in info.items() if v}
    assert not complaints, f"{path}: transformers reports {complaints}"
    said = handler.messages + [str(w.message) for w in caught]
    said = [m for m in said if not any(a in m for a in allow_warnings)]
    assert not said, f"{path}: transformers warned while loading: {said}"
    model.eval()
    return model


@torch.no_grad()
def logits(model, ids):
    """float32 logits [T, V] of one sequence."""
    out = model(torch.tensor([ids], dtype=torch.long))
    return out.logits[0].float().numpy()


@torch.no_grad()
def greedy(model, ids, new_tokens):
    """Greedy continuation (no eos stop: every one of new_tokens is produced)."""
    out = model.generate(torch.tensor([ids], dtype=torch.long), max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, num_beams=1)
    return out[0, len(ids):].tolist()


def upcycle_logits(upcycle, path, ids, out_npy, backend="cpu"):
    upcycle("logits", path, "--tokens", " ".join(map(str, ids)), "--out", out_npy, "--backend", backend)
    return np.load(out_npy)


def max_relative_error(actual, expected):
    """max |a - e| / max |e|: the error relative to the logits' scale (elementwise ratios explode
    near zero)."""
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))
