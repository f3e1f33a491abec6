#!/usr/bin/env python
"""What a panorama costs (spec section 14): a native panel against 2:1, 3:1 and 4:1 panoramas.

On the benchmark model of ``bench_sets.py`` (an SDXL-shaped UNet scaled for the CPU, random
weights, classifier-free guidance on), one reference and one panel, the panel square at the
model's native size or k times as wide, drawn as MultiDiffusion windows of the native size at
``--stride``. Per width it measures the CPU seconds of a denoising step (median over interleaved
rounds) and the peak memory of that step (a fresh process per width: peak RSS growth over the
state after loading and a warm-up run, read at the step's end, before the decode). The windows
fill micro-batches of ``--micro-batch`` rows, so memory should stay flat with the width (only the
panel's latent grows) and time grow about linearly in the number of windows, the reference's row
being the same in every case. Writes ``benchmarks/results/bench_panorama_cpu_<model>.json``.
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

import bench_references as br  # noqa: E402  (the step timer)
import bench_sets as bs  # noqa: E402  (the benchmark model, memory probes and machine facts)

PREFIX = "BENCH-PANORAMA "


def request_for(model, ratio: int, stride: int, micro_batch: int, steps: int = 1):
    from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest

    side = model.height  # the native size: the UNet's sample size
    return SetRequest(
        model="benchmark", style=GeneratedReference(bs.REFERENCE_PROMPT, 0),
        panels=(Panel("a harbour at dawn, wide shot", 100, size=(ratio * side, side)),),
        sampling=Sampling(steps=steps, guidance=bs.GUIDANCE, width=side, height=side, window_stride=stride),
        settings=bs._settings("prompts"), micro_batch=micro_batch, device="cpu", dtype="float32",
    )


def setup(args):
    """The benchmark model at a square native size, a multiple of 64 (a panel's sizes are)."""
    import torch

    from stylealigned_desktop.engine.generator import Engine

    bs._configure_torch(args.threads)
    side = bs._round_to(bs.default_size(args.scale)[0], 64)
    model = bs.bench_model(args.scale, args.head_dim, height=side, width=side)
    pipe = bs.build_pipeline(model, "cpu", torch.float32)
    return model, pipe, Engine(loader=lambda *a, **k: pipe)


def worker(args) -> None:
    """One width in a fresh process: peak RSS growth of a one-step run (after a warm-up)."""
    bs.fix_malloc_for_measuring()
    model, pipe, engine = setup(args)
    engine.generate(request_for(model, 1, args.stride, args.micro_batch))
    probe = bs.CpuMemoryProbe()
    probe.start()
    peaks = []
    result = engine.generate(request_for(model, args.worker, args.stride, args.micro_batch),
                             lambda event: peaks.append(probe.peak()) if type(event).__name__ == "Step" else None)
    probe.stop()
    windows = (result.metadata.get("windows") or {}).get("1", {}).get("windows", 1)
    print(PREFIX + json.dumps({"ratio": args.worker, "windows": windows, "peak_bytes": peaks[-1],
                               "method": probe.method}), flush=True)


def measure_memory(args, ratios: list[int]) -> dict[int, dict]:
    memory = {}
    for ratio in ratios:
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(ratio), "--stride", str(args.stride),
                   "--micro-batch", str(args.micro_batch), "--scale", str(args.scale), "--head-dim",
                   str(args.head_dim), "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith(PREFIX)]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"memory worker {ratio}:1 failed:\n{done.stderr[-3000:]}")
        memory[ratio] = json.loads(lines[-1].removeprefix(PREFIX))
        print(f"memory {ratio}:1 ({memory[ratio]['windows']} windows): {memory[ratio]['peak_bytes'] / 2**20:.1f} MiB")
    return memory


def measure_time(args, model, engine, pipe, ratios: list[int]) -> dict[int, list[float]]:
    timer = br.StepTimer(pipe)
    engine.generate(request_for(model, 1, args.stride, args.micro_batch), timer)  # warm-up
    samples: dict[int, list[float]] = {ratio: [] for ratio in ratios}
    for round_index in range(args.rounds):
        for ratio in (ratios if round_index % 2 == 0 else list(reversed(ratios))):
            timer.times = []
            engine.generate(request_for(model, ratio, args.stride, args.micro_batch), timer)
            samples[ratio].append(timer.times[0])
            print(f"  round {round_index + 1}/{args.rounds} {ratio}:1: {timer.times[0]:.3f} s/step cpu")
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", default="1,2,3,4", help="panel widths in native widths, comma-separated")
    parser.add_argument("--stride", type=int, default=8, help="window stride in latent pixels (default 8)")
    parser.add_argument("--micro-batch", type=int, default=4, help="window rows per UNet call")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--head-dim", type=int, default=bs.SDXL_HEAD_DIM)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny model, 1:1 and 2:1, 1 round")
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.scale, args.head_dim, args.ratios, args.rounds = 40, 16, "1,2", 1
    if args.worker is not None:
        worker(args)
        return 0
    ratios = sorted({int(r) for r in args.ratios.split(",")})
    started, load_start = time.perf_counter(), bs._loadavg()
    memory = measure_memory(args, ratios)
    model, pipe, engine = setup(args)
    samples = measure_time(args, model, engine, pipe, ratios)
    base_time, base_memory = statistics.median(samples[ratios[0]]), memory[ratios[0]]["peak_bytes"]
    base_rows = 1 + memory[ratios[0]]["windows"]  # the reference's row and the panel's
    rows = [{"ratio": ratio, "width": ratio * model.height, "height": model.height,
             "windows": memory[ratio]["windows"], "step_cpu_s_median": statistics.median(samples[ratio]),
             "step_cpu_s_runs": samples[ratio], "time_ratio_vs_first": statistics.median(samples[ratio]) / base_time,
             "unet_rows_ratio": (1 + memory[ratio]["windows"]) / base_rows,
             "peak_memory_mib": memory[ratio]["peak_bytes"] / 2**20,
             "memory_over_first_mib": (memory[ratio]["peak_bytes"] - base_memory) / 2**20} for ratio in ratios]
    print(f"{model.name}, native {model.height}x{model.height}, stride {args.stride}, "
          f"micro-batch {args.micro_batch}, CFG on")
    print(f"{'ratio':>6} {'windows':>8} {'s/step (cpu)':>13} {'vs 1:1':>7} {'rows ratio':>11} {'peak MiB':>9} {'+MiB':>7}")
    for row in rows:
        print(f"{row['ratio']:>4}:1 {row['windows']:>8} {row['step_cpu_s_median']:>13.3f} {row['time_ratio_vs_first']:>7.2f} "
              f"{row['unet_rows_ratio']:>11.2f} {row['peak_memory_mib']:>9.1f} {row['memory_over_first_mib']:>7.1f}")
    result = {
        "benchmark": "bench_panorama", "version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": bs._machine("cpu"), "load_average": {"start": load_start, "end": bs._loadavg()},
        "model": model.describe(), "stride": args.stride, "micro_batch": args.micro_batch, "guidance": bs.GUIDANCE,
        "timing": "process CPU seconds of one denoising step (its first UNet call to its Step event), "
                  "median over interleaved rounds",
        "memory_method": "fresh process per width; peak RSS growth over the state after loading and a warm-up "
                         "run, read at the end of the step (" + memory[ratios[0]]["method"] + ")",
        "rows": rows, "wall_s": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out) if args.out else bs.RESULTS / f"bench_panorama_cpu_{'quick' if args.quick else model.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
