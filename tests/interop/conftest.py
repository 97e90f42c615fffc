"""Shared fixtures of the interop tier: the `upcycle` binary under test and a scratch directory.

ctest runs each test_*.py with UPCYCLE_BINARY set (tests/interop/CMakeLists.txt). Torch gets one
thread: ctest runs two test files at once on CI's two cores.
"""
import os
import pathlib
import subprocess

import pytest
import torch
import transformers

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()


class UpcycleFailed(AssertionError):
    pass


class Upcycle:
    """Runs the built binary; a non-zero exit fails the test with upcycle's own message."""

    def __init__(self, binary):
        self.binary = binary

    def __call__(self, *args, expect_rc=0, threads=1):
        cmd = [self.binary, *map(str, args)]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if expect_rc is not None and proc.returncode != expect_rc:
            raise UpcycleFailed(f"{' '.join(cmd)}\nexit {proc.returncode} (wanted {expect_rc})\n"
                                f"stdout: {proc.stdout[-4000:]}\nstderr: {proc.stderr[-4000:]}")
        return proc


@pytest.fixture(scope="session")
def upcycle():
    binary = os.environ.get("UPCYCLE_BINARY")
    if not binary or not os.path.exists(binary):
        raise RuntimeError("UPCYCLE_BINARY is not set to the built binary: run these tests through ctest")
    return Upcycle(binary)


@pytest.fixture(scope="session")
def test_data_dir():
    return pathlib.Path(os.environ["UPCYCLE_TEST_DATA_DIR"])
