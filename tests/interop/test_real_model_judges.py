"""The judges of `make real-demo` (scripts/real_model/*.py) pass what they should and fail what they
should, on tiny models instead of SmolLM2, so the walk-through's checks cannot rot unnoticed:

- perplexity.py agrees with `upcycle eval` on the same windows, and exits 1 when upcycle's
  perplexity is moved by 1e-3 (a tolerance that is never checked is no check);
- moe_logits.py accepts a converted MoE that transformers loads, and exits 1 at a tolerance of 0
  against a model whose logits are not bit-identical across the two implementations;
- loss_fell.py accepts a run whose held-out loss fell from the real model's level, and refuses one
  that rose or that started at ln(V).
"""
import json
import math
import pathlib
import subprocess
import sys

import numpy as np

import hf_out_support as hf
from token_data import write_dataset

SCRIPTS = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "real_model"
VOCAB = 512  # upcycle init --preset tiny


def judge(name, *args):
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True)


def tiny_dense_and_data(upcycle, tmp_path):
    dense = hf.init(upcycle, tmp_path / "dense", "llama")
    hf.sharpen(dense)
    rng = np.random.default_rng(0)
    data = write_dataset(tmp_path / "data", VOCAB, rng.integers(3, VOCAB, 4096).tolist(),
                         rng.integers(3, VOCAB, 2048).tolist())
    return dense, data


def test_perplexity_judge_agrees_and_catches_a_difference(upcycle, tmp_path):
    dense, data = tiny_dense_and_data(upcycle, tmp_path)
    proc = upcycle("eval", dense, "--data", data, "--seq-len", 64, "--max-tokens", 1024, "--json")
    ours = tmp_path / "eval.json"
    ours.write_text(proc.stdout)
    args = [dense, data, "--seq-len", 64, "--max-tokens", 1024, "--tolerance", 1e-5]
    ok = judge("perplexity.py", *args, "--upcycle-json", ours)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "relative difference of the perplexities" in ok.stdout
    moved = json.loads(proc.stdout)
    moved["perplexity"] *= 1 + 1e-3
    wrong = tmp_path / "moved.json"
    wrong.write_text(json.dumps(moved))
    bad = judge("perplexity.py", *args, "--upcycle-json", wrong)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL" in bad.stderr


def test_moe_logits_judge(upcycle, tmp_path):
    dense, data = tiny_dense_and_data(upcycle, tmp_path)
    moe = tmp_path / "moe"
    upcycle("convert", dense, moe, "--experts", 4, "--top-k", 2, "--expert-init", "noise", "--noise-std", 0.02,
            "--seed", 1)
    ok = judge("moe_logits.py", upcycle.binary, moe, data, "--tokens", 64, "--tolerance", 1e-4)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "with no complaint" in ok.stdout
    exact = judge("moe_logits.py", upcycle.binary, moe, data, "--tokens", 64, "--tolerance", 0)
    assert exact.returncode == 1, exact.stdout + exact.stderr


def write_run(path, first_loss, eval_before, eval_after):
    path.mkdir()
    records = [{"kind": "eval", "step": 0, "domain": "prose", "loss": eval_before, "ppl": math.exp(eval_before),
                "eval_tokens": 4096},
               {"kind": "train", "step": 1, "loss": first_loss},
               {"kind": "train", "step": 2, "loss": first_loss - 0.1},
               {"kind": "eval", "step": 2, "domain": "prose", "loss": eval_after, "ppl": math.exp(eval_after),
                "eval_tokens": 4096}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_loss_fell_judge(tmp_path):
    vocab = 49152
    fell = judge("loss_fell.py", write_run(tmp_path / "fell", 3.07, 2.99, 2.78), "--vocab-size", vocab)
    assert fell.returncode == 0, fell.stdout + fell.stderr
    rose = judge("loss_fell.py", write_run(tmp_path / "rose", 3.07, 2.99, 3.15), "--vocab-size", vocab)
    assert rose.returncode == 1 and "did not fall" in rose.stderr, rose.stdout + rose.stderr
    random_start = math.log(vocab)
    scratch = judge("loss_fell.py", write_run(tmp_path / "scratch", random_start, 10.7, 9.0), "--vocab-size", vocab)
    assert scratch.returncode == 1 and "real model's level" in scratch.stderr, scratch.stdout + scratch.stderr
