#!/usr/bin/env python
"""Speed and memory of StyleAligned sets: a plain SDXL batch vs. ``style_aligned`` vs. the engine.

For sets of 1, 2, 4, 8 and 16 panels (plus the reference), with classifier-free guidance on,
it measures seconds per denoising step and peak memory of

* ``plain``          a plain SDXL pipeline batch of reference + panels, no sharing;
* ``style_aligned``  the same batch inside the full-batch ``style_aligned`` context manager;
* ``engine-mbM``     the storyboard engine, reference branch once per step, panels M at a time;
* with ``--floors``: ``unshared-mbM`` and ``keys-mbM``, the engine with settings that share
  nothing / only the reference's keys and values (what micro-batching costs on the machine, and
  the least work of the method), and the engine's ratio to ``keys-mbM``;
* with ``--characters 0,1,2``: instead, only the engine, with that many characters (spec
  section 13) named in every panel, side by side (what each character costs).

It prints a table and writes JSON (``benchmarks/results/``). See ``docs/performance.md``.

Models are built from SDXL's published configs (``benchmarks/sdxl_configs``) with random weights:
random weights cost exactly what real ones cost.

* Default (CPU): an SDXL-shaped UNet, the real block structure (block types, 2 resnets per block,
  transformer depths 1/2/10, text_time embedding) with channels and tokens of every attention
  level divided by the same factor ``--scale`` (10: channels 32/64/128 at 320x320, 8 text tokens,
  head size 64 as SDXL). Linear layers, convolutions and attention then all cost 1/scale^3 of
  SDXL's, so attention keeps its share of the cost.
* ``--full-sdxl`` (for a GPU): the real SDXL UNet at 1024x1024 in float16.

Text encoders and VAE are tiny random CLIP / AutoencoderKL models with the dimensions the UNet
expects (their cost is not measured: only denoising steps are timed, from the first UNet call of
a step to its end, which excludes prompt encoding, previews and VAE decoding).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = HERE / "sdxl_configs"
RESULTS = HERE / "results"
if str(ROOT) not in sys.path:  # runnable from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

RATIO_TARGET = 1.12
"""(b)/(a), and (c)/(a) at micro-batches of 2 and more, per image, at most (issue 15)."""
RATIO_TARGET_MB1 = 1.20
"""(c)/(a) at micro-batch 1, per image, at most (issue 15)."""
MEMORY_GROWTH_TARGET = 1.05
"""Engine peak memory at the largest set vs. 2 panels, at most (issue 15)."""
SETTINGS_GROUPS = ("prompts", "reference")
"""The prompts-only defaults, and the reference-picture defaults (shared GroupNorm, shift ln 2)."""
GUIDANCE = 5.0
REFERENCE_PROMPT = "a toy train, macro photo"
SDXL_HEAD_DIM = 64
SDXL_TEXT_TOKENS = 77
METHODS = ("plain", "style_aligned", "engine")
MICRO_BATCHED = ("engine", "unshared", "keys")
"""Methods run by the engine in micro-batches. The two floors (``--floors``): ``unshared`` shares
nothing, plain attention in the engine's call pattern (what micro-batching itself costs);
``keys`` shares only the reference's keys and values, no AdaIN, shared GroupNorm or shift (the
least any StyleAligned setting must compute: attention over twice the keys)."""
FLOORS = MICRO_BATCHED[1:]
RESULT_PREFIX = "BENCH-RESULT "
CHARACTERS = (("Mira", "boy"), ("Theo", "dog"), ("Juno", "fox"), ("Ansel", "owl"))
"""``--characters``: names and one-token descriptions (the scaled model reads 8 text tokens, the
quick one 4: each description must fit beside the others for its subject mask to be found)."""
MEMORY_STEPS_WITH_CHARACTERS = 2
"""Steps of a memory run with ``--characters``: sharing with the anchors starts at step 1."""


# -- the benchmark model ---------------------------------------------------------------------------
def load_config(component: str) -> dict:
    """A published SDXL component config from ``benchmarks/sdxl_configs`` (``_`` keys dropped)."""
    folder = CONFIGS / component
    path = folder / ("scheduler_config.json" if component == "scheduler" else "config.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def default_size(scale: int) -> tuple[int, int]:
    """(height, width), multiples of 32, with 1024*1024/scale pixels as nearly as possible.

    Tokens per attention level are then divided by (about) ``scale``; near-square (aspect <= 4/3).
    """
    target = 1024 * 1024 / scale
    best = None
    for height in range(64, 1025, 32):
        for width in range(height, 4 * height // 3 + 1, 32):
            key = (round(abs(math.log(height * width / target)), 4), width - height)
            if best is None or key < best[0]:
                best = (key, (height, width))
    return best[1]


@dataclass(frozen=True)
class BenchModel:
    """The UNet to measure and the sizes of everything around it."""

    scale: int
    head_dim: int
    height: int
    width: int
    text_tokens: int
    text_hidden: tuple[int, int]
    """Hidden sizes of the two text encoders; their sum is the cross-attention width."""
    time_embed_dim: int
    unet_config: dict

    @property
    def name(self) -> str:
        return "sdxl" if self.scale == 1 else f"sdxl-scaled-{self.scale}"

    @property
    def latent_hw(self) -> tuple[int, int]:
        return self.height // 8, self.width // 8

    @property
    def pooled_dim(self) -> int:
        return self.text_hidden[1]

    def attention_levels(self) -> list[dict]:
        """Per attention level: channels, heads, tokens (at this size) and self-attention layers."""
        cfg = self.unet_config
        depth = cfg["transformer_layers_per_block"]
        layers_per_block = cfg["layers_per_block"]
        latent_h, latent_w = self.latent_hw
        levels = []
        for i, kind in enumerate(cfg["down_block_types"]):
            if "CrossAttn" not in kind:
                continue
            n_layers = depth[i] * layers_per_block + depth[i] * (layers_per_block + 1)  # down + up
            if i == len(cfg["down_block_types"]) - 1:
                n_layers += depth[i]  # the mid block runs at the last level
            channels = cfg["block_out_channels"][i]
            levels.append({
                "level": i,
                "channels": channels,
                "heads": cfg["attention_head_dim"][i],
                "tokens": (latent_h >> i) * (latent_w >> i),
                "self_attention_layers": n_layers,
            })
        return levels

    def describe(self) -> dict:
        return {
            "name": self.name,
            "scale": self.scale,
            "head_dim": self.head_dim,
            "height": self.height,
            "width": self.width,
            "latent": list(self.latent_hw),
            "text_tokens": self.text_tokens,
            "text_hidden": list(self.text_hidden),
            "attention_levels": self.attention_levels(),
            "unet_config": self.unet_config,
        }


def bench_model(scale: int, head_dim: int = SDXL_HEAD_DIM, height: int | None = None,
                width: int | None = None) -> BenchModel:
    """SDXL with channels (and, through the default size, tokens) divided by ``scale``.

    ``scale=1`` with ``head_dim=64`` is the published SDXL UNet config, unchanged.
    """
    cfg = load_config("unet")
    if scale < 1:
        raise ValueError(f"--scale must be at least 1, got {scale}")
    bad = [c for c in cfg["block_out_channels"] if c % scale]
    if bad:
        raise ValueError(f"--scale {scale} does not divide SDXL's channels {cfg['block_out_channels']}")
    channels = [c // scale for c in cfg["block_out_channels"]]
    heads = []
    for i, (kind, c) in enumerate(zip(cfg["down_block_types"], channels)):
        if "CrossAttn" in kind and c % head_dim:
            raise ValueError(
                f"--head-dim {head_dim} does not divide {c} channels (attention level {i} at "
                f"--scale {scale}); pick a head size that divides {channels[1:]}"
            )
        heads.append(max(1, c // head_dim))
    default_h, default_w = default_size(scale)
    height, width = height or default_h, width or default_w
    for name, value in (("height", height), ("width", width)):
        if value % 32 or value < 64:
            raise ValueError(f"--{name} must be a multiple of 32 and at least 64, got {value}")
    text_hidden = (_round_to(768 / scale, 16), _round_to(1280 / scale, 16))
    time_embed_dim = _round_to(cfg["addition_time_embed_dim"] / scale, 2)
    text_tokens = max(4, round(SDXL_TEXT_TOKENS / scale))
    cfg.update(
        block_out_channels=channels,
        attention_head_dim=heads,  # diffusers' SDXL configs name the number of heads so
        norm_num_groups=math.gcd(cfg["norm_num_groups"], *channels),
        cross_attention_dim=sum(text_hidden),
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=6 * time_embed_dim + text_hidden[1],
        sample_size=height // 8,
    )
    return BenchModel(scale, head_dim, height, width, text_tokens, text_hidden, time_embed_dim, cfg)


def _tokenizer(folder: Path, pad_token: str, max_length: int):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder), pad_token=pad_token, model_max_length=max_length)


def _text_encoder(cls, tokenizer, hidden: int, projection: int, tokens: int):
    from transformers import CLIPTextConfig

    heads = hidden // 64 if hidden % 64 == 0 else hidden // 16
    return cls(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden,
        num_attention_heads=heads, num_hidden_layers=2, max_position_embeddings=tokens,
        hidden_act="gelu", projection_dim=projection, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))


def build_pipeline(model: BenchModel, device: str, dtype, seed: int = 0):
    """A ``StableDiffusionXLPipeline``: the benchmark UNet, tiny text encoders and VAE, DDIM."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from stylealigned_desktop.engine.generator import make_scheduler
    from stylealigned_desktop.engine.tiny import write_tokenizer_files

    with tempfile.TemporaryDirectory(prefix="bench-tok-") as tmp:
        folder = write_tokenizer_files(Path(tmp))
        tokenizer = _tokenizer(folder, "<|endoftext|>", model.text_tokens)
        tokenizer_2 = _tokenizer(folder, "!", model.text_tokens)
    torch.manual_seed(seed)
    # Initialise on the target device and in the target dtype: the full SDXL UNet then takes
    # seconds on a GPU and never exists in float32 next to its float16 copy.
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            unet = UNet2DConditionModel.from_config(model.unet_config)
    finally:
        torch.set_default_dtype(default_dtype)
    text_encoder = _text_encoder(CLIPTextModel, tokenizer, model.text_hidden[0],
                                 model.text_hidden[0], model.text_tokens)
    text_encoder_2 = _text_encoder(CLIPTextModelWithProjection, tokenizer, model.text_hidden[1],
                                   model.pooled_dim, model.text_tokens)
    vae_config = load_config("vae")
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 16, 16),
        layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=model.height,
        scaling_factor=vae_config["scaling_factor"],
    )
    scheduler = make_scheduler(load_config("scheduler"), "ddim")
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
    )
    pipe.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    for module in (unet, vae, text_encoder, text_encoder_2):
        module.eval()
    return pipe


