"""The engine's warm-up holds Python's GIL as little as it can (issue 30, item 12): a window's
thread waits out every hold. torch's native libraries load before ``import torch`` with the GIL
released, and no garbage collection scans the libraries while they are imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, threading, time
from stylealigned_desktop.engine import native_libraries

counts = [0]
done = threading.Event()

def other_thread():
    while not done.is_set():
        counts[0] += 1
        time.sleep(0)

threading.Thread(target=other_thread, daemon=True).start()
time.sleep(0.05)
before = counts[0]
loaded = native_libraries.load_without_the_gil()
ran = counts[0] - before
done.set()
maps = open("/proc/self/maps").read()
print("loaded:", sorted(p.name for p in loaded))
print("torch imported:", "torch" in sys.modules)
print("mapped:", "libtorch_cpu.so" in maps)
print("other thread ran:", ran)
import torch
print("conv:", float(torch.nn.functional.conv2d(torch.ones(1, 1, 3, 5), torch.ones(1, 1, 3, 3)).sum()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dlopen of torch's .so files")
def test_torchs_libraries_load_without_the_gil_and_torch_works_after():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    said = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert "libtorch_cpu.so" in said["loaded"] and "libc10.so" in said["loaded"]
    assert said["torch imported"] == "False"  # loaded as libraries, not by an import
    assert said["mapped"] == "True"
    # the libraries' static initialisers take hundreds of ms; with the GIL held the other
    # thread could not take a single step in them
    assert int(said["other thread ran"]) > 100
    assert float(said["conv"]) == 27.0  # 3 positions × 9 ones: torch imported and works


COLLECTIONS = """
import gc
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
from stylealigned_desktop.engine.maker import this_computer
engine = this_computer()
engine.warm_up()
print("collections:", collections)
print("enabled:", gc.isenabled())
print("frozen:", gc.get_freeze_count())
"""


def test_the_warm_up_imports_the_libraries_without_a_garbage_collection():
    """Each automatic full collection during the imports scanned every object made so far
    (50 to 250 ms of CPU with the GIL held, seven of them in a warm-up); young generations
    scan only the newest objects."""
    done = subprocess.run([sys.executable, "-c", COLLECTIONS], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    said = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert "2" not in said["collections"]  # no full collection (young ones scan few objects)
    assert said["enabled"] == "True"  # automatic collection is back for what comes later
    assert int(said["frozen"]) > 100_000  # torch, diffusers, transformers: out of later scans
