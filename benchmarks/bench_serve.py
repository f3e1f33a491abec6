#!/usr/bin/env python
"""Throughput of the StyleAligned server: panels per hour with 1 and 2 replicas, how close the
sharded speed-up comes to its ideal, and what streaming over HTTP costs versus the engine
in-process.

A set of ``n`` panels costs ``n + 1`` rows per step on one replica (the reference and the
panels); sharded over ``K`` replicas each computes its ``n / K`` panels *and* the reference, so
the ideal speed-up is ``(n + 1) / (n / K + 1)``, not ``K``. Efficiency is the measured speed-up
over that ideal. The streaming overhead is a 1-replica server set against the same set made by
``Engine.generate`` in this process with the same number of threads (or the same GPU).

Every case runs a warm-up set (model load, first kernels) and then ``--rounds`` timed sets; the
medians are reported. Results: a table on stdout and JSON in ``benchmarks/results/``
(docs/performance.md, "Server").

CPU (default): the built-in ``tiny`` model, 2 CPUs, one per replica. GPU: ``--model`` a real
SDXL source, ``--gpus-per-replica 1``, ``--replicas 1`` on a one-GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
if str(ROOT) not in sys.path:  # runnable from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

OVERHEAD_TARGET = 0.03
"""Streaming overhead versus in-process, at most this share of a set's time (issue 13)."""


def ideal_speedup(panels: int, replicas: int) -> float:
    """Each of ``replicas`` shards computes the reference and ``panels / replicas`` panels."""
    return (panels + 1) / (panels / replicas + 1)


def make_request(args):
    from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest

    subjects = ["a harbour", "a lighthouse", "a ship", "a gull", "a map", "a storm", "a pier", "a net",
                "a rope", "a crab", "a sail", "an anchor", "a buoy", "a wave", "a boat", "a keeper"]
    panels = tuple(Panel(f"{subjects[i % len(subjects)]}, ink wash", 100 + i) for i in range(args.panels))
    return SetRequest(model=args.model, style=GeneratedReference("a coastal town, ink wash", 7), panels=panels,
                      sampling=Sampling(steps=args.steps, guidance=5.0, width=args.width, height=args.height,
                                        scheduler="euler"),
                      micro_batch=args.micro_batch, device=args.device, dtype=args.dtype)


def timed(make_set, rounds: int) -> list[float]:
    make_set()  # warm-up: model load, first kernels
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        make_set()
        times.append(time.perf_counter() - started)
    return times


def in_process(args, request) -> list[float]:
    import torch

    from stylealigned_desktop.engine.generator import Engine

    if args.device == "cpu" or not torch.cuda.is_available():
        torch.set_num_threads(int(args.cpus_per_replica))
    engine = Engine()
    times = timed(lambda: engine.generate(request), args.rounds)
    engine.unload()
    return times


def served(args, request, replicas: int, token_file: Path, port: int) -> list[float]:
    """A set's times on a server of ``replicas`` (Serve keeps its first HTTP port: one for all)."""
    from stylealigned_desktop.server.client import ServerEngine
    from stylealigned_desktop.server.launch import ServerOptions, start

    started = start(ServerOptions(models=(args.model,), replicas=replicas, port=port,
                                  gpus_per_replica=args.gpus_per_replica, cpus_per_replica=args.cpus_per_replica,
                                  token_file=str(token_file), upload_dir=str(token_file.parent / "uploads")))
    client = ServerEngine(started.url, started.token)
    try:
        return timed(lambda: client.generate(request), args.rounds)
    finally:
        client.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--panels", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus-per-replica", type=float, default=1.0)
    parser.add_argument("--gpus-per-replica", type=float, default=1.0)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs Ray may use (default 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import ray
    from ray import serve

    request = make_request(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    inproc = in_process(args, request)
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    cases = {}
    try:
        with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()
            for k in args.replicas:
                cases[k] = served(args, request, k, Path(folder) / "token", port)
    finally:
        serve.shutdown()
        ray.shutdown()

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    n = args.panels
    inproc_s = statistics.median(inproc)
    rows = []
    base = statistics.median(cases[min(cases)]) if cases else None
    for k, times in cases.items():
        set_s = statistics.median(times)
        speedup = base / set_s if base else None
        rows.append({"replicas": k, "set_s": set_s, "set_s_runs": times, "panels_per_hour": n / set_s * 3600,
                     "speedup": speedup, "ideal_speedup": ideal_speedup(n, k),
                     "efficiency": speedup / ideal_speedup(n, k) if speedup else None})
    overhead = (statistics.median(cases[1]) - inproc_s) / inproc_s if 1 in cases else None
    result = {
        "benchmark": "bench_serve", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": device,
                    "load_average_1min": load},
        "request": {"model": args.model, "panels": n, "steps": args.steps, "width": args.width,
                    "height": args.height, "micro_batch": args.micro_batch},
        "rounds": args.rounds, "in_process_set_s": inproc_s, "in_process_runs": inproc,
        "in_process_panels_per_hour": n / inproc_s * 3600, "servers": rows,
        "streaming_overhead": overhead, "overhead_target": OVERHEAD_TARGET,
    }
    print(f"{n} panels, {args.steps} steps, {args.width}x{args.height}, {args.model} on {device} "
          f"(load average {load})")
    print(f"in process: {inproc_s:.2f} s a set, {n / inproc_s * 3600:.0f} panels/h")
    print("| replicas | s / set | panels / h | speed-up | ideal (n+1)/(n/K+1) | efficiency |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['replicas']} | {row['set_s']:.2f} | {row['panels_per_hour']:.0f} | "
              f"{row['speedup']:.2f} | {row['ideal_speedup']:.2f} | {row['efficiency']:.0%} |")
    if overhead is not None:
        print(f"streaming overhead (1 replica vs in process): {overhead:+.1%} (target under "
              f"{OVERHEAD_TARGET:.0%})")
    out = args.out or RESULTS / f"bench_serve_{'gpu' if device != 'cpu' else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
