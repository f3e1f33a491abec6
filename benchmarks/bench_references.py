#!/usr/bin/env python
"""What several references cost (spec section 11): the engine with R = 1, 2, 3, 4 references.

On the benchmark model of ``bench_sets.py`` (an SDXL-shaped UNet scaled for the CPU, random
weights, classifier-free guidance on), a set of ``--panels`` panels run in one micro-batch with
R generated references blended at equal weights. Per R it measures the CPU seconds of a denoising
step (median over interleaved rounds) and the peak memory (a fresh process per R: peak RSS growth
over the state after loading and a warm-up run), and compares the time with the FLOP model:

    cost(R) / cost(1) = (R + n (1 + x R)) / (1 + n (1 + x))

with x the extra FLOPs of a panel row attending to one more reference's tokens (counted by
``bench_sets.count_flops``) and n the panels. Each extra reference adds one plainly run UNet row
(recorded once per step) and x of a row to every panel; memory grows by its recorded keys and
values, not with the panels. Writes ``benchmarks/results/bench_references_<device>_<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_sets as bs  # noqa: E402  (the benchmark model, memory probes and machine facts)

PREFIX = "BENCH-REFERENCES "


def request_for(model, references: int, panels: int, steps: int, settings):
    from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest

    return SetRequest(
        model="benchmark",
        style=tuple(GeneratedReference(f"reference {r}: {bs.REFERENCE_PROMPT}", r) for r in range(references)),
        panels=tuple(Panel(f"panel {i}: a toy, macro photo", 100 + i) for i in range(panels)),
        sampling=Sampling(steps=steps, guidance=bs.GUIDANCE, width=model.width, height=model.height),
        settings=settings, micro_batch=panels, device="cpu", dtype="float32",
    )


class StepTimer:
    """CPU seconds of each denoising step: from its first UNet call to the engine's Step event."""

    def __init__(self, pipe):
        self.start: float | None = None
        self.times: list[float] = []
        pipe.unet.register_forward_pre_hook(self._unet_call)

    def _unet_call(self, module, args) -> None:
        if self.start is None:
            self.start = time.process_time()

    def __call__(self, event) -> None:
        from stylealigned_desktop.engine import events as ev

        if isinstance(event, ev.Step):
            self.times.append(time.process_time() - self.start)
            self.start = None


def setup(args):
    import torch

    from stylealigned_desktop.engine.generator import Engine

    bs._configure_torch(args.threads)
    model = bs.bench_model(args.scale, args.head_dim)
    pipe = bs.build_pipeline(model, "cpu", torch.float32)
    return model, pipe, Engine(loader=lambda *a, **k: pipe)


def worker(args) -> None:
    """One R in a fresh process: peak RSS growth of a one-step run (after a warm-up)."""
    bs.fix_malloc_for_measuring()
    model, pipe, engine = setup(args)
    settings = bs._settings(False)
    engine.generate(request_for(model, 1, 1, 1, settings))
    probe = bs.CpuMemoryProbe()
    probe.start()
    peaks = []
    engine.generate(request_for(model, args.worker, args.panels, 1, settings),
                    lambda event: peaks.append(probe.peak()) if type(event).__name__ == "Step" else None)
    probe.stop()
    print(PREFIX + json.dumps({"references": args.worker, "peak_bytes": peaks[-1], "method": probe.method}),
          flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", default="1,2,3,4", help="R values, comma-separated")
    parser.add_argument("--panels", type=int, default=4)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--head-dim", type=int, default=bs.SDXL_HEAD_DIM)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny model, R 1-2, 1 round")
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.scale, args.head_dim, args.references, args.panels, args.rounds = 40, 16, "1,2", 2, 1
    if args.worker is not None:
        worker(args)
        return 0
    counts = sorted({int(r) for r in args.references.split(",")})
    started, load_start = time.perf_counter(), bs._loadavg()

    memory = {}
    for r in counts:
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(r), "--panels", str(args.panels),
                   "--scale", str(args.scale), "--head-dim", str(args.head_dim), "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith(PREFIX)]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"memory worker R={r} failed:\n{done.stderr[-3000:]}")
        memory[r] = json.loads(lines[-1].removeprefix(PREFIX))
        print(f"memory R={r}: {memory[r]['peak_bytes'] / 2**20:.1f} MiB")

    model, pipe, engine = setup(args)
    settings = bs._settings(False)
    flops = bs.count_flops(model, settings)
    x = flops["shared_row_extra_fraction"]
    timer = StepTimer(pipe)
    engine.generate(request_for(model, 1, 1, 1, settings), timer)  # warm-up
    samples: dict[int, list[float]] = {r: [] for r in counts}
    loads = []
    for round_index in range(args.rounds):
        for r in (counts if round_index % 2 == 0 else list(reversed(counts))):
            timer.times = []
            engine.generate(request_for(model, r, args.panels, 1, settings), timer)
            samples[r].append(timer.times[0])
            print(f"  round {round_index + 1}/{args.rounds} R={r}: {timer.times[0]:.3f} s/step cpu")
        loads.append(bs._loadavg())

    n = args.panels
    base_time = statistics.median(samples[counts[0]])
    base_memory = memory[counts[0]]["peak_bytes"]
    rows = []
    for r in counts:
        step = statistics.median(samples[r])
        rows.append({
            "references": r,
            "step_cpu_s_median": step,
            "step_cpu_s_runs": samples[r],
            "time_ratio_vs_first": step / base_time,
            "flop_model_ratio": (r + n * (1 + x * r)) / (counts[0] + n * (1 + x * counts[0])),
            "peak_memory_mib": memory[r]["peak_bytes"] / 2**20,
            "memory_over_first_mib": (memory[r]["peak_bytes"] - base_memory) / 2**20,
        })
    print(f"{model.name}, {model.height}x{model.width}, {n} panels in one micro-batch, CFG on; "
          f"x = +{x * 100:.2f}% of a row per extra reference seen by a panel")
    print(f"{'R':>3} {'s/step (cpu)':>13} {'vs R=1':>8} {'FLOP model':>11} {'peak MiB':>9} {'+MiB':>7}")
    for row in rows:
        print(f"{row['references']:>3} {row['step_cpu_s_median']:>13.3f} {row['time_ratio_vs_first']:>8.3f} "
              f"{row['flop_model_ratio']:>11.3f} {row['peak_memory_mib']:>9.1f} {row['memory_over_first_mib']:>7.1f}")
    result = {
        "benchmark": "bench_references", "version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": bs._machine("cpu"), "load_average": {"start": load_start, "after_each_round": loads},
        "model": model.describe(), "panels": n, "micro_batch": n, "guidance": bs.GUIDANCE,
        "settings": settings.to_dict(), "shared_row_extra_fraction": x,
        "timing": "process CPU seconds of one denoising step (its first UNet call to its Step event), "
                  "median over interleaved rounds",
        "memory_method": "fresh process per R; peak RSS growth over the state after loading and a warm-up "
                         "run, read at the end of the step (" + memory[counts[0]]["method"] + ")",
        "rows": rows, "wall_s": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out) if args.out else bs.RESULTS / (
        f"bench_references_cpu_{'quick' if args.quick else model.name}_n{n}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
