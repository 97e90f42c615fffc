#!/usr/bin/env python3
"""Kill soak: SIGKILL upcycle at random moments of `convert`, `data tokenize`, `train` (checkpoint
writes included), `study`, `export gguf` and `import` (GGUF → checkpoint), then check what a crash may leave behind (issue 20, part 2):
  - an output directory or file is absent or complete, never partial (bytes equal an uninterrupted run's);
  - train: the newest surviving checkpoint loads (`upcycle inspect`) and equals the uninterrupted
    run's checkpoint of that step byte for byte;
  - a rerun (`train --resume`, `study` again, convert/tokenize again) finishes with results
    bit-identical to the uninterrupted run (checkpoint files, metrics.jsonl less its wall-clock field);
  - no staging directory (.NAME.tmp-PID-N / .NAME.old-PID-N) or temporary file (.NAME.tmp.PID) is
    left once the rerun is done.
Kill moments come from a seeded RNG (UPCYCLE_SOAK_SEED, printed), the kill count from UPCYCLE_SOAK_KILLS
(default 52, spread over the commands); every kill hits a still-running process (a process that ends
before its kill time is retried with a new moment and not counted). Each command runs in its own
session and the whole process group is killed. Single thread everywhere (--threads 1), tiny models.
Usage: kill_soak.py UPCYCLE_BINARY TOKENIZER_JSON   (ctest: label soak)
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

BIN, TOKENIZER = sys.argv[1], sys.argv[2]
SEED = int(os.environ.get("UPCYCLE_SOAK_SEED", str(int(time.time()) % 1000000)))
KILLS = int(os.environ.get("UPCYCLE_SOAK_KILLS", "52"))
SHARE = {"convert": 0.2, "tokenize": 0.2, "train": 0.34, "study": 0.1, "export": 0.08, "import": 0.08}
STAGING = re.compile(r"^\..+\.((tmp|old)-\d+-\d+|tmp\.\d+)$")  # StagedDir dirs, atomic-write temp files
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
rng = random.Random(SEED)
failures = []
counts = {}  # (command, moment) -> kills


def run(args, check=True):
    r = subprocess.run([BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    if check and r.returncode != 0:
        raise SystemExit(f"upcycle {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def timed(args, out):
    """The shortest of three uninterrupted runs: kill moments are drawn below it, so most hit."""
    best = None
    for _ in range(3):
        if os.path.isfile(out):
            os.remove(out)
        shutil.rmtree(out, ignore_errors=True)
        start = time.monotonic()
        run(args)
        best = min(best or 1e9, time.monotonic() - start)
    return best


def kill_at(args, delay):
    """Starts upcycle, SIGKILLs its process group after `delay` s; True when it was still running."""
    p = subprocess.Popen([BIN] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                         start_new_session=True)
    try:
        p.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return True


def digest(root, skip=("tensorboard", "metrics.jsonl")):
    if os.path.isfile(root):  # a one-file output (export gguf)
        with open(root, "rb") as fh:
            return {os.path.basename(root): hashlib.sha256(fh.read()).hexdigest()}
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for f in files:
            if f in skip:
                continue
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def staging_left(root):
    found = []
    for dirpath, dirnames, files in os.walk(root):
        found += [os.path.join(dirpath, n) for n in dirnames + files if STAGING.match(n)]
    return found


def metrics(path):
    """metrics.jsonl records less the wall-clock throughput, which no two runs share."""
    recs = []
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            r.pop("tokens_per_s", None)
            recs.append(r)
    return recs


def fail(what):
    failures.append(what)
    print("FAIL:", what, flush=True)


def soak(name, kills, make_args, reference_time, after_kill, rerun, final_check, fixed_work=None):
    done = attempts = 0
    while done < kills and attempts < 10 * kills:
        attempts += 1
        if fixed_work:  # outputs that record their own absolute path are compared at the same path
            os.makedirs(fixed_work)
            work = fixed_work
        else:
            work = tempfile.mkdtemp(prefix=f"soak-{name}-", dir=ROOT)
        args, out = make_args(work)
        if not kill_at(args, rng.uniform(0.0, reference_time)):
            shutil.rmtree(work)
            continue
        done += 1
        moment = "while staging" if staging_left(work) else "outside staging"
        counts[(name, moment)] = counts.get((name, moment), 0) + 1
        after_kill(work, out)
        rerun(args, out)
        final_check(work, out)
        left = staging_left(work)
        if left:
            fail(f"{name}: staging left after the rerun: {left}")
        if not failures:
            shutil.rmtree(work)
        else:  # kept for a look
            os.rename(work, f"{work}-failed-{attempts}")
    if done < kills:
        fail(f"{name}: only {done} of {kills} kills hit a running process in {attempts} attempts")
    return done


# ---- fixtures -------------------------------------------------------------------------------------
ROOT = tempfile.mkdtemp(prefix="upcycle-soak-")
print(f"kill soak: seed {SEED} (UPCYCLE_SOAK_SEED), {KILLS} kills (UPCYCLE_SOAK_KILLS), in {ROOT}", flush=True)
BASE = os.path.join(ROOT, "base")
run(["init", "--arch", "llama", "--preset", "tiny", "--dtype", "f32", "--seed", "1", BASE])
WIDE = os.path.join(ROOT, "wide")  # 12 MB: converting it takes long enough (~0.1 s) to be killed mid-write
run(["init", "--arch", "llama", "--preset", "tiny", "--dtype", "f32", "--seed", "1", "--layers", "8", "--hidden-size", "256",
     WIDE])


def write_dataset(d, train, val, vocab):
    os.makedirs(d)
    for split, ids in (("train", train), ("val", val)):
        with open(os.path.join(d, f"{split}-00000.tok"), "wb") as fh:
            fh.write(b"UPCYTOK\0" + struct.pack("<IIQQ", 1, 2, len(ids), vocab) + struct.pack(f"<{len(ids)}H", *ids))
    with open(os.path.join(d, "dataset.json"), "w") as fh:
        json.dump({"format": "upcycle-tokens", "version": 1, "domain": os.path.basename(d), "vocab_size": vocab,
                   "splits": {s: [{"file": f"{s}-00000.tok", "tokens": len(i)}] for s, i in (("train", train), ("val", val))}},
                  fh)


ALPHA, BETA = os.path.join(ROOT, "alpha"), os.path.join(ROOT, "beta")
write_dataset(ALPHA, [(i * 7 + i // 13) % 37 for i in range(4000)], [(i * 7) % 37 for i in range(400)], 512)
write_dataset(BETA, [300 + (i * 5 + i // 11) % 53 for i in range(4000)], [300 + (i * 5) % 53 for i in range(400)], 512)
TEXT = os.path.join(ROOT, "text.txt")
words = ["upcycle", "expert", "router", "dense", "the", "of", "tokens", "checkpoint", "kill", "resume", "0123"]
with open(TEXT, "w") as fh:
    text_rng = random.Random(7)
    for _ in range(20000):
        fh.write(" ".join(text_rng.choice(words) for _ in range(12)) + "\n")

CONVERT = lambda src, out: ["convert", src, out, "--experts", "4", "--top-k", "2", "--threads", "1"]
TOKENIZE = lambda out: ["data", "tokenize", "--tokenizer", TOKENIZER, "--input", TEXT, "--out", out,
                        "--domain", "prose", "--val-fraction", "0.1", "--shard-tokens", "20000"]
TRAIN = lambda out, keep: ["train", "--model", BASE, "--data", ALPHA, "--val", ALPHA, "--out", out, "--steps", "30",
                           "--micro-batch", "2", "--seq-len", "16", "--lr", "3e-3", "--warmup", "2", "--save-every", "3",
                           "--keep", keep, "--eval-every", "10", "--eval-tokens", "32", "--threads", "1"]
SPEC = os.path.join(ROOT, "spec.yaml")
with open(SPEC, "w") as fh:
    fh.write(f"name: soak\ndata: [{ALPHA}, {BETA}]\n"
             "dense:\n  init: {arch: llama, preset: tiny, dtype: f32, seed: 1}\n  pretrain_steps: 6\n"
             "train: {micro-batch: 2, seq-len: 16, lr: 3e-3, warmup: 2, eval-tokens: 32, log-every: 100}\n"
             "extra_compute: 0.5\nevals: 2\nanalysis_tokens: 32\n"
             "variants:\n  - name: dense-continuation\n  - name: upcycle\n    convert: {experts: 4, top-k: 2}\n")
STUDY = lambda out: ["study", SPEC, "--out", out, "--threads", "1"]
EXPORT = lambda out: ["export", "gguf", WIDE, out, "--type", "q8_0", "--skip-tokenizer"]  # quantising: the longest export
GGUF = os.path.join(ROOT, "wide.gguf")
run(["export", "gguf", WIDE, GGUF, "--type", "f32", "--skip-tokenizer"])
IMPORT = lambda out: ["import", GGUF, out, "--skip-tokenizer"]

# Uninterrupted references (train keeps every checkpoint, to compare whichever one a kill leaves).
REF = {}
t_convert = timed(CONVERT(WIDE, os.path.join(ROOT, "ref-convert")), os.path.join(ROOT, "ref-convert"))
REF["convert"] = digest(os.path.join(ROOT, "ref-convert"))
t_tokenize = timed(TOKENIZE(os.path.join(ROOT, "ref-tokens")), os.path.join(ROOT, "ref-tokens"))
REF["tokenize"] = digest(os.path.join(ROOT, "ref-tokens"))
t_export = timed(EXPORT(os.path.join(ROOT, "ref.gguf")), os.path.join(ROOT, "ref.gguf"))
REF["export"] = digest(os.path.join(ROOT, "ref.gguf"))
t_import = timed(IMPORT(os.path.join(ROOT, "ref-import")), os.path.join(ROOT, "ref-import"))
REF["import"] = digest(os.path.join(ROOT, "ref-import"))
REF_RUN = os.path.join(ROOT, "ref-train")
t_train = timed(TRAIN(REF_RUN, "100"), REF_RUN)
REF["train-metrics"] = metrics(os.path.join(REF_RUN, "metrics.jsonl"))
STUDY_WORK = os.path.join(ROOT, "study-work")  # run dirs record absolute paths: one path for all
REF_STUDY = os.path.join(STUDY_WORK, "study")
os.makedirs(STUDY_WORK)
t_study = timed(STUDY(REF_STUDY), REF_STUDY)


def study_results(d):
    """Every run's metrics (less wall clock), checkpoints and analyses, and study.json's statuses."""
    res = {"study": [(v["name"], v.get("status")) for v in json.load(open(os.path.join(d, "study.json")))["variants"]]}
    for dirpath, _, files in os.walk(d):
        if "metrics.jsonl" in files:
            res[os.path.relpath(dirpath, d) + "/metrics"] = metrics(os.path.join(dirpath, "metrics.jsonl"))
    res["files"] = {k: v for k, v in digest(d, skip=("tensorboard", "metrics.jsonl", "study.json", "report.html")).items()
                    if "/checkpoints/" in k or k.startswith("analysis") or "/analysis/" in k}
    return res


REF["study"] = study_results(REF_STUDY)
shutil.rmtree(STUDY_WORK)
print(f"references: convert {t_convert:.2f} s, tokenize {t_tokenize:.2f} s, export {t_export:.2f} s, "
      f"import {t_import:.2f} s, train {t_train:.2f} s, study {t_study:.2f} s", flush=True)


# ---- convert, tokenize, export, import: absent or complete, rerun equal ------------------------------------------
def whole_dir_checks(name, ref):
    def after_kill(work, out):
        if os.path.exists(out) and digest(out) != ref:
            fail(f"{name}: killed output {out} exists but differs from the uninterrupted run's")

    def rerun(args, out):
        run(args + (["--force"] if os.path.exists(out) else []))

    def final_check(work, out):
        if digest(out) != ref:
            fail(f"{name}: rerun output differs from the uninterrupted run's")

    return after_kill, rerun, final_check


quota = {k: max(1, int(KILLS * s)) for k, s in SHARE.items()}
quota["train"] += max(0, KILLS - sum(quota.values()))  # the rounding remainder
soak("convert", quota["convert"], lambda w: (CONVERT(WIDE, os.path.join(w, "out")), os.path.join(w, "out")),
     t_convert, *whole_dir_checks("convert", REF["convert"]))
soak("tokenize", quota["tokenize"], lambda w: (TOKENIZE(os.path.join(w, "out")), os.path.join(w, "out")),
     t_tokenize, *whole_dir_checks("tokenize", REF["tokenize"]))
soak("export", quota["export"], lambda w: (EXPORT(os.path.join(w, "ref.gguf")), os.path.join(w, "ref.gguf")),
     t_export, *whole_dir_checks("export", REF["export"]))
soak("import", quota["import"], lambda w: (IMPORT(os.path.join(w, "out")), os.path.join(w, "out")),
     t_import, *whole_dir_checks("import", REF["import"]))


# ---- train: the newest checkpoint loads and equals the reference's; --resume ends bit-identical -----------
def ckpt_files(d):
    return {k: v for k, v in digest(d).items()}


def train_after_kill(work, out):
    ckdir = os.path.join(out, "checkpoints")
    steps = sorted(n for n in os.listdir(ckdir) if n.startswith("step-")) if os.path.isdir(ckdir) else []
    if not steps:
        return
    newest = os.path.join(ckdir, steps[-1])
    r = run(["inspect", newest], check=False)
    if r.returncode != 0:
        fail(f"train: newest checkpoint {newest} does not load: {r.stderr.strip()}")
    if ckpt_files(newest) != ckpt_files(os.path.join(REF_RUN, "checkpoints", steps[-1])):
        fail(f"train: checkpoint {steps[-1]} left by the kill differs from the uninterrupted run's")


def train_rerun(args, out):
    if os.path.exists(os.path.join(out, "config.json")):
        run(["train", "--out", out, "--resume"])
    else:  # killed before the run record was committed: the same command starts again
        run(args)


def train_final(work, out):
    final = "checkpoints/step-00000030"
    if ckpt_files(os.path.join(out, final)) != ckpt_files(os.path.join(REF_RUN, final)):
        fail("train: the resumed run's final checkpoint differs from the uninterrupted run's")
    if metrics(os.path.join(out, "metrics.jsonl")) != REF["train-metrics"]:
        fail("train: the resumed run's metrics.jsonl differs from the uninterrupted run's")


soak("train", quota["train"], lambda w: (TRAIN(os.path.join(w, "run"), "2"), os.path.join(w, "run")), t_train,
     train_after_kill, train_rerun, train_final)


# ---- study: rerun the same command; every result equal -------------------------------------------------
def study_final(work, out):
    got = study_results(out)
    for key in sorted(set(got) | set(REF["study"])):
        a, b = got.get(key), REF["study"].get(key)
        if a != b:
            detail = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) if key == "files" and a and b else ""
            fail(f"study: {key} differs from the uninterrupted study's after the rerun {detail} ({out})")


soak("study", quota["study"], lambda w: (STUDY(REF_STUDY), REF_STUDY), t_study, lambda w, o: None, lambda a, o: run(a),
     study_final, fixed_work=STUDY_WORK)

# ---- report ---------------------------------------------------------------------------------------------
total = sum(counts.values())
for (name, moment), n in sorted(counts.items()):
    print(f"  {name:9s} {moment:16s} {n:3d} kills")
print(f"kill soak: {total} kills, {len(failures)} failures (seed {SEED})")
if not failures:
    shutil.rmtree(ROOT)
sys.exit(1 if failures or total < KILLS else 0)