# -- FLOPs -----------------------------------------------------------------------------------------
def count_flops(model: BenchModel, settings) -> dict:
    """FLOPs of one UNet pass per image, plain vs. a panel row that shares (meta device).

    Counted with ``FlopCounterMode`` on the meta device (no memory, no weights): matmuls,
    convolutions and attention (which runs as ``bmm`` on meta). Element-wise work (norms,
    AdaIN, softmax, activations) is not counted.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from stylealigned_desktop.engine.install import Installation

    rows = 2  # the reference and one panel
    latent_h, latent_w = model.latent_hw
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(model.unet_config)
        sample = torch.zeros(rows, 4, latent_h, latent_w)
        text = torch.zeros(rows, model.text_tokens, sum(model.text_hidden))
        added = {"text_embeds": torch.zeros(rows, model.pooled_dim), "time_ids": torch.zeros(rows, 6)}
        timestep = torch.tensor(500)

    def count() -> tuple[int, dict]:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            unet(sample, timestep, encoder_hidden_states=text, added_cond_kwargs=added)
        by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
        return int(counter.get_total_flops()), by_op

    plain, plain_ops = count()
    installation = Installation(unet, settings)
    installation.state.halves_override = 1  # row 0 is the reference, row 1 a panel that shares
    try:
        shared, _ = count()
    finally:
        installation.remove()
    per_image = plain / rows
    extra = (shared - plain) / per_image
    return {
        "per_image_flops": per_image,
        "per_image_tflops": round(per_image / 1e12, 6),
        "shared_row_extra_flops": shared - plain,
        "shared_row_extra_fraction": extra,
        "attention_share": plain_ops.get("aten.bmm", 0) / plain,
        "by_op_per_image": {op: n / rows for op, n in sorted(plain_ops.items())},
    }


def limit_ratio(extra_fraction: float, panels: int) -> float:
    """FLOP ratio of a shared set to a plain batch of the same size: 1 + x * n / (n + 1)."""
    return 1.0 + extra_fraction * panels / (panels + 1)


# -- memory ----------------------------------------------------------------------------------------
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


MMAP_THRESHOLD = 8 * 1024


def fix_malloc_for_measuring() -> None:
    """glibc: allocations above 8 KiB go straight to mmap and back to the OS on free.

    A fixed, low threshold turns off glibc's adaptive one, so the resident set follows live
    tensor memory instead of heap caching and fragmentation (which otherwise adds a few MiB of
    noise at the scaled model's small tensors). Used in the memory subprocesses only: it slows
    allocation down, so their step times are not used.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD


def _trim_heap() -> None:
    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Linux: reset the process's peak resident set (VmHWM) to the current one."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _proc_status_kib("VmHWM") is not None


class CpuMemoryProbe:
    """Peak resident-set growth of this process over a block (VmHWM on Linux, else sampled)."""

    def __init__(self):
        import psutil

        self._process = psutil.Process()
        self.base = 0
        self._peak = 0
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self.method = ""

    def _rss(self) -> int:
        return self._process.memory_info().rss

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, self._rss())

    def start(self) -> None:
        _trim_heap()
        self.base = self._rss()
        if _reset_peak_rss():
            self.method = "VmHWM"
            self._sampler = None
        else:
            self.method = "psutil-sampled-2ms"
            self._peak = self.base
            self._stop.clear()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()

    def peak(self) -> int:
        """Bytes above the state at ``start``, at the highest point so far."""
        if self._sampler is None:
            peak = _proc_status_kib("VmHWM") * 1024
        else:
            peak = max(self._peak, self._rss())
        return max(0, peak - self.base)

    def stop(self) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self._sampler = None


