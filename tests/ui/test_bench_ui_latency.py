"""benchmarks/bench_ui_latency.py runs end to end (tiny model, smallest setting) and writes
consistent JSON. The numbers of such a smoke run mean little; the structure must hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_ui_latency.py"


@pytest.mark.slow
def test_the_latency_benchmark_runs_and_reports_every_phase(tmp_path):
    out = tmp_path / "latency.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "2", "--size", "64", "--panels", "1",
         "--idle", "0.3", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["target_ms"] == 100.0 and result["tick_ms"] == 10
    phases = result["phases"]
    assert list(phases) == ["idle", "start-up warm-up (imports)", "first run (model build)",
                            "warm run"]
    for name, s in phases.items():
        assert s["ticks"] > 0, name
        assert 0 <= s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"], name
        assert s["stalls_over_100ms"] <= s["ticks"]
        # a 10 ms timer cannot tick much more often than every 10 ms
        assert s["ticks"] <= s["seconds"] * 1000 / 10 * 1.2 + 5, name
    for name in phases:
        assert name in done.stdout
    assert "worst stall" in done.stdout
