#!/usr/bin/env python3
# GGUF export and import throughput (issue 15), every side in the same run, each as a child process
# (wall time, peak RSS from os.wait4; see child_process.py):
#   export  HF bf16 checkpoint → GGUF, per --types: `upcycle export gguf --type T` against llama.cpp's
#           own convert_hf_to_gguf.py --outtype T (fetched from the pinned llama_cpp_python sdist on
#           PyPI, which vendors llama.cpp: the converter, its conversion/ package and gguf-py), and
#           `cp` of the input safetensors as the disk's floor. The two GGUF files are then compared
#           tensor by tensor with gguf-py's GGUFReader (the venv's gguf, not the vendored one).
#   import  upcycle's GGUF of each type → HF safetensors (--import-dtype): `upcycle import` against
#           transformers' GGUF loader (from_pretrained(gguf_file=…) + save_pretrained, run by this
#           script's --hf-import mode), and `cp` of the GGUF file; the two checkpoints are compared.
# upcycle fsyncs what it writes, the Python tools do not, so theirs is also timed with a `sync` after
# it (the ratio's figure) and `cp` is timed with its `sync`. By default each input is read once before
# the timed runs (warm page cache for every side); --cold drops the page cache before each timed run
# instead (needs root). MB/s is input bytes per second, the sync included where one is timed. The
# model: `upcycle init --arch llama --preset 1b --dtype bf16` (Llama-3.2-1B-shaped, 1.24 B parameters,
# 2.47 GB) with the Llama-3 tokenizer copied in, kept under --data with the converter; everything else
# written there is deleted. Not run by tests.
# Usage: gguf_bench.py --upcycle build/upcycle --data DIR [--preset 1b] [--types f16,q8_0] [--cold]
import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

from child_process import dir_bytes, loadavg, measure, read_through, timed_sync

REPO = pathlib.Path(__file__).resolve().parent.parent
WHO = "gguf_bench"
GB, MB = 1e9, 1e6


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--upcycle", help="the upcycle binary")
    p.add_argument("--data", help="scratch directory (the model and the converter stay there)")
    p.add_argument("--preset", default="1b", help="upcycle init preset of the Llama model")
    p.add_argument("--types", default="f16,q8_0", help="GGUF types, comma-separated: f32, f16, bf16, q8_0")
    p.add_argument("--import-dtype", default="bf16", choices=["f32", "bf16"], help="dtype of the imported weights")
    p.add_argument("--cold", action="store_true", help="drop the page cache before each timed run (root)")
    p.add_argument("--tokenizer-dir", default=str(REPO.parent / "shared" / "data" / "tokenizers" / "llama3"),
                   help="tokenizer.json + tokenizer_config.json for the model (vocabulary ≤ the preset's)")
    p.add_argument("--hf-import", nargs=2, metavar=("GGUF", "OUT"),
                   help="internal: the transformers side of the import (load GGUF, save_pretrained OUT)")
    p.add_argument("--compare", nargs=3, metavar=("KIND", "OURS", "THEIRS"),
                   help="internal: compare two GGUF files (KIND gguf) or checkpoint directories (KIND checkpoint)")
    a = p.parse_args()
    if not (a.hf_import or a.compare) and not (a.upcycle and a.data):
        p.error("--upcycle and --data are required")
    return a