class CudaMemoryProbe:
    """Peak allocated CUDA memory over a block, above what was allocated at its start."""

    method = "torch.cuda.max_memory_allocated"

    def start(self) -> None:
        import torch

        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.base = torch.cuda.memory_allocated()

    def peak(self) -> int:
        import torch

        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - self.base)

    def stop(self) -> None:
        pass


# -- cases and running them ------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    method: str
    panels: int
    micro_batch: int | None = None
    characters: int = 0
    """Characters named in every panel (``--characters``; the engine only)."""

    @property
    def key(self) -> str:
        key = f"{self.method}-mb{self.micro_batch}" if self.method in MICRO_BATCHED else self.method
        return f"{key}-c{self.characters}" if self.characters else key

    @property
    def spec(self) -> str:
        return f"{self.key}:{self.panels}"

    @classmethod
    def parse(cls, spec: str) -> Case:
        key, panels = spec.rsplit(":", 1)
        base, marker, count = key.rpartition("-c")
        characters = int(count) if marker and count.isdigit() else 0
        key = base if characters else key
        for method in MICRO_BATCHED:
            if key.startswith(f"{method}-mb"):
                return cls(method, int(panels), int(key.removeprefix(f"{method}-mb")), characters)
        if key not in METHODS:
            raise ValueError(f"unknown case {spec!r}")
        return cls(key, int(panels))


def measured_micro_batch(panels: int, micro_batch: int, micro_batches: list[int]) -> int:
    """The micro-batch of the run that stands for ``micro_batch`` at this set size.

    The engine runs min(m, n) panels at a time, so every m >= n is the same run: it is measured
    once, under the smallest such m.
    """
    if micro_batch <= panels:
        return micro_batch
    return min(m for m in micro_batches if m >= panels)


def build_cases(sizes: list[int], micro_batches: list[int], floors: bool = False) -> list[Case]:
    """All distinct cases, grouped by set size (with ``floors``, each floor at each micro-batch)."""
    cases = []
    for n in sizes:
        cases += [Case("plain", n), Case("style_aligned", n)]
        engine = sorted({measured_micro_batch(n, m, micro_batches) for m in micro_batches})
        cases += [Case("engine", n, m) for m in engine]
        if floors:
            cases += [Case(method, n, m) for method in FLOORS for m in engine]
    return cases


class Runner:
    """Runs cases on one pipeline and times every denoising step.

    A step starts at its first UNet call (a forward pre-hook) and ends at the pipeline's
    step-end callback or the engine's ``Step`` event, both after the scheduler step. With a
    memory probe, the peak is read at the end of the last step: it covers prompt encoding and
    denoising, not the engine's VAE decode (the pipelines here stop at latents).
    """

    def __init__(self, pipe, model: BenchModel, device: str, dtype_name: str, settings):
        from stylealigned_desktop.engine.generator import Engine

        self.pipe = pipe
        self.model = model
        self.device = device
        self.dtype_name = dtype_name
        self.settings = settings
        self.engine = Engine(loader=lambda *args, **kwargs: pipe)
        self.unet_calls = 0
        self._step_start: tuple[float, float] | None = None
        self._times: list[float] = []
        self._cpu_times: list[float] = []
        self._steps = 0
        self._probe = None
        self._peak: int | None = None
        self.mask_coverage: list[float] = []
        """The share of the grid inside each panel's subject mask, per character, of the last run."""
        pipe.unet.register_forward_pre_hook(self._on_unet_call)

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def _on_unet_call(self, module, args) -> None:
        self.unet_calls += 1
        if self._step_start is None:
            self._sync()
            self._step_start = (time.perf_counter(), time.process_time())

    def _on_step_end(self) -> None:
        self._sync()
        wall, cpu = self._step_start
        self._times.append(time.perf_counter() - wall)
        self._cpu_times.append(time.process_time() - cpu)
        self._step_start = None
        if self._probe is not None and len(self._times) == self._steps:
            self._peak = self._probe.peak()

    @staticmethod
    def _prompts(n: int, characters: int = 0) -> list[str]:
        """The reference's prompt and n panels', each naming the first ``characters`` characters
        first (the subject words must be among the tokens the text encoders read)."""
        names = "".join(f"[{name}] " for name, _ in CHARACTERS[:characters])
        return [REFERENCE_PROMPT] + [f"{names}panel {i}: a toy, macro photo" for i in range(n)]

    def run(self, case: Case, steps: int, probe=None) -> tuple[dict, int, int | None]:
        """Seconds of each denoising step (``wall`` and process ``cpu`` time), UNet calls per
        step, and peak memory (with a probe)."""
        self._times, self._cpu_times, self._step_start, self.unet_calls = [], [], None, 0
        self._steps, self._probe, self._peak, self.mask_coverage = steps, probe, None, []
        if probe is not None:
            probe.start()
        try:
            if case.method in MICRO_BATCHED:
                self._run_engine(case, steps)
            else:
                self._run_pipeline(case, steps)
        finally:
            if probe is not None:
                probe.stop()
            self._probe = None
        if len(self._times) != steps:
            raise RuntimeError(f"{case.spec}: timed {len(self._times)} steps, expected {steps}")
        return {"wall": list(self._times), "cpu": list(self._cpu_times)}, self.unet_calls // steps, self._peak

    def _run_pipeline(self, case: Case, steps: int) -> None:
        import torch

        from stylealigned_desktop.engine.generator import initial_noise
        from stylealigned_desktop.engine.install import style_aligned

        model, pipe = self.model, self.pipe
        latents = torch.cat([initial_noise(seed, model.height, model.width)
                             for seed in range(case.panels + 1)])
        latents = latents.to(device=pipe.unet.device, dtype=pipe.unet.dtype)

        def step_end(pipeline, i, t, callback_kwargs):
            self._on_step_end()
            return callback_kwargs

        sharing = (style_aligned(pipe, self.settings) if case.method == "style_aligned"
                   else contextlib.nullcontext())
        with sharing:
            pipe(prompt=self._prompts(case.panels), latents=latents, num_inference_steps=steps,
                 guidance_scale=GUIDANCE, height=model.height, width=model.width,
                 output_type="latent", callback_on_step_end=step_end)

    def _run_engine(self, case: Case, steps: int) -> None:
        from stylealigned_desktop.engine import events as ev
        from stylealigned_desktop.engine.request import (
            GeneratedReference,
            Panel,
            Sampling,
            SetRequest,
        )

        prompts = self._prompts(case.panels, case.characters)
        request = SetRequest(
            model="benchmark",
            style=GeneratedReference(prompts[0], 0),
            panels=tuple(Panel(p, i + 1) for i, p in enumerate(prompts[1:])),
            sampling=Sampling(steps=steps, guidance=GUIDANCE, width=self.model.width,
                              height=self.model.height, scheduler="ddim"),
            settings=self.settings if case.method == "engine" else _floor_settings(case.method),
            micro_batch=case.micro_batch,
            device=self.device.split(":")[0],
            dtype=self.dtype_name,
            characters=bench_characters(case.characters),
        )

        def on_event(event) -> None:
            if isinstance(event, ev.Step):
                self._on_step_end()
            elif isinstance(event, ev.PanelDone) and event.index is not None:
                self.mask_coverage += [float(mask.mean()) for mask in event.masks.values()]

        self.engine.generate(request, on_event)


