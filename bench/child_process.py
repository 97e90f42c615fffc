# Timing and peak memory of a benchmarked tool run as a child process, shared by the Python benches:
# wall time around the child, and os.wait4's ru_maxrss — the high-water mark of that child (and of the
# descendants it waited for), page-cache-backed mmap pages it touched included. Per child, so one
# tool's peak never hides another's, unlike getrusage(RUSAGE_CHILDREN), which keeps the maximum so far.
# Linux starts a child's maxrss at the parent's high-water mark (fork/exec carry it over), so the bench
# process itself must stay small: anything that touches GBs runs in a child of its own.
import os
import pathlib
import subprocess
import sys
import time


def measure(cmd, who, env=None):
    """Runs cmd; returns (seconds, peak RSS bytes) of that child, or exits naming `who` on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(out.decode(errors="replace")[-4000:])
        sys.exit(f"{who}: {' '.join(map(str, cmd))} failed")
    return seconds, usage.ru_maxrss * 1024


def timed_sync():
    """Seconds a `sync` takes: the writeback a tool that does not fsync left behind."""
    start = time.perf_counter()
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - start


def dir_bytes(d):
    return sum(f.stat().st_size for f in pathlib.Path(d).iterdir() if f.is_file())


def read_through(paths):
    """Reads files once so that every tool timed afterwards starts from the same warm page cache."""
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()
