#!/usr/bin/env python3
# `mergekit-moe` (the real one, from the reference venv) against `upcycle convert --recipe` on the same
# mergekit YAML, measured in the same run: wall time and peak RSS of each tool as a child process
# (os.wait4's ru_maxrss: the child's high-water mark, page-cache-backed mmap pages it touched included).
# Sources: `upcycle init --arch llama --preset 1b --dtype bf16` (Llama-3.2-1B-shaped, 1.24 B parameters,
# 2.47 GB each) with the Llama-3 tokenizer copied in (mergekit always loads the base's tokenizer); the YAML
# makes a Mixtral of --experts experts spread over the sources. upcycle fsyncs its output and mergekit
# does not, so mergekit's time is also given with a `sync` of its output (the like-for-like figure the
# ratio uses), and `cp -r` + `sync` of upcycle's output is timed as the disk's floor for those bytes.
# The sources are read once before timing so both tools start from a warm page cache.
# Outputs are deleted after each run; the sources too unless --keep-sources. Not run by tests.
# Usage: mergekit_moe_bench.py --upcycle build/upcycle --data DIR [--gate-mode cheap_embed|random|hidden]
import argparse
import pathlib
import shutil
import subprocess
import sys

from child_process import dir_bytes, loadavg, measure, read_through, timed_sync

REPO = pathlib.Path(__file__).resolve().parent.parent
WHO = "mergekit_moe_bench"
PROMPTS = [["def main():", "import numpy as np"], ["The derivative of sin(x) is"],
           ["Once upon a time, in a land far away"], ["SELECT * FROM users WHERE"],
           ["Bonjour, comment allez-vous ?"], ["The patient presented with"],
           ["Theorem 1. Let G be a group"], ["<html><body>"]]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--upcycle", required=True, help="the upcycle binary")
    p.add_argument("--data", required=True, help="scratch directory (sources and outputs)")
    p.add_argument("--preset", default="1b", help="upcycle init preset of the sources")
    p.add_argument("--sources", type=int, default=3, help="dense source models (the first is the base)")
    p.add_argument("--experts", type=int, default=4)
    p.add_argument("--gate-mode", default="cheap_embed", choices=["cheap_embed", "random", "hidden"])
    p.add_argument("--tokenizer-dir", default=str(REPO.parent / "shared" / "data" / "tokenizers" / "llama3"),
                   help="tokenizer.json + tokenizer_config.json for the sources (vocabulary ≤ the preset's)")
    p.add_argument("--keep-sources", action="store_true")
    return p.parse_args()


def make_sources(a, data):
    dirs = []
    for i in range(a.sources):
        d = data / f"src{i}"
        if not (d / "config.json").exists():
            r = subprocess.run([a.upcycle, "init", "--arch", "llama", "--preset", a.preset, "--dtype", "bf16",
                                "--seed", str(100 + i), "--force", str(d)], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"mergekit_moe_bench: upcycle init failed: {r.stderr.strip()}")
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(pathlib.Path(a.tokenizer_dir) / f, d / f)
        dirs.append(d)
    return dirs


def write_yaml(a, data, sources):
    lines = [f"base_model: {sources[0]}", f"gate_mode: {a.gate_mode}", "dtype: bfloat16",
             "experts_per_token: 2", "experts:"]
    for e in range(a.experts):
        lines.append(f"  - source_model: {sources[e % len(sources)]}")
        if a.gate_mode != "random":
            lines.append("    positive_prompts: [" + ", ".join(f'"{p}"' for p in PROMPTS[e % len(PROMPTS)]) + "]")
    path = data / f"bench_{a.gate_mode}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main():
    a = parse_args()
    data = pathlib.Path(a.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    sources = make_sources(a, data)
    yaml_path = write_yaml(a, data, sources)
    mergekit = pathlib.Path(sys.executable).parent / "mergekit-moe"
    read_through(f for d in sources for f in d.glob("*.safetensors"))  # warm page cache for both tools alike
    ours, theirs = data / "out-upcycle", data / "out-mergekit"
    for d in (ours, theirs, data / "out-copy"):
        shutil.rmtree(d, ignore_errors=True)
    print(f"load before: {loadavg()}", flush=True)

    up_s, up_rss = measure([a.upcycle, "convert", "--recipe", yaml_path, ours], WHO)
    written = dir_bytes(ours)
    # The disk's floor for writing these bytes: cp -r of upcycle's output plus sync, in the same run.
    copy = data / "out-copy"
    subprocess.run(["sync"], check=True)
    cp_s, _ = measure(["sh", "-c", f"cp -r '{ours}' '{copy}' && sync"], WHO)
    shutil.rmtree(ours)
    shutil.rmtree(copy)
    mk_s, mk_rss = measure([mergekit, yaml_path, theirs, "--device", "cpu", "--quiet"], WHO)
    mk_sync_s = mk_s + timed_sync()
    mk_written = dir_bytes(theirs)
    shutil.rmtree(theirs)
    print(f"load after: {loadavg()}")

    gb = 1e9
    print(f"{a.sources} x {a.preset} bf16 sources -> mixtral {a.experts} experts, gate_mode {a.gate_mode}: "
          f"upcycle wrote {written / gb:.2f} GB, mergekit {mk_written / gb:.2f} GB")
    print(f"{'tool':<32} {'seconds':>9} {'peak RSS':>12}")
    print(f"{'upcycle convert --recipe':<32} {up_s:9.1f} {up_rss / gb:10.2f} GB")
    print(f"{'mergekit-moe':<32} {mk_s:9.1f} {mk_rss / gb:10.2f} GB")
    print(f"{'mergekit-moe + sync':<32} {mk_sync_s:9.1f}")
    print(f"{'cp -r + sync of the output':<32} {cp_s:9.1f}    (disk floor: upcycle at {cp_s / up_s:.2f}x of it)")
    print(f"ratio gate_mode={a.gate_mode} speed={mk_sync_s / up_s:.2f}x (mergekit+sync / upcycle; goal >= 5) "
          f"speed_nosync={mk_s / up_s:.2f}x rss={up_rss / mk_rss:.4f} (upcycle / mergekit; goal <= 0.1)")
    if not a.keep_sources:
        for d in sources:
            shutil.rmtree(d)
        yaml_path.unlink()


if __name__ == "__main__":
    main()