def bench_characters(count: int) -> tuple:
    """The first ``count`` of ``CHARACTERS``, generated anchors (seeds apart from the panels')."""
    from stylealigned_desktop.engine.request import Character

    return tuple(Character(name, description, anchor_seeds=(1000 * (i + 1), 1000 * (i + 1) + 1))
                 for i, (name, description) in enumerate(CHARACTERS[:count]))


# -- the measurement phases ------------------------------------------------------------------------
def _settings(group: str):
    from stylealigned_desktop.engine.settings import StyleAlignedSettings

    return StyleAlignedSettings.for_reference_image() if group == "reference" else StyleAlignedSettings()


def _floor_settings(method: str):
    """Settings of a floor case (``MICRO_BATCHED``): nothing shared, or only keys and values."""
    from stylealigned_desktop.engine.settings import StyleAlignedSettings

    return StyleAlignedSettings(share_attention=method == "keys", adain_queries=False, adain_keys=False)


def ratio_target(case_key: str) -> float:
    return RATIO_TARGET_MB1 if case_key == "engine-mb1" else RATIO_TARGET


def _configure_torch(threads: int) -> None:
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(threads)
    # The benchmark's short random text encoders truncate prompts; that is expected, not news.
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()


def _dtype(name: str):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def run_worker(args, model: BenchModel) -> None:
    """Fresh-process memory measurement of one case: prints one result line for the parent."""
    fix_malloc_for_measuring()
    _configure_torch(args.threads)
    case = Case.parse(args.worker)
    pipe = build_pipeline(model, args.device, _dtype(args.dtype))
    runner = Runner(pipe, model, args.device, args.dtype, _settings(args.settings))
    # With characters every case runs into the anchors' sharing (step 1), also the one without.
    steps = MEMORY_STEPS_WITH_CHARACTERS if args.characters else 1
    # Warm-up on a one-panel set of the same method: lazy initialisation is not the case's memory.
    runner.run(Case(case.method, 1, 1 if case.method in MICRO_BATCHED else None, case.characters), steps)
    probe = CpuMemoryProbe()
    times, _calls, growth = runner.run(case, steps, probe)
    print(RESULT_PREFIX + json.dumps({"case": case.spec, "peak_bytes": growth,
                                      "method": probe.method, "step_s": times}), flush=True)


def _worker_command(args, case: Case) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", case.spec,
               "--scale", str(args.scale), "--head-dim", str(args.head_dim),
               "--height", str(args.height), "--width", str(args.width),
               "--threads", str(args.threads), "--device", args.device, "--dtype", args.dtype]
    command += ["--settings", args.group]
    if args.characters:
        command += ["--characters", ",".join(map(str, args.characters)), "--steps", str(args.steps)]
    return command


def measure_memory_in_subprocesses(args, cases: list[Case], log) -> dict[str, dict]:
    """Peak RSS growth of every case, each in a fresh process (CPU)."""
    results = {}
    for index, case in enumerate(cases, start=1):
        started = time.perf_counter()
        done = subprocess.run(_worker_command(args, case), capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"memory worker for {case.spec} failed (exit {done.returncode}):\n"
                               f"{done.stderr[-3000:]}")
        result = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
        results[case.spec] = result
        log(f"  memory {index}/{len(cases)} {case.spec:<22} {result['peak_bytes'] / 2**20:8.1f} MiB"
            f"  ({time.perf_counter() - started:.0f} s)")
    return results


def interleaved_order(cases: list[Case], sizes: list[int], round_index: int) -> list[Case]:
    """Cases of one round: sizes alternately ascending and descending; the cases of one size
    adjacent (so that their ratios see the same machine load), their order rotated every round."""
    order = []
    for n in (sizes if round_index % 2 == 0 else list(reversed(sizes))):
        group = [c for c in cases if c.panels == n]
        shift = round_index % len(group)
        order += group[shift:] + group[:shift]
    return order


def _run_medians(runs: list[dict], clock: str) -> list[float]:
    return [statistics.median(run[clock]) for run in runs]