def hf_import(gguf_path, out, dtype):
    """The Python baseline of the import: transformers' own GGUF loader, then save_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig
    gguf_path = pathlib.Path(gguf_path)
    # dequantize=True: a plain dense model that save_pretrained accepts (transformers 5 otherwise keeps
    # quantised weights packed for its GGUF kernels, and refuses to save such a model).
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                 quantization_config=GgufConfig(dequantize=True),
                                                 dtype={"f32": torch.float32, "bf16": torch.bfloat16}[dtype])
    model.save_pretrained(out)


def pinned_version(package):
    text = (REPO / "tests" / "reference" / "requirements.txt").read_text()
    m = re.search(rf"^{re.escape(package)}==(\S+)$", text, re.M | re.I)
    if not m:
        sys.exit(f"{WHO}: tests/reference/requirements.txt pins no {package}")
    return m.group(1)


def fetch_converter(data):
    """llama.cpp's convert_hf_to_gguf.py with its conversion/ package and gguf-py, from the sdist of the
    llama_cpp_python version the venv pins (fetched once with pip download, then kept)."""
    version = pinned_version("llama_cpp_python")
    root = data / f"llama.cpp-{version}"
    if (root / "convert_hf_to_gguf.py").exists():
        return root
    sdist_dir = data / "sdist"
    sdist = sdist_dir / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.exists():  # pip prepares the sdist's metadata too: minutes, once
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        f"llama_cpp_python=={version}", "-d", sdist_dir], check=True)
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    staging = data / f".llama.cpp-{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            rest = m.name[len(prefix):] if m.name.startswith(prefix) else ""
            if m.isfile() and (rest == "convert_hf_to_gguf.py" or rest.startswith(("conversion/", "gguf-py/gguf/"))):
                m.name = rest
                members.append(m)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # regular files only anyway
        tar.extractall(staging, members=members, **safe)
    staging.rename(root)
    shutil.rmtree(sdist_dir)
    return root


def make_model(a, data):
    d = data / f"llama-{a.preset}"
    if not (d / "config.json").exists():
        r = subprocess.run([a.upcycle, "init", "--arch", "llama", "--preset", a.preset, "--dtype", "bf16",
                            "--seed", "15", "--force", str(d)], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{WHO}: upcycle init failed: {r.stderr.strip()}")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(pathlib.Path(a.tokenizer_dir) / f, d / f)
    return d


class Timer:
    """Runs the timed commands from the same page-cache state: warm (inputs read once) or --cold."""

    def __init__(self, cold):
        self.cold = cold

    def run(self, cmd, inputs):
        if self.cold:
            subprocess.run(["sync"], check=True)
            pathlib.Path("/proc/sys/vm/drop_caches").write_text("3\n")
        else:
            read_through(inputs)
        return measure(cmd, WHO)


def compare_gguf(ours, theirs):
    """One line: how many tensors are byte-identical, and every difference in tensors or metadata keys."""
    import numpy as np
    from gguf import GGUFReader
    a, b = GGUFReader(ours), GGUFReader(theirs)
    ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
    same, notes = 0, []
    for name in sorted(ta.keys() & tb.keys()):
        x, y = ta[name], tb[name]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
            notes.append(f"{name}: {x.tensor_type.name}{list(x.shape)} vs {y.tensor_type.name}{list(y.shape)}")
            continue
        bx, by = (np.asarray(t.data).reshape(-1).view(np.uint8) for t in (x, y))
        if np.array_equal(bx, by):
            same += 1
        else:
            notes.append(f"{name}: {int(np.count_nonzero(bx != by))} of {bx.size} bytes differ")
    for label, names in (("only upcycle's", ta.keys() - tb.keys()), ("only the converter's", tb.keys() - ta.keys())):
        if names:
            notes.append(f"{label} tensors: {', '.join(sorted(names))}")
    keys_a, keys_b = set(a.fields), set(b.fields)
    for label, keys in (("only upcycle's", keys_a - keys_b), ("only the converter's", keys_b - keys_a)):
        if keys:
            notes.append(f"{label} keys: {', '.join(sorted(keys))}")
    return same, notes


def compare_checkpoints(ours, theirs):
    """Like compare_gguf for two safetensors directories (values compared exactly, dtype included)."""
    import torch
    from safetensors import safe_open

    def index(d):
        handles = [safe_open(f, framework="pt") for f in sorted(pathlib.Path(d).glob("*.safetensors"))]
        return {name: h for h in handles for name in h.keys()}
    a, b = index(ours), index(theirs)
    same, notes = 0, []
    for name in sorted(a.keys() & b.keys()):
        x, y = a[name].get_tensor(name), b[name].get_tensor(name)
        if x.dtype != y.dtype or x.shape != y.shape:
            notes.append(f"{name}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
        elif torch.equal(x, y):
            same += 1
        else:
            notes.append(f"{name}: {int((x != y).sum())} of {x.numel()} values differ, max |Δ| "
                         f"{float((x.float() - y.float()).abs().max()):.3g}")
    for label, names in (("only upcycle's", a.keys() - b.keys()), ("only transformers'", b.keys() - a.keys())):
        if names:
            notes.append(f"{label} tensors: {', '.join(sorted(names))}")
    return same, notes


def compare(what, kind, ours, theirs):
    """Prints the comparison, run in a child: the pages it touches (GBs) must not raise this process's
    peak RSS, which every later child would report as its own (Linux carries maxrss across fork/exec)."""
    r = subprocess.run([sys.executable, __file__, "--compare", kind, ours, theirs], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{WHO}: comparing {what} failed: {r.stderr.strip()[-2000:]}")
    print(f"compare {what}: {r.stdout.rstrip()}", flush=True)


def print_comparison(same, notes):
    print(f"{same} tensors identical" + ("" if notes else ", no differences"))
    for n in notes:
        print(f"  {n}")


def copy_floor(timer, files, scratch):
    """`cp` of the same bytes plus `sync`: the disk's floor for reading and writing them."""
    scratch.mkdir()
    subprocess.run(["sync"], check=True)
    quoted = " ".join(f"'{f}'" for f in files)
    seconds, _ = timer.run(["sh", "-c", f"cp {quoted} '{scratch}/' && sync"], files)
    shutil.rmtree(scratch)
    return seconds


