"""transformers loads the upcycled MoE unchanged and computes the logits `upcycle logits` computes.

usage: moe_logits.py UPCYCLE_BINARY CKPT DATASET --tokens N --tolerance T

The first N tokens of DATASET's val split (real held-out text) go through transformers (float32, CPU,
hf_judge.load: missing, unexpected or mismatched keys and any loading warning fail) and through
`upcycle logits`; prints max |ours − theirs| / max |theirs| over all positions and the vocabulary,
and whether greedy next-token choices agree. Exit 1 above T.
"""
import argparse
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "interop"))
import hf_judge  # noqa: E402
import transformers  # noqa: E402
import token_data  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upcycle")
    parser.add_argument("checkpoint")
    parser.add_argument("dataset")
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--tolerance", type=float, required=True)
    a = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()

    def upcycle(*args):
        return subprocess.run([a.upcycle, *map(str, args)], check=True, capture_output=True, text=True)

    ids = token_data.read_split(a.dataset, "val")[:a.tokens].tolist()
    theirs = hf_judge.logits(hf_judge.load(a.checkpoint), ids)
    with tempfile.TemporaryDirectory() as tmp:
        ours = hf_judge.upcycle_logits(upcycle, a.checkpoint, ids, pathlib.Path(tmp) / "logits.npy")
    error = hf_judge.max_relative_error(ours, theirs)
    same_argmax = int((ours.argmax(-1) == theirs.argmax(-1)).sum())
    print(f"transformers loaded {a.checkpoint} with no complaint; logits over {len(ids)} tokens: max relative "
          f"error {error:.2e} (tolerance {a.tolerance:.0e}); greedy next token equal at {same_argmax}/{len(ids)} positions")
    if not error <= a.tolerance:
        print("moe_logits: FAIL: upcycle and transformers disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
