"""benchmarks/gpu_check.py runs its whole path on the CPU with the tiny model and writes JSON.

Its numbers mean nothing here (no GPU, no memory probe); what is checked is that every memory
mode ran with and without a ControlNet, that the pictures of each mode were compared with fast's
and matched, and that the memory model's plan is recorded next to what ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_plumbing_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--device", "cpu",
         "--dtype", "float32", "--size", "64", "--steps", "2", "--low-steps", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["format"] == "stylealigned-gpu-check" and result["panels"] == 4
    cases = {(c["mode"], c["controlnets"]): c for c in result["cases"]}
    assert set(cases) == {(m, n) for m in ("fast", "balanced", "low") for n in (0, 1)}
    for (mode, _nets), case in cases.items():
        assert case["identical_to_fast"] is True
        assert case["micro_batch"] == case["planned_micro_batch"] == 4  # the CPU: every panel at once
        assert case["peak_allocated_gb"] is None  # no CUDA here
        assert case["seconds_per_set"] > 0 and case["planned_peak_gb"] > 0
        assert case["scaled_to_steps"] is (mode == "low") and case["steps_run"] == (1 if mode == "low" else 2)
        assert case["vae_tiling"] is (mode == "low")
    assert "| 1 | low |" in done.stdout
