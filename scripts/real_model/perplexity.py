"""transformers' perplexity on exactly the windows `upcycle eval` read, next to upcycle's own.

usage: perplexity.py CKPT DATASET --seq-len L --max-tokens N --upcycle-json EVAL.json --tolerance T

Rebuilds upcycle eval's windows (the val split as one stream, non-overlapping windows of L+1 tokens:
L inputs, the same shifted by one as targets, the first N / L windows; src/model/evaluate.h), runs
them through transformers (float32, CPU, loaded by hf_judge.load: any loading complaint fails),
takes the mean cross-entropy in float64 and prints both sides and their relative difference.
Exit 1 when the perplexities differ by more than T relative (both sides compute in float32, each in
its own summation order, so they agree to ~1e-6, not bit for bit).
"""
import argparse
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "interop"))
import torch  # noqa: E402

import hf_judge  # noqa: E402
import transformers  # noqa: E402
import token_data  # noqa: E402


def mean_cross_entropy(model, windows, batch):
    total, count = 0.0, 0
    for at in range(0, len(windows), batch):
        chunk = torch.tensor(windows[at:at + batch], dtype=torch.long)
        with torch.no_grad():
            logits = model(chunk[:, :-1]).logits.double()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1),
                                                reduction="sum")
        total += float(nll)
        count += chunk[:, 1:].numel()
    return total / count, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("dataset")
    parser.add_argument("--seq-len", type=int, required=True)
    parser.add_argument("--max-tokens", type=int, required=True)
    parser.add_argument("--upcycle-json", required=True, help="what `upcycle eval ... --json` printed")
    parser.add_argument("--tolerance", type=float, required=True)
    parser.add_argument("--batch", type=int, default=4)
    a = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()

    ours = json.loads(pathlib.Path(a.upcycle_json).read_text())
    stream = token_data.read_split(a.dataset, "val")
    n = a.max_tokens // a.seq_len
    width = a.seq_len + 1
    assert len(stream) >= n * width, f"{a.dataset}: val split has {len(stream)} tokens, fewer than {n} windows of {width}"
    windows = stream[:n * width].reshape(n, width).tolist()

    loss, tokens = mean_cross_entropy(hf_judge.load(a.checkpoint), windows, a.batch)
    assert tokens == ours["tokens"], f"transformers predicted {tokens} tokens, upcycle eval {ours['tokens']}"
    theirs_ppl, ours_ppl = math.exp(loss), ours["perplexity"]
    relative = abs(ours_ppl - theirs_ppl) / theirs_ppl
    print(f"transformers: loss {loss:.6f} nats, perplexity {theirs_ppl:.4f}")
    print(f"upcycle eval: loss {ours['loss']:.6f} nats, perplexity {ours_ppl:.4f}")
    print(f"({tokens} predicted tokens in {n} windows of {a.seq_len}); relative difference of the perplexities "
          f"{relative:.2e} (tolerance {a.tolerance:.0e})")
    if not relative <= a.tolerance:
        print("perplexity: FAIL: upcycle and transformers disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
