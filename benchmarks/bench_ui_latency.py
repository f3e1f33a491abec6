"""Event-loop latency of the desktop window while the engine generates (tiny model).

    .venv/bin/python benchmarks/bench_ui_latency.py [--steps 20] [--size 256] [--panels 4] [--previews tiny]

A 10 ms QTimer runs on the UI thread of the real window; each tick records how late it came
(the gap minus 10 ms). That lateness is what an artist feels as a sluggish window: typing,
scrolling and previews all wait for the same loop. Phases: idle; the warm-up the window starts
1.5 s after it opens (the worker imports torch and diffusers: loading their native libraries
holds Python's GIL for a few hundred ms at a time); the first run (the worker builds the
model); a warm run. The target is no stall over 100 ms. ``--previews`` is Settings → Previews
(``factors``: 1/8-size previews; ``tiny``, or ``auto`` with the tiny model: full-size ones).

Prints a table and writes benchmarks/results/ui_latency.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TICK_MS = 10
TARGET_MS = 100.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = int(position), min(len(ordered) - 1, int(position) + 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(lateness_ms: list[float], seconds: float, busy_ms: list[float] | None = None) -> dict:
    busy_ms = busy_ms or [0.0]
    return {
        "busy_max_ms": round(max(busy_ms), 2),
        "busy_over_100ms": sum(1 for v in busy_ms if v > TARGET_MS),
        "ticks": len(lateness_ms),
        "seconds": round(seconds, 2),
        "mean_ms": round(statistics.fmean(lateness_ms), 2) if lateness_ms else 0.0,
        "p50_ms": round(percentile(lateness_ms, 0.50), 2),
        "p95_ms": round(percentile(lateness_ms, 0.95), 2),
        "p99_ms": round(percentile(lateness_ms, 0.99), 2),
        "max_ms": round(max(lateness_ms, default=0.0), 2),
        "stalls_over_100ms": sum(1 for v in lateness_ms if v > TARGET_MS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256, help="width and height in pixels")
    parser.add_argument("--panels", type=int, default=4)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of idle baseline")
    parser.add_argument("--previews", default="auto", choices=("auto", "factors", "tiny", "vae", "off"),
                        help="the preview decoder (auto: the tiny model's full-size tiny decoder)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ui_latency.json"))
    parser.add_argument("--stacks", action="store_true",
                        help="sample the UI thread's stack during late ticks and print where they went")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stylealigned-bench-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["STYLEALIGNED_CONFIG_DIR"] = str(work / "config")
    os.environ["STYLEALIGNED_DATA_DIR"] = str(work / "data")
    os.environ["STYLEALIGNED_CACHE_DIR"] = str(work / "cache")

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from stylealigned_desktop.session.model import Session
    from stylealigned_desktop.ui.support import DesktopConfig, apply_theme
    from stylealigned_desktop.ui.window import MainWindow

    app = QApplication([sys.argv[0]])
    apply_theme(app)
    window = MainWindow(DesktopConfig(model="tiny"))
    window.resize(1500, 940)
    window.show()
    session = Session()
    window.sessions.set_session(session)
    session.set_style_text("flat vector illustration.")
    session.set_reference_prompt("a lighthouse")
    for k in range(args.panels):
        session.add_panel(f"a fox, scene {k + 1}")
    session.update_settings(steps=args.steps, width=args.size, height=args.size, previews=args.previews)

    samples: list[float] = []
    busy: list[float] = []
    last = [time.perf_counter(), time.thread_time()]
    stacks: collections.Counter = collections.Counter()

    def tick() -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        samples.append(max(0.0, (now - last[0]) * 1000 - TICK_MS))
        busy.append((cpu - last[1]) * 1000)
        last[0], last[1] = now, cpu

    ui_thread = threading.get_ident()

    def sample_late_ticks() -> None:
        while True:
            time.sleep(0.005)
            if time.perf_counter() - last[0] > 0.05:
                frame = sys._current_frames().get(ui_thread)
                if frame is not None:
                    where = traceback.extract_stack(frame)[-6:]
                    stacks[" < ".join(f"{f.name} ({Path(f.filename).name}:{f.lineno})"
                                      for f in reversed(where))] += 1

    if args.stacks:
        threading.Thread(target=sample_late_ticks, daemon=True).start()

    timer = QTimer()
    timer.setTimerType(timer.timerType().PreciseTimer)
    timer.timeout.connect(tick)
    timer.start(TICK_MS)

    late_stacks: dict[str, list] = {}

    def measure(name: str, run) -> dict:
        samples.clear()
        busy.clear()
        stacks.clear()
        last[0], last[1] = time.perf_counter(), time.thread_time()
        started = time.perf_counter()
        run()
        late_stacks[name] = stacks.most_common(8)
        return summary(list(samples), time.perf_counter() - started, list(busy))

    def idle() -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(args.idle * 1000), loop.quit)
        loop.exec()

    def generate() -> None:
        loop = QEventLoop()
        window.worker.job_ended.connect(loop.quit)
        window.runs.generate()
        loop.exec()
        window.worker.job_ended.disconnect(loop.quit)
        job_states = [r.status for r in session.history]
        if not job_states or job_states[-1] != "finished":
            raise RuntimeError(f"the run did not finish: {window.run_bar.progress.format()}")

    def warm_up() -> None:
        loop = QEventLoop()
        window.worker.warm_up(on_done=lambda task: loop.quit())
        loop.exec()

    phases = {}
    for name, run in (("idle", idle), ("start-up warm-up (imports)", warm_up),
                      ("first run (model build)", generate), ("warm run", generate)):
        phases[name] = measure(name, run)
    timer.stop()
    window.ask = lambda *a, **k: "Don't save"
    window.close()

    import torch

    result = {
        "benchmark": "ui_event_loop_latency",
        "tick_ms": TICK_MS,
        "target_ms": TARGET_MS,
        "model": "tiny",
        "steps": args.steps,
        "size": args.size,
        "panels": args.panels,
        "previews": args.previews,
        "phases": phases,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    header = f"{'phase':26s} {'ticks':>6s} {'secs':>6s} {'p50':>7s} {'p95':>7s} {'p99':>7s} " \
             f"{'max':>7s} {'>100ms':>7s} {'busy max':>9s} {'busy>100':>9s}"
    print(f"UI event-loop lateness (ms) with a {TICK_MS} ms timer; tiny model, "
          f"{args.panels} panels, {args.size}px, {args.steps} steps, previews {args.previews}")
    print(header)
    print("-" * len(header))
    for name, s in phases.items():
        print(f"{name:26s} {s['ticks']:6d} {s['seconds']:6.1f} {s['p50_ms']:7.1f} "
              f"{s['p95_ms']:7.1f} {s['p99_ms']:7.1f} {s['max_ms']:7.1f} "
              f"{s['stalls_over_100ms']:7d} {s['busy_max_ms']:9.1f} {s['busy_over_100ms']:9d}")
    worst = max(s["max_ms"] for s in phases.values())
    print(f"worst stall {worst:.1f} ms: {'within' if worst <= TARGET_MS else 'OVER'} the "
          f"{TARGET_MS:.0f} ms target")
    print(f"load average at the end: {result['machine']['load_average']} ({os.cpu_count()} CPUs)")
    if args.stacks:
        for phase, top in late_stacks.items():
            print(f"\nwhere the UI thread was during late ticks, {phase} (5 ms samples):")
            for where, count in top:
                print(f"  {count:5d}  {where}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
