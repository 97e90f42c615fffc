"""Reads what `upcycle data tokenize` writes (docs/formats.md, "Token shards and datasets") without
upcycle: a split of a dataset directory as one stream of ids, for the judges that feed the very same
tokens to transformers or llama.cpp.
"""
import json
import pathlib

import numpy as np

SHARD_HEADER_BYTES = 32


def read_shard(path):
    """The ids of one token shard (header: magic, version, width at bytes 12-15, count, vocab size)."""
    raw = pathlib.Path(path).read_bytes()
    assert raw[:8] == b"UPCYTOK\0", f"{path}: not an upcycle token shard"
    width = int.from_bytes(raw[12:16], "little")
    return np.frombuffer(raw[SHARD_HEADER_BYTES:], dtype=np.uint16 if width == 2 else np.uint32).astype(np.int64)


def read_split(dataset_dir, split):
    """The split's shards concatenated in stream order, as `upcycle eval`/`train` read them."""
    dataset_dir = pathlib.Path(dataset_dir)
    meta = json.loads((dataset_dir / "dataset.json").read_text())
    shards = [read_shard(dataset_dir / s["file"]) for s in meta["splits"][split]]
    return np.concatenate(shards) if shards else np.zeros(0, dtype=np.int64)
