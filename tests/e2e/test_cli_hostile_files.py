"""The command line never waits on, or swallows, a file that is not a regular file (issue 23,
item 7): the real CLI in a subprocess, with a time limit and a memory cap, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT = 60  # seconds; the refusal itself comes before any model or connection
MEMORY_CAP = 3 * 2**30  # bytes of address space: /dev/zero read whole would pass it
GENERATE = ["generate", "--model", "tiny", "--reference-prompt", "a train", "--prompt", "a car",
            "--steps", "2", "--width", "64", "--height", "64", "--quiet"]

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    try:
        return subprocess.run([sys.executable, "-m", "stylealigned_desktop.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=TIME_LIMIT, preexec_fn=_cap_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the command hung (still running after {TIME_LIMIT} s)")


@pytest.mark.parametrize("token", ["pipe", "/dev/zero"])
def test_a_token_file_that_is_a_fifo_or_a_device_is_refused_at_once(tmp_path, token):
    os.mkfifo(tmp_path / "pipe")  # reading it would wait for a writer forever
    done = run_cli(*GENERATE, "--out", "o", "--server", "http://127.0.0.1:9", "--token-file", token,
                   cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (f"stylealigned: error: --token-file: {token}: cannot read the token: "
                                   "not a regular file (a pipe, a device or a socket)")
