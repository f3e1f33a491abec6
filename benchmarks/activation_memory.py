#!/usr/bin/env python
"""Peak memory of SDXL's pieces, counted without a GPU: the numbers behind the memory model.

Runs the real SDXL UNet, an SDXL ControlNet (``ControlNetModel.from_unet``) and the SDXL VAE,
built from ``benchmarks/sdxl_configs`` in float16 under ``FakeTensorMode`` (no memory, no
arithmetic), and counts live tensor bytes with torch's ``MemTracker``: parameters, the recorded
reference keys/values of the engine's shared layers, and the activation peak of one engine
micro-batch in ``replay`` mode (the layout the engine runs panels in) with classifier-free
guidance (two UNet rows per panel), with and without ControlNet residuals, and of one VAE
decode (float32 as SDXL's VAE forces it, float16 as the fp16-fix VAE allows).

What this does not count: the allocator's caching and fragmentation, cuDNN/cuBLAS workspaces,
the CUDA context. ``engine/memory.py`` adds a margin for those; ``benchmarks/gpu_check.py``
checks the model against ``torch.cuda.max_memory_allocated`` on a real GPU.

    .venv/bin/python benchmarks/activation_memory.py            # an hour or more per size on 2 shared cores
    .venv/bin/python benchmarks/activation_memory.py --sizes 1024 --quick

Writes ``benchmarks/results/activation_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_sets import load_config  # noqa: E402  (the published SDXL configs, "_" keys dropped)

GB = 1e9


def _total(snapshot: dict) -> int:
    """Live bytes over all devices of a MemTracker snapshot."""
    return sum(per_device["Total"] for per_device in snapshot.values())


def _tracked(fn, *externals):
    """Peak and final live bytes while ``fn()`` runs (only what it allocates, not ``externals``)."""
    import torch
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(*externals)
    with torch.no_grad(), tracker:
        start = _total(tracker.get_tracker_snapshot("current"))
        result = fn()
        end = _total(tracker.get_tracker_snapshot("current"))
    peak = _total(tracker.get_tracker_snapshot("peak"))
    return result, peak - start, end - start


def measure(sizes: list[int], panels: list[int], quick: bool, on_size=None) -> dict:
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode

    from stylealigned_desktop.engine.install import Installation
    from stylealigned_desktop.engine.settings import StyleAlignedSettings

    fp16 = torch.float16
    results: dict = {"sizes": {}, "panels": panels}
    with FakeTensorMode(allow_non_fake_inputs=True):
        torch.set_default_dtype(fp16)
        try:
            unet = UNet2DConditionModel.from_config(load_config("unet")).eval()
            controlnet = ControlNetModel.from_unet(unet).eval()
            vae16 = AutoencoderKL.from_config(load_config("vae")).eval()
        finally:
            torch.set_default_dtype(torch.float32)
        results["weights_gb"] = {
            "unet": sum(p.numel() * p.element_size() for p in unet.parameters()) / GB,
            "controlnet": sum(p.numel() * p.element_size() for p in controlnet.parameters()) / GB,
            "vae": sum(p.numel() * p.element_size() for p in vae16.parameters()) / GB,
        }
        installation = Installation(unet, StyleAlignedSettings())
        installation.state.halves_override = 2

        def unet_rows(rows: int, latent: int, residuals=None):
            x = torch.randn(rows, 4, latent, latent, dtype=fp16)
            context = torch.randn(rows, 77, 2048, dtype=fp16)
            added = {"text_embeds": torch.randn(rows, 1280, dtype=fp16), "time_ids": torch.randn(rows, 6, dtype=fp16)}
            down, mid = residuals if residuals is not None else (None, None)
            return unet(x, 500, encoder_hidden_states=context, added_cond_kwargs=added,
                        down_block_additional_residuals=down, mid_block_additional_residual=mid).sample

        def controlled_rows(rows: int, latent: int):
            x = torch.randn(rows, 4, latent, latent, dtype=fp16)
            context = torch.randn(rows, 77, 2048, dtype=fp16)
            added = {"text_embeds": torch.randn(rows, 1280, dtype=fp16), "time_ids": torch.randn(rows, 6, dtype=fp16)}
            image = torch.randn(rows, 3, latent * 8, latent * 8, dtype=fp16)
            down, mid = controlnet(x, 500, encoder_hidden_states=context, controlnet_cond=image,
                                   added_cond_kwargs=added, return_dict=False)
            return unet_rows(rows, latent, (down, mid))

        for size in sizes:
            latent = size // 8
            entry: dict = {}
            started = time.perf_counter()
            installation.state.cache.clear()
            installation.state.mode = "record"
            _, record_peak, cache_bytes = _tracked(lambda latent=latent: unet_rows(2, latent), unet)
            cached = dict(installation.state.cache)
            entry["reference_cache_gb"] = cache_bytes / GB
            entry["record_peak_gb"] = record_peak / GB
            installation.state.mode = "replay"
            for n in panels:
                _, peak, _ = _tracked(lambda n=n, latent=latent: unet_rows(2 * n, latent), unet, *_tensors(cached))
                entry[f"replay_{n}_panels_peak_gb"] = peak / GB
                if not quick:
                    _, peak, _ = _tracked(lambda n=n, latent=latent: controlled_rows(2 * n, latent),
                                          unet, controlnet, *_tensors(cached))
                    entry[f"replay_{n}_panels_controlnet_peak_gb"] = peak / GB
            installation.state.mode = "batch"
            if not quick:
                # (a tiled decode is one 1024x1024 tile's decode at a time plus the output picture;
                # MemTracker cannot follow a module called once per tile)
                for label, dtype in (("fp32", torch.float32), ("fp16", fp16)):
                    torch.set_default_dtype(dtype)
                    try:
                        vae = AutoencoderKL.from_config(load_config("vae")).eval()
                    finally:
                        torch.set_default_dtype(torch.float32)
                    z = torch.randn(1, 4, latent, latent, dtype=dtype)
                    _, peak, _ = _tracked(lambda vae=vae, z=z: vae.decode(z).sample, vae)
                    entry[f"vae_decode_{label}_peak_gb"] = peak / GB
            entry["seconds"] = round(time.perf_counter() - started, 1)
            results["sizes"][str(size)] = entry
            print(size, json.dumps(entry), flush=True)
            if on_size is not None:
                on_size(results)
        installation.remove()
    return results


def _tensors(cache: dict) -> list:
    """Every tensor the recorded reference holds (so the replay counts only its own memory)."""
    import torch

    found = []

    def walk(value):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif hasattr(value, "__dict__"):
            for item in vars(value).values():
                walk(item)

    walk(cache)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1024,1536", help="square sizes in pixels (default %(default)s)")
    parser.add_argument("--panels", default="1,2", help="panels per micro-batch (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="UNet only (no ControlNet, no VAE)")
    parser.add_argument("--out", default=str(HERE / "results" / "activation_memory.json"))
    args = parser.parse_args(argv)
    import torch

    sizes = [int(s) for s in args.sizes.split(",")]
    panels = [int(s) for s in args.panels.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}

    def write(results: dict) -> None:
        """After every size (a run takes long): sizes measured before, in this file, are kept."""
        merged = dict(results, torch=torch.__version__)
        merged["sizes"] = {**earlier.get("sizes", {}), **results["sizes"]}
        out.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")

    measure(sizes, panels, args.quick, on_size=write)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
