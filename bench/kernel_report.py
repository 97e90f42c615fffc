# Which kernels torch_train_step.py's PyTorch runs, printed next to its timings: the BLAS/OpenMP
# libraries threadpoolctl finds (numpy's OpenBLAS with its core type, torch's libgomp), torch's build
# (MKL, oneDNN versions, CPU capability), the OPENBLAS_* settings in force, and for one extra training
# step per case the MKL and oneDNN calls it made (MKL_VERBOSE / ONEDNN_VERBOSE through
# torch.backends.{mkl,mkldnn}.verbose, stdout captured at the file-descriptor level), counted by
# function / implementation with their summed time. Lines start with "# " (human) or "kernels"
# (one per case, machine-readable). As a program it summarises a oneDNN/MKL verbose log on stdin
# (scripts/bench: upcycle's cpu-bf16 step): `kernel_report.py LABEL < LOG`. Non-goals: ATen's own
# kernels (SDPA, elementwise, AdamW) are not listed by any verbose mode; they are the step's time
# outside MKL + oneDNN.
import collections
import contextlib
import os
import re
import sys
import tempfile
import time



def print_environment(threads):
    import numpy  # noqa: F401  (loaded so that threadpoolctl lists numpy's OpenBLAS too)
    import threadpoolctl
    import torch

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        print(f"# env {var}={os.environ.get(var, '(unset)')}")
    build = torch.__config__.show()
    libs = [m.group(1).strip() for m in re.finditer(r"^\s*- (Intel\(R\) (?:oneAPI Math Kernel|MKL-DNN).*)$", build, re.M)]
    blas = re.search(r"BLAS_INFO=(\w+)", build)
    print(f"# torch {torch.__version__}: BLAS_INFO={blas.group(1) if blas else '?'}; " + "; ".join(libs))
    print(f"# torch CPU capability {torch.backends.cpu.get_cpu_capability()}, threads {torch.get_num_threads()} "
          f"(asked {threads}), mkldnn available={torch.backends.mkldnn.is_available()} "
          f"enabled={torch.backends.mkldnn.enabled}, mkl available={torch.backends.mkl.is_available()}")
    for info in threadpoolctl.threadpool_info():
        extra = " ".join(f"{k}={info[k]}" for k in ("version", "architecture", "threading_layer") if info.get(k))
        where = os.path.join(*info["filepath"].split(os.sep)[-2:])  # e.g. numpy.libs/libscipy_openblas64_….so
        print(f"# threadpoolctl: {info['internal_api']} {where} "
              f"threads={info['num_threads']} {extra}")
    sys.stdout.flush()


def _ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(ns|us|ms|s)", text).groups()
    return float(value) * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _count(log):
    """(calls, ms) per kernel from MKL_VERBOSE and ONEDNN_VERBOSE lines; the libraries' info lines."""
    calls = collections.defaultdict(lambda: [0, 0.0])
    info = []
    for line in log.splitlines():
        mkl = re.match(r"MKL_VERBOSE (\w+)\(.*\) ([\d.]+(?:ns|us|ms|s)) ", line)
        if mkl:
            entry = calls["MKL " + mkl.group(1)]
            entry[0] += 1
            entry[1] += _ms(mkl.group(2))
        elif line.startswith("MKL_VERBOSE oneMKL"):
            info.append(line.removeprefix("MKL_VERBOSE ").split(",")[0])
        elif re.match(r"(onednn|dnnl)_verbose,", line):
            f = line.split(",")  # oneDNN 2.x: …,exec,cpu,KIND,IMPL,…,ms; 3.x: …,primitive,exec,cpu,KIND,IMPL,…,ms
            if "exec" in f[:4]:
                i = f.index("exec")
                entry = calls[f"oneDNN {f[i + 2]} {f[i + 3]}"]
                entry[0] += 1
                entry[1] += float(f[-1])
            elif ",info,oneDNN v" in line:
                info.append(line.split(",info,")[1].split(" (")[0])
            elif ",info,cpu,isa:" in line:
                info.append("oneDNN ISA: " + line.split("isa:")[1])
    return calls, info


def _print(name, calls, info, wall=None):
    for line in info:
        print(f"# {name}: {line}")
    top = sorted(calls.items(), key=lambda kv: -kv[1][1])
    blas_ms = sum(ms for _, ms in calls.values())
    step = f"verbose step {wall:.0f} ms, of which " if wall is not None else ""
    print(f"# {name}: {step}MKL + oneDNN {blas_ms:.0f} ms (" +
          ", ".join(f"{k} ×{n} {ms:.0f} ms" for k, (n, ms) in top) + ")")
    counts = " ".join(f"{k.replace(' ', ':')}={n}/{ms:.1f}ms" for k, (n, ms) in top)
    print(f"kernels case={name.replace(' ', '_')} {counts}", flush=True)


def profile_step(name, step):
    """Runs step() once more with MKL and oneDNN verbose on and prints what ran."""
    import torch

    with contextlib.ExitStack() as verbose, tempfile.TemporaryFile() as log:
        try:
            verbose.enter_context(torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON))
            verbose.enter_context(torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON))
        except RuntimeError as e:  # a torch built without MKL or oneDNN cannot switch their verbose mode on
            print(f"# {name}: no kernel report ({e})", flush=True)
            return
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)
        try:
            start = time.perf_counter()
            step()
            wall = (time.perf_counter() - start) * 1e3
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        calls, info = _count(log.read().decode(errors="replace"))
    _print(name, calls, info, wall)


if __name__ == "__main__":
    calls, info = _count(sys.stdin.read())
    _print(" ".join(sys.argv[1:]) or "stdin", calls, info)