def main():
    a = parse_args()
    if a.hf_import:
        hf_import(*a.hf_import, a.import_dtype)
        return
    if a.compare:
        kind, ours, theirs = a.compare
        print_comparison(*{"gguf": compare_gguf, "checkpoint": compare_checkpoints}[kind](ours, theirs))
        return
    data = pathlib.Path(a.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    converter = fetch_converter(data) / "convert_hf_to_gguf.py"
    model = make_model(a, data)
    inputs = sorted(model.glob("*.safetensors"))
    in_bytes = sum(f.stat().st_size for f in inputs)
    timer = Timer(a.cold)
    rows, ratios = [], []  # rows: (direction, type, tool, seconds, seconds with sync, input bytes, peak RSS)
    scratch = data / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"load before: {loadavg()}; page cache: {'dropped before each run' if a.cold else 'warm'}", flush=True)
    for t in a.types.split(","):
        ours, theirs = data / f"upcycle.{t}.gguf", data / f"converter.{t}.gguf"
        cp_s = copy_floor(timer, inputs, scratch)
        up_s, up_rss = timer.run([a.upcycle, "export", "gguf", model, ours, "--type", t, "--force"], inputs)
        cv_s, cv_rss = timer.run([sys.executable, converter, model, "--outfile", theirs, "--outtype", t], inputs)
        cv_sync = cv_s + timed_sync()
        print(f"export {t}: upcycle wrote {ours.stat().st_size / GB:.2f} GB, "
              f"the converter {theirs.stat().st_size / GB:.2f} GB", flush=True)
        compare(f"export {t} (upcycle vs convert_hf_to_gguf.py)", "gguf", ours, theirs)
        theirs.unlink()
        rows += [("export", t, "cp + sync (floor)", cp_s, cp_s, in_bytes, None),
                 ("export", t, "upcycle export gguf", up_s, up_s, in_bytes, up_rss),
                 ("export", t, "convert_hf_to_gguf.py", cv_s, cv_sync, in_bytes, cv_rss)]
        ratios.append(("export", t, cv_sync / up_s, cp_s / up_s, up_rss))

        gguf_bytes = ours.stat().st_size
        out_up, out_hf = data / f"import-upcycle.{t}", data / f"import-transformers.{t}"
        shutil.rmtree(out_hf, ignore_errors=True)
        cp_s = copy_floor(timer, [ours], scratch)
        up_s, up_rss = timer.run([a.upcycle, "import", ours, out_up, "--dtype", a.import_dtype, "--force"], [ours])
        hf_s, hf_rss = timer.run([sys.executable, __file__, "--hf-import", ours, out_hf,
                                  "--import-dtype", a.import_dtype], [ours])
        hf_sync = hf_s + timed_sync()
        print(f"import {t} → {a.import_dtype}: upcycle wrote {dir_bytes(out_up) / GB:.2f} GB, "
              f"transformers {dir_bytes(out_hf) / GB:.2f} GB", flush=True)
        compare(f"import {t} (upcycle vs transformers)", "checkpoint", out_up, out_hf)
        for d in (out_up, out_hf):
            shutil.rmtree(d)
        ours.unlink()
        rows += [("import", t, "cp + sync (floor)", cp_s, cp_s, gguf_bytes, None),
                 ("import", t, "upcycle import", up_s, up_s, gguf_bytes, up_rss),
                 ("import", t, "transformers GGUF loader", hf_s, hf_sync, gguf_bytes, hf_rss)]
        ratios.append(("import", t, hf_sync / up_s, cp_s / up_s, up_rss))
    print(f"load after: {loadavg()}")

    print(f"model: llama {a.preset} bf16, {in_bytes / GB:.2f} GB of safetensors; import writes {a.import_dtype}")
    print(f"{'direction':<9} {'type':<5} {'tool':<26} {'seconds':>8} {'+ sync':>8} {'MB/s':>8} {'peak RSS':>11}")
    for direction, t, tool, s, s_sync, nbytes, rss in rows:
        rss_text = f"{rss / GB:8.2f} GB" if rss is not None else ""
        sync_text = f"{s_sync:8.1f}" if s_sync != s else ""
        print(f"{direction:<9} {t:<5} {tool:<26} {s:8.1f} {sync_text:>8} {nbytes / MB / s_sync:8.0f} {rss_text:>11}")
    for direction, t, speed, floor, rss in ratios:
        print(f"ratio {direction} {t}: speed={speed:.2f}x (Python tool + sync / upcycle; goal >= 5) "
              f"floor={floor:.2f}x (cp + sync / upcycle) upcycle_rss={rss / GB:.3f} GB (goal < 1)")


if __name__ == "__main__":
    main()
