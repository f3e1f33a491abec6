#!/usr/bin/env python
"""Seconds per set and peak GPU memory of every memory mode, on full-size SDXL (issue 12).

Builds SDXL base 1.0 from its published configs (``benchmarks/sdxl_configs``: UNet, both CLIP
text encoders, VAE) with random weights in float16 on the GPU (random weights cost exactly what
real ones cost), and an SDXL ControlNet from that UNet (``ControlNetModel.from_unet``). Then,
for a set of 4 panels + the reference at 1024x1024, 50 steps, CFG on, it runs the engine in
each memory mode (fast, balanced, low), without and with one ControlNet (every panel
controlled), and reports:

* seconds per set (``Engine.generate``: text encoding, denoising, VAE decodes);
* peak ``torch.cuda.max_memory_allocated`` over the run (the pipeline already placed);
* the micro-batch and the peak the memory model planned for that mode (``engine/memory.py``);
* whether the pictures equal those of ``fast`` (they must: same kernels, same device).

``low`` (sequential offload) moves every weight in for every layer call and is slow; it runs
``--low-steps`` steps (default 10) and its seconds per set are scaled to ``--steps``
(``per_step * steps + the rest``), which the JSON says. The whole check is meant to finish in
under 6 minutes on one GPU.

    .venv/bin/python benchmarks/gpu_check.py                     # a CUDA GPU
    .venv/bin/python benchmarks/gpu_check.py --tiny --device cpu # plumbing smoke test, seconds

Writes ``benchmarks/results/gpu_check_<device>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
if str(ROOT) not in sys.path:  # runnable from a checkout without installing the package
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_sets import load_config  # noqa: E402  (the published SDXL configs, "_" keys dropped)

MODES = ("fast", "balanced", "low")
PANELS = 4


def build_sdxl(device, dtype):
    """SDXL base 1.0 with random weights, initialised on ``device`` in ``dtype``."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from stylealigned_desktop.engine.generator import make_scheduler
    from stylealigned_desktop.engine.models import freeze
    from stylealigned_desktop.engine.tiny import write_tokenizer_files

    with tempfile.TemporaryDirectory(prefix="gpu-check-tok-") as tmp:
        folder = write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(folder, pad_token="<|endoftext|>", model_max_length=77)
        tokenizer_2 = CLIPTokenizer.from_pretrained(folder, pad_token="!", model_max_length=77)
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            unet = UNet2DConditionModel.from_config(load_config("unet"))
            vae = AutoencoderKL.from_config(load_config("vae"))
            text_encoder = CLIPTextModel(CLIPTextConfig(**load_config("text_encoder")))
            text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**load_config("text_encoder_2")))
    finally:
        torch.set_default_dtype(default_dtype)
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=make_scheduler(load_config("scheduler"), "ddim"),
    )
    freeze(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny(device, dtype):
    from stylealigned_desktop.engine.models import freeze
    from stylealigned_desktop.engine.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline().to(device=device, dtype=dtype)
    freeze(pipe)
    return pipe


def save_controlnet(pipe, folder: Path) -> Path:
    """An SDXL-shaped ControlNet from the pipeline's UNet, saved as a diffusers folder."""
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(1)
    controlnet = ControlNetModel.from_unet(pipe.unet)
    controlnet.save_pretrained(folder, safe_serialization=True)
    del controlnet
    return folder


def control_picture(folder: Path, size: int) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).rectangle((size // 5, size // 4, 4 * size // 5, 3 * size // 4), outline="white", width=8)
    path = folder / "control.png"
    image.save(path)
    return path


def request_for(args, steps: int, mode: str, controlnet: str | None, picture: Path):
    from stylealigned_desktop.engine.request import (
        GeneratedReference,
        Panel,
        PanelControl,
        Sampling,
        SetRequest,
    )

    control = PanelControl(str(picture), "map", map_kind="canny", scale=0.8) if controlnet else None
    return SetRequest(
        model="tiny" if args.tiny else "gpu-check",
        style=GeneratedReference("a lighthouse, watercolour", 1),
        panels=tuple(Panel(f"panel {i}, watercolour", 10 + i, control) for i in range(PANELS)),
        sampling=Sampling(steps=steps, guidance=5.0, width=args.size, height=args.size, scheduler="ddim"),
        device=args.device,
        dtype=args.dtype,
        memory=mode,
        controlnet_canny=controlnet,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--low-steps", type=int, default=10, help="steps actually run in low mode")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--tiny", action="store_true", help="the tiny model (plumbing smoke test)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    from stylealigned_desktop.engine import memory as mem
    from stylealigned_desktop.engine.generator import Engine
    from stylealigned_desktop.engine.models import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    cuda = device.type == "cuda"
    started = time.perf_counter()
    pipe = (build_tiny if args.tiny else build_sdxl)(device, dtype)
    built_s = time.perf_counter() - started
    engine = Engine(loader=lambda *a, memory="fast", **k: mem.place_pipeline(pipe, memory, device) or pipe)

    results = {
        "format": "stylealigned-gpu-check", "version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": "tiny" if args.tiny else "sdxl-base-1.0 random weights", "dtype": str(dtype).removeprefix("torch."),
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "device_total_gb": mem.device_total_gb(device), "size": args.size, "panels": PANELS,
        "steps": args.steps, "low_steps": args.low_steps, "build_s": round(built_s, 1), "cases": [],
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        folder = Path(tmp)
        picture = control_picture(folder, args.size)
        controlnet = "tiny" if args.tiny else str(save_controlnet(pipe, folder / "controlnet"))
        fast_latents: dict[tuple, np.ndarray] = {}
        for with_control in (False, True):
            net = controlnet if with_control else None
            for mode in args.modes.split(","):
                steps = args.low_steps if mode == "low" else args.steps
                request = request_for(args, steps, mode, net, picture)
                if mode != "fast" and (with_control, steps) not in fast_latents:
                    # the pictures every mode must reproduce (for low: fast at low mode's steps)
                    reference = engine.generate(replace(request, memory="fast"))
                    fast_latents[(with_control, steps)] = _stack(reference)
                case = run_case(engine, request, pipe, device, args.steps)
                latents = case.pop("latents")
                if mode == "fast":
                    fast_latents.setdefault((with_control, steps), latents)
                case.update(controlnets=int(with_control), identical_to_fast=bool(
                    np.array_equal(fast_latents[(with_control, steps)], latents, equal_nan=True)))
                results["cases"].append(case)
                print(json.dumps(case), flush=True)
    results["total_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out) if args.out else RESULTS / f"gpu_check_{'tiny_' if args.tiny else ''}{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"wrote {out} in {results['total_s']} s")
    return 0


def _stack(result):
    return np.stack([result.latents[i].numpy() for i in [None, *sorted(result.panels)]])


def run_case(engine, request, pipe, device, steps_wanted: int) -> dict:
    """One set in one memory mode: seconds, peak memory, what the memory model planned."""
    import torch

    from stylealigned_desktop.engine import events as ev
    from stylealigned_desktop.engine import memory as mem
    from stylealigned_desktop.engine.workload import workload

    cuda = device.type == "cuda"
    engine.pipeline(request.model, request.device, request.dtype, memory=request.memory)  # placed first
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    at_start = torch.cuda.memory_allocated(device) if cuda else 0
    step_ends: list[float] = []

    def on_event(event):
        if isinstance(event, ev.Step):
            if cuda:
                torch.cuda.synchronize(device)
            step_ends.append(time.perf_counter())

    started = time.perf_counter()
    result = engine.generate(request, on_event)
    if cuda:
        torch.cuda.synchronize(device)
    measured = time.perf_counter() - started
    steps = request.sampling.steps
    per_step = (step_ends[-1] - step_ends[0]) / (len(step_ends) - 1) if len(step_ends) > 1 else measured
    plan = mem.plan(request.memory, mem.device_total_gb(device), workload(request, pipe), PANELS)
    return {
        "mode": request.memory, "steps_run": steps,
        "seconds_per_set": round(measured + per_step * (steps_wanted - steps), 2),
        "scaled_to_steps": steps != steps_wanted, "measured_s": round(measured, 2),
        "per_step_s": round(per_step, 4),
        "peak_allocated_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 3) if cuda else None,
        "allocated_at_start_gb": round(at_start / 1e9, 3) if cuda else None,
        "micro_batch": result.metadata["micro_batch"], "planned_micro_batch": plan.micro_batch,
        "planned_peak_gb": round(plan.peak_gb, 3), "vae_tiling": result.metadata["vae_tiling"],
        "latents": _stack(result),
    }


def table(results: dict) -> str:
    lines = ["| ControlNets | mode | s per set | peak GB (planned) | micro-batch (planned) | same pictures |",
             "|---|---|---|---|---|---|"]
    for c in results["cases"]:
        scaled = f" ({c['steps_run']} steps run)" if c["scaled_to_steps"] else ""
        peak = "–" if c["peak_allocated_gb"] is None else f"{c['peak_allocated_gb']:.2f}"
        lines.append(f"| {c['controlnets']} | {c['mode']} | {c['seconds_per_set']:.1f}{scaled} | {peak} "
                     f"({c['planned_peak_gb']:.2f}) | {c['micro_batch']} ({c['planned_micro_batch']}) | "
                     f"{'yes' if c['identical_to_fast'] else 'NO'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
