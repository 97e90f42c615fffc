"""Helpers for test_tensorboard_reads_events.py: token datasets written byte by byte, the scalars that
metrics.jsonl says TensorBoard must show, and a `tensorboard` server run as a subprocess.

The tag mapping below is docs/training.md's list ("TensorBoard scalars: ..."), written out again from
the documentation, not from the C++.
"""
import json
import pathlib
import re
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np


def write_dataset(path, domain, train_ids, val_ids, vocab):
    """A dataset directory (data/token_dataset.h): dataset.json and one uint16 shard per split
    (data/token_shard.h: "UPCYTOK\\0", u32 version 1, u32 width, u64 count, u64 vocab, the ids)."""
    path = pathlib.Path(path)
    path.mkdir(parents=True)

    def shard(ids):
        return b"UPCYTOK\0" + struct.pack("<IIQQ", 1, 2, len(ids), vocab) + struct.pack(f"<{len(ids)}H", *ids)

    (path / "train-00000.tok").write_bytes(shard(train_ids))
    (path / "val-00000.tok").write_bytes(shard(val_ids))
    splits = {"train": [{"file": "train-00000.tok", "tokens": len(train_ids)}],
              "val": [{"file": "val-00000.tok", "tokens": len(val_ids)}]}
    (path / "dataset.json").write_text(json.dumps({
        "format": "upcycle-tokens", "version": 1, "domain": domain, "vocab_size": vocab,
        "tokenizer": {}, "sources": [], "splits": splits}))


def read_metrics(run_dir):
    return [json.loads(line) for line in (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def expected_scalars(records):
    """{tag: {step: value}} for every scalar the event files must hold, from metrics.jsonl records.

    max_load is max_e(load_e) * E from the logged load fractions; with E a power of two that product is
    exact, so it equals the writer's max_count * E / kept bit for bit."""
    tags = {}

    def put(tag, step, value):
        assert step not in tags.setdefault(tag, {}), f"metrics.jsonl has {tag} twice at step {step}"
        tags[tag][step] = value

    for r in records:
        step = r["step"]
        if r["kind"] == "train":
            for key in ("loss", "lr", "grad_norm", "tokens_per_s", "skipped_steps"):
                put(f"train/{key}", step, r[key])
            if "moe" in r:
                put("train/aux", step, r["aux"])
                put("train/z", step, r["z"])
                if "dirichlet" in r:  # runs with --dirichlet-prior
                    put("train/dirichlet", step, r["dirichlet"])
                for layer in r["moe"]:
                    experts = len(layer["load"])
                    assert experts & (experts - 1) == 0, "the exact max_load comparison needs E = 2^k"
                    prefix = f"moe/layer_{layer['layer']}/"
                    put(prefix + "max_load", step, max(layer["load"]) * experts)
                    for key in ("dropped", "entropy", "top1"):
                        put(prefix + key, step, layer[key])
        elif r["kind"] == "eval":
            put(f"eval/{r['domain']}/loss", step, r["loss"])
            put(f"eval/{r['domain']}/ppl", step, r["ppl"])
        else:
            raise AssertionError(f"metrics.jsonl record of unknown kind: {r}")
    return tags


def as_float32(value):
    """Event files store simple_value as float32: the JSON double rounded to nearest float32."""
    return float(np.float32(value))


def check_series(where, tag, points, expected, begin, end):
    """points: [(wall_time, step, value)] as a loader shows them, in its order. They must be the
    expected steps exactly (each once, ascending), values equal after float32 rounding, wall times
    inside the runs' time span and never going back."""
    steps = [p[1] for p in points]
    assert steps == sorted(expected), f"{where} {tag}: steps {steps}, metrics.jsonl has {sorted(expected)}"
    for wall_time, step, value in points:
        assert value == as_float32(expected[step]), (
            f"{where} {tag} step {step}: {value!r}, metrics.jsonl {expected[step]!r} "
            f"(float32 {as_float32(expected[step])!r})")
        assert begin <= wall_time <= end, f"{where} {tag} step {step}: wall time {wall_time} not in [{begin}, {end}]"
    walls = [p[0] for p in points]
    assert walls == sorted(walls), f"{where} {tag}: wall times go back: {walls}"


def poll(check, timeout_s=30, interval_s=0.3):
    """Calls check() until it passes; after timeout_s re-raises its last AssertionError. TensorBoard's
    loaders read in the background, so a view may be incomplete for a while after start or a write."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval_s)


def check_served(server, want, where, begin, end):
    """The HTTP view equals want ({run: {tag: {step: value}}}): runs, scalar tags per run, and every
    series through /data/plugin/scalars/scalars ([[wall_time, step, value], ...])."""
    runs = server.get("/data/runs")
    assert sorted(runs) == sorted(want), f"{where}: runs {runs}"
    tags = server.get("/data/plugin/scalars/tags")
    got_tags = {run: sorted(t) for run, t in tags.items()}
    assert got_tags == {run: sorted(t) for run, t in want.items()}, f"{where}: tags {got_tags}"
    for run, series in want.items():
        for tag, values in series.items():
            try:
                points = server.get("/data/plugin/scalars/scalars", run=run, tag=tag)
            except urllib.error.HTTPError as e:
                raise AssertionError(f"{where}: {run} {tag}: HTTP {e.code}") from e
            check_series(f"{where} {run}", tag, [tuple(p) for p in points], values, begin, end)


class TensorBoardServer:
    """`tensorboard --logdir LOGDIR --host 127.0.0.1 --port 0 EXTRA...` in a subprocess; call stop() in a
    `finally` (it ends the process) (the Rust data server it starts exits when its stdin, held by tensorboard, closes)."""

    def __init__(self, logdir, log_path, extra_args=()):
        binary = pathlib.Path(sys.executable).parent / "tensorboard"
        self.log_path = pathlib.Path(log_path)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(binary), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0", *extra_args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = None

    def wait_until_serving(self, start_timeout_s=60):
        """Polls the log for the URL tensorboard prints once it listens (--port 0: a free port)."""
        deadline = time.monotonic() + start_timeout_s
        while self.url is None:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", self.log())
            if found:
                self.url = f"http://127.0.0.1:{found.group(1)}"
            elif self.proc.poll() is not None:
                raise AssertionError(f"tensorboard exited {self.proc.returncode} before serving:\n{self.log()}")
            elif time.monotonic() > deadline:
                raise AssertionError(f"tensorboard did not serve within {start_timeout_s} s:\n{self.log()}")
            else:
                time.sleep(0.1)

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def get(self, path, **query):
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200, f"GET {url}: HTTP {response.status}"
            return json.loads(response.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
