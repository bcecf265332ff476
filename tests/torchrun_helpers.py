"""Run a command under `torchrun` with two CPU processes (shared by the distributed tests)."""

from __future__ import annotations

import os
import subprocess
import sys


def torchrun(*arguments: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --standalone --nproc_per_node 2 ARGUMENTS...`, one
    thread per process; fails the test with the output's tail when the exit code is not 0."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TINY_SAMPLE_DELAY", None)  # the resume tests' slow-down must not leak in
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", *arguments]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
