#!/usr/bin/env python
"""Where a denoising step's time goes: ``torch.profiler`` on the ``bench_sets.py`` CPU model.

Profiles one step of a plain pipeline batch and of the engine (at the given micro-batches, with
the prompts-only or the reference-picture settings) and prints, per case, the ops by self CPU
time, side by side. See ``docs/performance.md`` ("Where the extra time goes").

    python benchmarks/profile_engine.py --panels 8 --micro-batches 1,2,8 --settings reference
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_sets  # noqa: E402


class ProfilingRunner(bench_sets.Runner):
    """The benchmark's runner, profiling only what it times: each denoising step from its first
    UNet call to its end (not prompt encoding, previews or VAE decoding)."""

    profiler = None

    def _on_unet_call(self, module, args) -> None:
        if self._step_start is None and self.profiler is not None:
            self.profiler.start()
        super()._on_unet_call(module, args)

    def _on_step_end(self) -> None:
        super()._on_step_end()
        if self.profiler is not None:
            self.profiler.stop()
            self.profiler = None


def profile_case(runner: ProfilingRunner, case, steps: int) -> dict[str, float]:
    """Self CPU milliseconds per op in one denoising step (after a warm-up run), mean of ``steps``."""
    from torch.profiler import ProfilerActivity, profile

    runner.run(case, 1)
    totals: dict[str, float] = defaultdict(float)
    for _ in range(steps):
        runner.profiler = profile(activities=[ProfilerActivity.CPU])
        prof = runner.profiler
        runner.run(case, 1)
        for event in prof.key_averages():
            totals[event.key] += event.self_cpu_time_total / 1000.0 / steps
    return dict(totals)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=8)
    parser.add_argument("--micro-batches", default="1,2,8")
    parser.add_argument("--settings", choices=bench_sets.SETTINGS_GROUPS, default="reference")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    bench_sets._configure_torch(args.threads)
    import torch

    model = bench_sets.bench_model(10)
    pipe = bench_sets.build_pipeline(model, "cpu", torch.float32)
    runner = ProfilingRunner(pipe, model, "cpu", "float32", bench_sets._settings(args.settings))
    cases = [bench_sets.Case("plain", args.panels)]
    cases += [bench_sets.Case("engine", args.panels, int(m)) for m in args.micro_batches.split(",")]
    profiles = {case.key: profile_case(runner, case, args.steps) for case in cases}
    keys = list(profiles)
    ops = sorted({op for p in profiles.values() for op in p}, key=lambda op: -max(p.get(op, 0) for p in profiles.values()))
    print(f"self CPU ms per step, {args.panels} panels, {args.settings} settings, {args.threads} thread(s)")
    print(f"{'op':<58}" + "".join(f"{k:>12}" for k in keys))
    for op in ops[: args.top]:
        print(f"{op[:58]:<58}" + "".join(f"{profiles[k].get(op, 0):12.1f}" for k in keys))
    print(f"{'total':<58}" + "".join(f"{sum(profiles[k].values()):12.1f}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
