"""upcycle's learning-rate schedules against transformers.optimization (issue 14, part 3).

Each case is a real `upcycle train` run of a tiny model; the learning rate of every step is read
from its metrics.jsonl (`lr` of the record with 1-based `step` k is the lr of update k − 1) and
compared with what transformers' scheduler (a LambdaLR on a torch optimizer, stepped as the
Trainer steps it) gives at the matching index. The two definitions coincide under one mapping,
which is the documented difference (docs/training.md, "Checked against PyTorch and transformers"):

  * warmup: upcycle's update s < W uses transformers' lr at index s + 1 — upcycle never takes
    transformers' zero-lr first step, so its warmup reaches the peak at update W − 1;
  * after warmup: the same index s, with transformers' num_training_steps = upcycle's steps − 1
    (cosine; WSD's decay one step shorter), so upcycle's last update uses exactly --min-lr, where
    transformers' last update stops one step short of its end value;
  * WSD: transformers warms up from min_lr_ratio × peak, which is upcycle's --warmup-start-lr =
    --min-lr; inverse-sqrt with a timescale τ ≠ W: transformers' shift τ − W is upcycle's
    --schedule-offset.
Every step of every case must agree to 1e-12 relative (both compute in double).
"""
import json
import math
import warnings

import numpy as np
import pytest
import torch
from transformers import optimization as hf

PEAK = 1e-3


def hf_lrs(make, count):
    """transformers' lr at scheduler indices 0..count-1, as a Trainer sees it before each update."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=PEAK)
    sched = make(opt)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(count):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return lrs


# name: (steps, upcycle flags, warmup W, transformers scheduler for the mapping above)
CASES = {
    "constant-warmup": (12, dict(schedule="constant", warmup=4), 4,
                        lambda o: hf.get_constant_schedule_with_warmup(o, num_warmup_steps=4)),
    "cosine-warmup-to-zero": (15, dict(schedule="cosine", warmup=3, min_lr=0), 3,
                              lambda o: hf.get_cosine_schedule_with_warmup(o, num_warmup_steps=3,
                                                                           num_training_steps=14)),
    "cosine-min-lr-no-warmup": (11, dict(schedule="cosine", warmup=0, min_lr=1e-4), 0,
                                lambda o: hf.get_cosine_with_min_lr_schedule_with_warmup(
                                    o, num_warmup_steps=0, num_training_steps=10, min_lr=1e-4)),
    "cosine-min-lr-warmup": (20, dict(schedule="cosine", warmup=5, min_lr=2e-4), 5,
                             lambda o: hf.get_cosine_with_min_lr_schedule_with_warmup(
                                 o, num_warmup_steps=5, num_training_steps=19, min_lr=2e-4)),
    # WSD, 20 steps, decay fraction 0.3: decay starts at s0 = 20 − 6 = 14 and reaches min at 19.
    "wsd-to-zero": (20, dict(schedule="wsd", warmup=3, min_lr=0, decay_fraction=0.3), 3,
                    lambda o: hf.get_wsd_schedule(o, num_warmup_steps=3, num_stable_steps=14 - 3,
                                                  num_decay_steps=19 - 14, decay_type="linear")),
    "wsd-min-lr": (20, dict(schedule="wsd", warmup=3, min_lr=1e-4, warmup_start_lr=1e-4, decay_fraction=0.3), 3,
                   lambda o: hf.get_wsd_schedule(o, num_warmup_steps=3, num_stable_steps=14 - 3,
                                                 num_decay_steps=19 - 14, decay_type="linear", min_lr_ratio=0.1)),
    "inverse-sqrt": (16, dict(schedule="inverse-sqrt", warmup=4, min_lr=0), 4,
                     lambda o: hf.get_inverse_sqrt_schedule(o, num_warmup_steps=4)),
    "inverse-sqrt-timescale": (16, dict(schedule="inverse-sqrt", warmup=2, min_lr=0, timescale=6,
                                        schedule_offset=6 - 2), 2,
                               lambda o: hf.get_inverse_sqrt_schedule(o, num_warmup_steps=2, timescale=6)),
}


def write_dataset(directory, vocab, count):
    """A dataset directory in upcycle's token format (docs/formats.md): 32-byte header + uint16 ids."""
    directory.mkdir()
    ids = (np.arange(count) * 7 % vocab).astype("<u2")
    header = b"UPCYTOK\0" + np.array([1, 2], "<u4").tobytes() + np.array([count, vocab], "<u8").tobytes()
    (directory / "train-00000.bin").write_bytes(header + ids.tobytes())
    (directory / "dataset.json").write_text(json.dumps({
        "format": "upcycle-tokens", "version": 1, "domain": "cycle", "vocab_size": vocab,
        "splits": {"train": [{"file": "train-00000.bin", "tokens": count}]}}))


@pytest.fixture(scope="module")
def tiny(upcycle, tmp_path_factory):
    root = tmp_path_factory.mktemp("sched")
    upcycle("init", root / "model", "--arch", "llama", "--preset", "tiny", "--seed", "1")
    vocab = json.loads((root / "model" / "config.json").read_text())["vocab_size"]
    write_dataset(root / "data", vocab, 4096)
    return root


@pytest.mark.parametrize("case", CASES)
def test_every_step_lr_equals_transformers(upcycle, tiny, tmp_path, case):
    steps, flags, warmup, make = CASES[case]
    args = ["train", "--model", tiny / "model", "--data", tiny / "data", "--out", tmp_path / "run",
            "--steps", steps, "--micro-batch", 1, "--seq-len", 8, "--lr", PEAK, "--save-every", 1000,
            "--threads", 1]
    for key, value in flags.items():
        args += ["--" + key.replace("_", "-"), value]
    upcycle(*args)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ours = {r["step"] - 1: r["lr"] for r in records if r["kind"] == "train"}
    assert sorted(ours) == list(range(steps))
    theirs = hf_lrs(make, steps + 1)
    for s in range(steps):
        expected = theirs[s + 1 if s < warmup else s]
        assert math.isclose(ours[s], expected, rel_tol=1e-12, abs_tol=1e-18), \
            f"{case}: update {s}: upcycle lr {ours[s]!r}, transformers {expected!r}"
    # The end points the mapping implies: the last update at --min-lr (cosine, WSD), no zero-lr update.
    if flags["schedule"] in ("cosine", "wsd"):
        assert math.isclose(ours[steps - 1], flags["min_lr"], abs_tol=1e-18)
    if warmup and not flags.get("warmup_start_lr"):  # transformers' first update has lr 0; upcycle's first is peak / W
        assert theirs[0] == 0 and math.isclose(ours[0], PEAK / warmup, rel_tol=1e-12)
