"""Reads and writes what `upcycle data tokenize` writes (docs/formats.md, "Token shards and datasets")
without upcycle: a split of a dataset directory as one stream of ids, for the judges that feed the very
same tokens to transformers or llama.cpp, and small datasets of given ids for the tests.
"""
import json
import pathlib
import struct

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


def write_dataset(path, vocab, tokens, val_tokens=None):
    """A dataset directory of one uint16 shard per split; val defaults to the first 256 training ids."""
    path = pathlib.Path(path)
    path.mkdir()
    val_tokens = tokens[:256] if val_tokens is None else val_tokens
    splits = {}
    for split, ids in (("train", tokens), ("val", val_tokens)):
        header = b"UPCYTOK\0" + struct.pack("<IIQQ", 1, 2, len(ids), vocab)
        (path / f"{split}-00000.bin").write_bytes(header + np.asarray(ids, dtype="<u2").tobytes())
        splits[split] = [{"file": f"{split}-00000.bin", "tokens": len(ids)}]
    (path / "dataset.json").write_text(json.dumps(
        {"format": "upcycle-tokens", "version": 1, "domain": "cycle", "vocab_size": vocab, "splits": splits}))
    return path