def summarize(cases, sizes, micro_batches, timings, calls, memory, flops, clock) -> tuple[list, list, dict]:
    """Per-case medians, per-size paired ratios vs. plain (on ``clock``), the engine's memory growth."""
    case_rows = []
    for case in cases:
        runs = timings[case.spec]
        wall, cpu = statistics.median(_run_medians(runs, "wall")), statistics.median(_run_medians(runs, "cpu"))
        peak = memory.get(case.spec)
        case_rows.append({
            "case": case.key,
            "method": case.method,
            "panels": case.panels,
            "images": case.panels + 1,
            "micro_batch": case.micro_batch,
            "unet_rows_per_step": 2 * (case.panels + 1),
            "unet_calls_per_step": calls[case.spec],
            "step_s_runs": [run["wall"] for run in runs],
            "step_cpu_s_runs": [run["cpu"] for run in runs],
            "step_s_median": wall,
            "step_cpu_s_median": cpu,
            "per_image_s_median": wall / (case.panels + 1),
            "per_image_cpu_s_median": cpu / (case.panels + 1),
            "peak_memory_mib": None if peak is None else peak / 2**20,
        })
    ratios = []
    for n in sizes:
        plain_runs = _run_medians(timings[Case("plain", n).spec], clock)
        entry = {"panels": n, "limit": limit_ratio(flops["shared_row_extra_fraction"], n),
                 "clock": clock, "ratio_vs_plain": {}, "ratio_vs_plain_rounds": {}}
        for case in cases:
            if case.panels != n or case.method == "plain":
                continue
            paired = [t / p for t, p in zip(_run_medians(timings[case.spec], clock), plain_runs)]
            entry["ratio_vs_plain_rounds"][case.key] = paired
            entry["ratio_vs_plain"][case.key] = statistics.median(paired)
        # what the engine adds to the method's least work, at the same micro-batch (paired rounds)
        entry["ratio_vs_keys_floor"] = {
            case.key: statistics.median(t / f for t, f in zip(
                _run_medians(timings[case.spec], clock),
                _run_medians(timings[Case("keys", n, case.micro_batch).spec], clock)))
            for case in cases if case.panels == n and case.method == "engine"
            and Case("keys", n, case.micro_batch).spec in timings}
        ratios.append(entry)

    def engine_peak(n, m):
        return memory.get(Case("engine", n, measured_micro_batch(n, m, micro_batches)).spec)

    largest = max(sizes)
    vs_two, vs_full = {}, {}
    for m in micro_batches:
        large = engine_peak(largest, m)
        if large is None:
            continue
        if 2 in sizes and largest > 2 and engine_peak(2, m):
            vs_two[f"engine-mb{m}"] = large / engine_peak(2, m)
        # the smallest set that fills a micro-batch of m: the same UNet batch as the largest set
        full = min((n for n in sizes if n >= m), default=None)
        if full is not None and full < largest and engine_peak(full, m):
            vs_full[f"engine-mb{m}"] = {"panels": full, "ratio": large / engine_peak(full, m)}
    # The target compares with 2 panels; a micro-batch above 2 is not full at 2 panels (the engine
    # then runs 2 at a time), so it is held to the smallest set that fills it.
    target = {}
    for m in micro_batches:
        if m <= 2 and f"engine-mb{m}" in vs_two:
            target[f"engine-mb{m}"] = {"panels": 2, "ratio": vs_two[f"engine-mb{m}"]}
        elif f"engine-mb{m}" in vs_full:
            target[f"engine-mb{m}"] = vs_full[f"engine-mb{m}"]
    growth = {"largest_panels": largest, "largest_vs_2_panels": vs_two,
              "largest_vs_first_full_micro_batch": vs_full, "target_basis": target}
    return case_rows, ratios, growth


def print_table(model, flops, case_rows, ratios, growth, micro_batches, clock, out=print) -> None:
    """The results as a text table: plain step times, ratios per image vs. plain, peak memory."""
    measured = {k for e in ratios for k in e["ratio_vs_plain"]}
    keys = ["style_aligned"] + [f"{method}-mb{m}" for method in MICRO_BATCHED for m in micro_batches
                                if method == "engine" or f"{method}-mb{m}" in measured]

    def label(key):
        return key.replace("style_aligned", "batch-SA")

    by = {(r["case"], r["panels"]): r for r in case_rows}
    out("")
    out(f"model {model.name}: {model.height}x{model.width}, {flops['per_image_tflops'] * 1000:.2f} "
        f"GFLOP/image/pass, shared row +{flops['shared_row_extra_fraction'] * 100:.1f}%, "
        f"attention {flops['attention_share'] * 100:.1f}% of FLOPs")
    header = (f"{'n':>3} {'imgs':>4} | plain s/step: {'wall':>6} {'cpu':>6} {'cpu/img':>7} | "
              f"{'limit':>5} " + " ".join(f"{label(k):>10}" for k in keys))
    header += " | peak MiB: " + " ".join(f"{label(k):>10}" for k in ["plain"] + keys)
    out(header)
    out("-" * len(header))
    for entry in ratios:
        n = entry["panels"]
        plain = by[("plain", n)]
        line = (f"{n:>3} {n + 1:>4} | {'':>13} {plain['step_s_median']:>6.3f} "
                f"{plain['step_cpu_s_median']:>6.3f} {plain['per_image_cpu_s_median']:>7.3f} | "
                f"{entry['limit']:>5.3f} ")
        line += " ".join(f"{entry['ratio_vs_plain'][k]:>10.3f}" if k in entry["ratio_vs_plain"]
                         else f"{'-':>10}" for k in keys)
        peaks = []
        for k in ["plain"] + keys:
            row = by.get((k, n))
            peaks.append(f"{row['peak_memory_mib']:>10.1f}" if row and row["peak_memory_mib"] is not None
                         else f"{'-':>10}")
        out(line + " | " + " " * 10 + " ".join(peaks))
    out(f"ratios: time per image vs. plain ({clock} time), median of per-round paired ratios; "
        f"limit = 1 + x*n/(n+1) from FLOPs; target <= {RATIO_TARGET} (mb1 {RATIO_TARGET_MB1}); '-': same run as a smaller "
        "micro-batch")
    for line in floor_lines(ratios):
        out(line)
    if growth["largest_vs_2_panels"]:
        parts = ", ".join(f"{k} {v:.3f}x" for k, v in growth["largest_vs_2_panels"].items())
        out(f"engine peak memory, {growth['largest_panels']} panels vs 2: {parts} "
            f"(target <= {MEMORY_GROWTH_TARGET}x)")
    if growth["largest_vs_first_full_micro_batch"]:
        parts = ", ".join(f"{k} {v['ratio']:.3f}x (vs {v['panels']})"
                          for k, v in growth["largest_vs_first_full_micro_batch"].items())
        out(f"engine peak memory, {growth['largest_panels']} panels vs the smallest set that fills "
            f"the micro-batch: {parts} (the target's basis for micro-batches above 2)")


def floor_lines(ratios: list[dict]) -> list[str]:
    """One line per set size measured with ``--floors``: the engine's time over the keys floor's."""
    return [f"engine vs keys floor at {e['panels']} panels (same micro-batch, paired rounds): "
            + ", ".join(f"{k} {v:.3f}" for k, v in e["ratio_vs_keys_floor"].items())
            for e in ratios if e.get("ratio_vs_keys_floor")]


