"""Did training move the upcycled real model forward from where it started?

usage: loss_fell.py RUN_DIR --vocab-size V

Reads RUN_DIR/metrics.jsonl (docs/formats.md) and prints the first and last training losses and the
held-out (val) loss before the first step and after the last. Exit 1 unless
- the first training loss is below ½·ln(V): the run started from the real model's level (~3 nats),
  not from a random model's ln(V) (10.8 nats for SmolLM2's 49152 tokens), and
- the held-out loss after training is below the one before it (the same windows both times, so
  this is not batch-to-batch noise).
Standard library only: runs under any python3.
"""
import argparse
import json
import math
import pathlib
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--vocab-size", type=int, required=True)
    a = parser.parse_args()

    records = [json.loads(line) for line in (pathlib.Path(a.run_dir) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert train and len(evals) >= 2, f"{a.run_dir}: need train records and evals at the start and the end"
    first, last = train[0], train[-1]
    before, after = evals[0], evals[-1]
    random_level = math.log(a.vocab_size)
    print(f"train loss: step {first['step']} {first['loss']:.4f}, step {last['step']} {last['loss']:.4f} nats "
          f"(a random model starts at ln({a.vocab_size}) = {random_level:.2f})")
    print(f"held-out loss ({before['domain']}, {before['eval_tokens']} tokens): step {before['step']} "
          f"{before['loss']:.4f} (ppl {before['ppl']:.3f}) -> step {after['step']} {after['loss']:.4f} (ppl {after['ppl']:.3f})")
    ok = True
    if not first["loss"] < random_level / 2:
        print("loss_fell: FAIL: the first loss is not the real model's level", file=sys.stderr)
        ok = False
    if not after["loss"] < before["loss"]:
        print("loss_fell: FAIL: the held-out loss did not fall", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