def _machine(device: str) -> dict:
    import diffusers
    import torch
    import transformers

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Seconds per denoising step and peak memory of StyleAligned sets: plain SDXL batch, "
                    "full-batch style_aligned, and the engine at several micro-batch sizes.")
    parser.add_argument("--sizes", default="1,2,4,8,16", help="panels per set, comma-separated")
    parser.add_argument("--micro-batches", default="1,2,4", help="engine micro-batch sizes")
    parser.add_argument("--scale", type=int, default=10,
                        help="divide SDXL's channels (and tokens, via the default size) by this (default 10)")
    parser.add_argument("--head-dim", type=int, default=SDXL_HEAD_DIM, help="attention head size (SDXL: 64)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: 1024/sqrt(scale))")
    parser.add_argument("--width", type=int, default=None, help="image width")
    parser.add_argument("--full-sdxl", action="store_true",
                        help="the real SDXL UNet at 1024x1024 in float16 (for a CUDA GPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: steadier on shared cores)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median)")
    parser.add_argument("--steps", type=int, default=1, help="denoising steps timed per run")
    parser.add_argument("--clock", choices=["auto", "cpu", "wall"], default="auto",
                        help="time the ratios are computed on: process CPU time (auto on CPU: other "
                             "programs on shared cores do not count) or wall time (auto on a GPU)")
    parser.add_argument("--memory", choices=["subprocess", "in-process"], default="subprocess",
                        help="CPU peak memory: a fresh process per case (default) or in the timing runs")
    parser.add_argument("--settings", choices=("both",) + SETTINGS_GROUPS, default="both",
                        help="StyleAligned settings measured: the prompts-only defaults, the reference-"
                             "picture defaults (shared GroupNorm, shift ln 2), or both, one after the "
                             "other (default)")
    parser.add_argument("--reference-settings", dest="settings", action="store_const", const="reference",
                        help="the same as --settings reference")
    parser.add_argument("--floors", action="store_true",
                        help="also time two floors at each micro-batch: unshared-mbM (nothing shared: what "
                             "micro-batching costs on this machine) and keys-mbM (only the reference's keys and "
                             "values shared: the method's least work); the engine's ratio to keys-mbM is what "
                             "the engine adds")
    parser.add_argument("--characters", default=None,
                        help="instead of the comparison with plain batches: the engine with this many "
                             "characters named in every panel, e.g. 0,1,2 (spec section 13), at each "
                             "size and micro-batch, interleaved; needs --steps 2 or more (the anchors are "
                             "shared from step 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run in seconds: tiny model, 1-2 panels, 1 round, 1 step")
    parser.add_argument("--out", default=None, help="JSON output path (default: benchmarks/results/...)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.quick:
        args.scale, args.head_dim = 40, 16
        args.sizes, args.micro_batches = "1,2", "1,2"
        args.rounds, args.steps, args.memory = 1, 1, "in-process"
    if args.full_sdxl:
        args.scale, args.head_dim = 1, SDXL_HEAD_DIM
        args.height, args.width = args.height or 1024, args.width or 1024
    try:
        args.sizes = sorted({int(x) for x in str(args.sizes).split(",") if x.strip()})
        args.micro_batches = sorted({int(x) for x in str(args.micro_batches).split(",") if x.strip()})
    except ValueError:
        parser.error(f"--sizes and --micro-batches take comma-separated integers, got "
                     f"{args.sizes!r} / {args.micro_batches!r}")
    if not args.sizes or min(args.sizes) < 1 or not args.micro_batches or min(args.micro_batches) < 1:
        parser.error("--sizes and --micro-batches need positive integers")
    if args.rounds < 1 or args.steps < 1 or args.threads < 1:
        parser.error("--rounds, --steps and --threads must be at least 1")
    if args.characters is not None:
        args.characters = _character_counts(parser, args.characters)
        if args.quick:
            args.steps = max(args.steps, 2)
        if args.steps < 2:
            parser.error("--characters needs --steps 2 or more: the anchors are shared from step 1 on")
        if args.floors:
            parser.error("--characters measures the engine alone; it takes no --floors")
    return parser, args


def _character_counts(parser, text: str) -> list[int]:
    """``--characters``: distinct counts, in the order given, each 0..len(CHARACTERS)."""
    try:
        counts = list(dict.fromkeys(int(x) for x in text.split(",") if x.strip()))
    except ValueError:
        parser.error(f"--characters takes comma-separated integers, got {text!r}")
    if not counts or min(counts) < 0 or max(counts) > len(CHARACTERS):
        parser.error(f"--characters takes counts from 0 to {len(CHARACTERS)}, got {text!r}")
    return counts


def measure_group(args, model: BenchModel, group: str, argv, log) -> dict:
    """Every case of one settings group: FLOPs, memory, interleaved timing rounds; the JSON document."""
    started = time.perf_counter()
    load_start = _loadavg()
    settings = _settings(group)
    cases = build_cases(args.sizes, args.micro_batches, args.floors)
    on_cuda = args.device.startswith("cuda")
    log(f"bench_sets [{group} settings]: {model.name} {model.height}x{model.width} on {args.device} ({args.dtype}), "
        f"{args.threads} torch thread(s), sizes {args.sizes}, micro-batches {args.micro_batches}, "
        f"{len(cases)} cases, {args.rounds} round(s) x {args.steps} step(s), ratios on {args.clock} time")

    flops = count_flops(model, settings)
    flops["limit"] = {str(n): limit_ratio(flops["shared_row_extra_fraction"], n) for n in args.sizes}
    sdxl_flops = flops if model.scale == 1 else count_flops(bench_model(1), settings)
    log(f"FLOPs per image and UNet pass: {flops['per_image_tflops'] * 1000:.3f} GFLOP "
        f"(SDXL at 1024x1024: {sdxl_flops['per_image_tflops']:.3f} TFLOP, "
        f"{sdxl_flops['per_image_flops'] / flops['per_image_flops']:.1f}x); shared row "
        f"+{flops['shared_row_extra_fraction'] * 100:.2f}% (SDXL +{sdxl_flops['shared_row_extra_fraction'] * 100:.2f}%); "
        f"attention {flops['attention_share'] * 100:.1f}% (SDXL {sdxl_flops['attention_share'] * 100:.1f}%)")

    memory: dict[str, int] = {}
    memory_samples: dict[str, list[int]] = {}
    memory_method = None
    worker_results = {}
    if not on_cuda and args.memory == "subprocess":
        log("peak memory, one fresh process per case:")
        worker_results = measure_memory_in_subprocesses(args, cases, log)
        memory = {spec: r["peak_bytes"] for spec, r in worker_results.items()}
        memory_method = ("fresh process per case; peak RSS growth over the state after loading and one "
                         "warm-up run (" + next(iter(worker_results.values()))["method"] + ")")

    pipe = build_pipeline(model, args.device, _dtype(args.dtype))
    runner = Runner(pipe, model, args.device, args.dtype, settings)
    probe = CudaMemoryProbe() if on_cuda else (CpuMemoryProbe() if args.memory == "in-process" else None)
    log("warm-up")
    for case in build_cases([min(args.sizes)], args.micro_batches):
        runner.run(case, 1)

    timings = {c.spec: [] for c in cases}
    calls = {}
    loads = []
    for round_index in range(args.rounds):
        order = interleaved_order(cases, args.sizes, round_index)
        for case in order:
            times, calls[case.spec], peak = runner.run(case, args.steps, probe)
            if probe is not None:
                memory_samples.setdefault(case.spec, []).append(peak)
            timings[case.spec].append(times)
            log(f"  round {round_index + 1}/{args.rounds} {case.spec:<22} "
                f"{statistics.median(times['wall']):8.3f} s/step wall, "
                f"{statistics.median(times['cpu']):8.3f} cpu")
        loads.append(_loadavg())
    if probe is not None:
        memory = {spec: statistics.median(v) for spec, v in memory_samples.items()}
        memory_method = (probe.method if on_cuda else
                         "in the timing process; peak RSS growth per run (" + probe.method + ")")

    case_rows, ratios, growth = summarize(cases, args.sizes, args.micro_batches, timings, calls,
                                          memory, flops, args.clock)
    print_table(model, flops, case_rows, ratios, growth, args.micro_batches, args.clock, log)

    misses = [f"{k} at {e['panels']} panels: {v:.3f}" for e in ratios
              for k, v in e["ratio_vs_plain"].items() if k.split("-")[0] not in FLOORS and v > ratio_target(k)]
    misses += [f"memory growth {k} ({growth['largest_panels']} vs {v['panels']} panels): {v['ratio']:.3f}x"
               for k, v in growth["target_basis"].items() if v["ratio"] > MEMORY_GROWTH_TARGET]
    result = {
        "benchmark": "bench_sets",
        "version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": _machine(args.device),
        "load_average": {"start": load_start, "after_each_round": loads},
        "model": model.describe(),
        "dtype": args.dtype,
        "settings_group": group,
        "settings": settings.to_dict(),
        "guidance": GUIDANCE,
        "sizes": args.sizes,
        "micro_batches": args.micro_batches,
        "rounds": args.rounds,
        "steps_per_run": args.steps,
        "timing": "seconds per denoising step, from the step's first UNet call to the end of its "
                  "scheduler step, as wall time and as process CPU time; median over the steps of a "
                  "run, then over interleaved rounds",
        "ratio_clock": args.clock,
        "memory_method": memory_method,
        "flops": flops,
        "sdxl_flops": {k: v for k, v in sdxl_flops.items() if k != "by_op_per_image"},
        "cases": case_rows,
        "ratios": ratios,
        "memory_growth": growth,
        "memory_workers": worker_results,
        "targets": {"ratio_max": RATIO_TARGET, "ratio_max_micro_batch_1": RATIO_TARGET_MB1,
                    "memory_growth_max": MEMORY_GROWTH_TARGET},
        "target_misses": misses,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    return result


def result_path(args, model: BenchModel, group: str) -> Path:
    """JSON of one settings group: ``--out`` (or the default name) for the prompts-only group,
    with ``_reference`` before the suffix for the reference-picture group."""
    if args.out:
        out = Path(args.out)
    else:
        suffix = "quick" if args.quick else model.name
        suffix += "_characters" if args.characters else ""
        out = RESULTS / f"bench_sets_{args.device.split(':')[0]}_{suffix}.json"
    return out if group == "prompts" else out.with_name(f"{out.stem}_reference{out.suffix}")


def markdown_tables(results: list[dict]) -> str:
    """One table per settings group: ratios per image vs. plain (median and per-round range) and
    the engine's peak memory; target misses underneath."""
    lines = []
    for result in results:
        measured = {k for e in result["ratios"] for k in e["ratio_vs_plain"]}
        keys = ["style_aligned"] + [f"{method}-mb{m}" for method in MICRO_BATCHED for m in result["micro_batches"]
                                    if method == "engine" or f"{method}-mb{m}" in measured]
        by = {(r["case"], r["panels"]): r for r in result["cases"]}
        model = result["model"]
        lines += [f"### {result['settings_group']} settings: {json.dumps(result['settings'])}", "",
                  f"{model['name']}, {result['dtype']}, {result['rounds']} interleaved rounds x "
                  f"{result['steps_per_run']} step(s), ratios on {result['ratio_clock']} time "
                  f"(median; per-round range in brackets), load average "
                  f"{result['load_average']['start']}", ""]
        header = ["n", "plain s/step", "limit"] + [k.replace("style_aligned", "batch") for k in keys]
        peaks = [k for k in keys if k.startswith("engine")]
        header += [f"peak MiB {k.removeprefix('engine-')}" for k in peaks]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for entry in result["ratios"]:
            n = entry["panels"]
            plain = by[("plain", n)]
            row = [str(n), f"{plain['step_s_median' if result['ratio_clock'] == 'wall' else 'step_cpu_s_median']:.3f}",
                   f"{entry['limit']:.3f}"]
            for k in keys:
                if k in entry["ratio_vs_plain"]:
                    rounds = entry["ratio_vs_plain_rounds"][k]
                    row.append(f"{entry['ratio_vs_plain'][k]:.3f} [{min(rounds):.2f}-{max(rounds):.2f}]")
                else:
                    row.append("–")
            for k in peaks:
                case = by.get((k, n))
                peak = case and case["peak_memory_mib"]
                row.append(f"{peak:.1f}" if peak is not None else "–")
            lines.append("| " + " | ".join(row) + " |")
        lines += [""] + floor_lines(result["ratios"]) if any(e.get("ratio_vs_keys_floor") for e in result["ratios"]) else []
        growth = result["memory_growth"]["target_basis"]
        if growth:
            lines += ["", "Engine peak memory, largest set vs. basis: " + ", ".join(
                f"{k} {v['ratio']:.3f}x (vs {v['panels']} panels)" for k, v in growth.items())]
        lines += ["", "Target misses: " + ("; ".join(result["target_misses"]) or "none"), ""]
    return "\n".join(lines)


# -- --characters: what each character costs ------------------------------------------------------
def character_cases(args) -> list[Case]:
    """The engine at each size and micro-batch with each count of characters, counts adjacent."""
    cases = [Case("engine", n, measured_micro_batch(n, m, args.micro_batches), c)
             for n in args.sizes for m in args.micro_batches for c in args.characters]
    return list(dict.fromkeys(cases))


def summarize_characters(cases, timings, calls, memory, coverage, clock, anchors_per_character) -> list[dict]:
    """Per case: step 0 (no anchor shared yet) and the later steps' median, per image, the
    ratio to the same set without characters paired by round, UNet calls and peak memory."""

    def sharing_steps(case):  # per round: the median of the steps that share the anchors
        return [statistics.median(run[clock][1:]) for run in timings[case.spec]]

    rows = []
    for case in cases:
        base = Case(case.method, case.panels, case.micro_batch)
        step = statistics.median(sharing_steps(case))
        paired = [t / b for t, b in zip(sharing_steps(case), sharing_steps(base))] if base.spec in timings else []
        peak, base_peak = memory.get(case.spec), memory.get(base.spec)
        rows.append({
            "case": case.key, "panels": case.panels, "images": case.panels + 1,
            "micro_batch": case.micro_batch, "characters": case.characters,
            "anchors": case.characters * anchors_per_character,
            "unet_calls_per_step": calls[case.spec],
            "unet_rows_per_step": 2 * (case.panels + 1 + case.characters * anchors_per_character),
            "step_runs": {k: [run[k] for run in timings[case.spec]] for k in ("wall", "cpu")},
            "first_step_s_median": statistics.median(run[clock][0] for run in timings[case.spec]),
            "step_s_median": step,
            "per_image_s_median": step / (case.panels + 1),
            "ratio_vs_no_characters_rounds": paired,
            "ratio_vs_no_characters": statistics.median(paired) if paired else None,
            "peak_memory_mib": None if peak is None else peak / 2**20,
            "peak_memory_over_no_characters_mib": (None if peak is None or base_peak is None
                                                   else (peak - base_peak) / 2**20),
            "mask_coverage": coverage.get(case.spec, []),
        })
    return rows


def characters_table(result: dict) -> list[str]:
    """The Markdown table of a ``--characters`` run."""
    lines = ["| n | mb | characters | anchors | UNet calls/step | UNet rows/step | s step 0 | s/step "
             "| s/image | vs 0 [rounds] | peak MiB | + MiB | mask cover |", "|" + "---|" * 13]
    for row in result["cases"]:
        rounds = row["ratio_vs_no_characters_rounds"]
        ratio = (f"{row['ratio_vs_no_characters']:.3f} [{min(rounds):.2f}-{max(rounds):.2f}]"
                 if rounds else "–")
        peak, extra = row["peak_memory_mib"], row["peak_memory_over_no_characters_mib"]
        cover = row["mask_coverage"]
        lines.append(" | ".join([
            f"| {row['panels']}", str(row["micro_batch"]), str(row["characters"]), str(row["anchors"]), str(row["unet_calls_per_step"]),
            str(row["unet_rows_per_step"]), f"{row['first_step_s_median']:.3f}",
            f"{row['step_s_median']:.3f}", f"{row['per_image_s_median']:.3f}", ratio,
            "–" if peak is None else f"{peak:.1f}", "–" if extra is None else f"{extra:+.1f}",
            f"{statistics.mean(cover):.2f}" if cover else "–"]) + " |")
    return lines


def characters_markdown(results: list[dict]) -> str:
    lines = []
    for result in results:
        model = result["model"]
        lines += [f"### characters, {result['settings_group']} settings: n = {result['sizes']}, "
                  f"micro-batches {result['micro_batches']}", "",
                  f"{model['name']} {model['height']}x{model['width']}, {result['dtype']}, "
                  f"{result['rounds']} interleaved rounds x {result['steps_per_run']} steps, times on "
                  f"{result['ratio_clock']} time (median over rounds of the median of steps 1..; step 0 "
                  f"apart), load average {result['load_average']['start']} at the start, "
                  f"{result['load_average']['after_each_round']} after each round", ""]
        lines += characters_table(result) + [""]
    return "\n".join(lines)


def measure_characters(args, model: BenchModel, group: str, argv, log) -> dict:
    """``--characters``: the engine with each count of characters, rounds interleaved (A B C A B C)
    so that the load of a shared machine falls on every count alike; the JSON document."""
    started, load_start = time.perf_counter(), _loadavg()
    settings, cases = _settings(group), character_cases(args)
    on_cuda = args.device.startswith("cuda")
    log(f"bench_sets --characters {args.characters} [{group} settings]: {model.name} on {args.device}, "
        f"sizes {args.sizes}, micro-batches {args.micro_batches}, {args.rounds} round(s) x {args.steps} steps")
    memory, memory_method, workers = {}, None, {}
    if not on_cuda and args.memory == "subprocess":
        log("peak memory, one fresh process per case:")
        workers = measure_memory_in_subprocesses(args, cases, log)
        memory = {spec: r["peak_bytes"] for spec, r in workers.items()}
        memory_method = (f"fresh process per case; peak RSS growth over {MEMORY_STEPS_WITH_CHARACTERS} steps "
                         "after loading and a warm-up run (" + next(iter(workers.values()))["method"] + ")")
    runner = Runner(build_pipeline(model, args.device, _dtype(args.dtype)), model, args.device, args.dtype,
                    settings)
    probe = CudaMemoryProbe() if on_cuda else (CpuMemoryProbe() if args.memory == "in-process" else None)
    log("warm-up")
    runner.run(Case("engine", 1, 1, max(args.characters)), 2)
    timings, calls, coverage, samples, loads = {c.spec: [] for c in cases}, {}, {}, {}, []
    for round_index in range(args.rounds):
        for case in cases:
            times, calls[case.spec], peak = runner.run(case, args.steps, probe)
            timings[case.spec].append(times)
            coverage.setdefault(case.spec, []).extend(runner.mask_coverage)
            if probe is not None:
                samples.setdefault(case.spec, []).append(peak)
            log(f"  round {round_index + 1}/{args.rounds} {case.spec:<18} steps (cpu s) "
                + " ".join(f"{t:.3f}" for t in times["cpu"]))
        loads.append(_loadavg())
    if probe is not None:
        memory = {spec: statistics.median(v) for spec, v in samples.items()}
        memory_method = probe.method
    rows = summarize_characters(cases, timings, calls, memory, coverage, args.clock,
                                settings.anchors_per_character)
    result = {
        "benchmark": "bench_sets", "mode": "characters", "version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": _machine(args.device), "priority": os.getpriority(os.PRIO_PROCESS, 0),
        "load_average": {"start": load_start, "after_each_round": loads},
        "model": model.describe(), "dtype": args.dtype, "settings_group": group,
        "settings": settings.to_dict(), "guidance": GUIDANCE, "sizes": args.sizes,
        "micro_batches": args.micro_batches, "characters": [list(c) for c in CHARACTERS[:max(args.characters)]],
        "rounds": args.rounds, "steps_per_run": args.steps,
        "timing": "seconds per denoising step from its first UNet call to the end of its scheduler step; "
                  "step 0 apart (the anchors are shared from step 1), the median of the later steps, "
                  "then the median over rounds; per image: over the set's n + 1 pictures (reference and "
                  "panels; the anchors are the characters' overhead)",
        "ratio_clock": args.clock, "memory_method": memory_method, "memory_workers": workers,
        "cases": rows, "wall_s": round(time.perf_counter() - started, 1),
    }
    for line in characters_table(result):
        log(line)
    return result


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:
        model = bench_model(args.scale, args.head_dim, args.height, args.width)
    except ValueError as error:
        parser.error(str(error))
    args.height, args.width = model.height, model.width

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda was asked for, but no CUDA GPU is available")
    if args.full_sdxl and not args.device.startswith("cuda") and "--device" not in (argv or sys.argv):
        parser.error("--full-sdxl needs a CUDA GPU (pass --device cpu to force it, very slow)")
    if args.dtype == "auto":
        args.dtype = "float16" if args.device.startswith("cuda") else "float32"
    if args.clock == "auto":
        args.clock = "wall" if args.device.startswith("cuda") else "cpu"

    if args.worker:
        run_worker(args, model)
        return 0

    _configure_torch(args.threads)
    results = []
    measure = measure_characters if args.characters else measure_group
    for group in (SETTINGS_GROUPS if args.settings == "both" else (args.settings,)):
        args.group = group
        result = measure(args, model, group, argv, print)
        out = result_path(args, model, group)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out} ({result['wall_s']:.0f} s)")
        if result.get("target_misses"):
            print("targets missed: " + "; ".join(result["target_misses"]))
        results.append(result)
    tables = result_path(args, model, "prompts").with_suffix(".md")
    tables.write_text((characters_markdown if args.characters else markdown_tables)(results), encoding="utf-8")
    print(f"wrote {tables}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
