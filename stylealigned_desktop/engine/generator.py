"""The storyboard engine: the references once per step, panels in micro-batches.

Panels never see each other (spec section 3), so every denoising step runs the references once
(``record``: they leave keys, values and statistics in every shared layer; with
``REFERENCE_RIDES_ALONG`` the first micro-batch's panels share that call and use them at once),
and then the panels in micro-batches of any size (``replay``). Each panel's result depends only on its
own prompt, seed and control, the style source and the settings: not on the other panels, their
order or the micro-batch size. Memory per step is that of one micro-batch plus the reference's
cached keys and values, whatever the number of panels.

A request's route (:meth:`Engine._generate`), one stage each:

1. plan: the rows, what each is and shares, and their size groups (``rows.py``);
2. load: the pipeline with its VAE, LoRAs and memory mode (:meth:`Engine.pipeline`), the
   memory plan, the schedulers and the controls;
3. record the references: the picture references' inversions (``references.py``), the text
   conditioning and the starting noise, all in one :class:`~.denoise.Denoising` state;
4. denoise, per size group (``denoise.py``);
5. decode every row (``denoise.decode_rows``);
6. record: each picture's ``PanelDone`` and the ``RunResult`` (:meth:`Engine._record`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import torch

from . import events as ev
from . import memory as mem
from .bases import base_of
from .character_attention import install_characters
from .control_sources import TINY as TINY_DEPTH
from .denoise import (
    Batching,
    Conditioning,
    Denoising,
    PreparedControl,
    RunContext,
    decode_latent,
    decode_rows,
    denoise,
    is_out_of_memory,
    prepare_controls,
)
from .errors import GenerationCancelled, GenerationError, is_expected_error
from .install import Installation
from .limits import CLIP_TOKENS, check_steps
from .lora import apply_loras, check_lora, lora_identity
from .models import (
    is_tiny,
    load_pipeline,
    resolve_device,
    resolve_dtype,
    vae_identity,
)
from .preview_decoders import DEFAULT_BUDGET, RunPreviews
from .references import ReferenceRows, picture_trajectory, record_references, trajectory_key
from .request import ReferencePicture, SetRequest
from .rows import Row, RunRows, Size
from .text import encode_prompts, longer_than_clip
from .windows import Tiling, WindowedGroup, plan_tilings, unet_rows
from .workload import workload

EventSink = Callable[[ev.Event], None]


def initial_noise(seed: int, height: int, width: int, vae_scale_factor: int = 8) -> torch.Tensor:
    """The determinism contract: a picture's starting noise depends on its seed alone."""
    generator = torch.Generator("cpu").manual_seed(int(seed))
    shape = (1, 4, height // vae_scale_factor, width // vae_scale_factor)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def make_scheduler(config, kind: str):
    """A fresh scheduler of the requested kind from the model's scheduler config."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    if kind == "ddim":
        return DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False)
    if kind == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if kind == "dpmpp-2m":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    raise ValueError(f"unknown scheduler {kind!r}")


REFERENCE_RIDES_ALONG = False
"""Whether the first micro-batch of panels rides in the references' UNet call (one call fewer per
step). Off: a panel's rows then run in a call of the same composition whatever the sharding, so a
set split across server replicas stays pixel for pixel the local run
(tests/server/test_sharding.py); riding along changes a panel's batch and so its rounding, and
its gain was not measurable on the shared CPU (docs/performance.md, issue 15)."""


@dataclasses.dataclass(frozen=True)
class RunSetup:
    """What a run is, once its pipeline is loaded: the rows, the memory plan, a scheduler per
    size group (already set to the request's steps) and the panels' prepared controls."""

    pipe: object
    request: SetRequest
    rows: RunRows
    memory: mem.MemoryPlan
    schedulers: dict[Size, object]
    controls: list[PreparedControl | None]
    tilings: dict[Size, Tiling] = dataclasses.field(default_factory=dict)
    """The MultiDiffusion windows of the size groups of wide panels (spec section 14)."""

    @property
    def timesteps(self):
        """The schedule's levels (the set-size scheduler's; every group has the same)."""
        return self.schedulers[self.rows.set_size].timesteps


class Engine:
    """Holds loaded models (cached across requests) and runs requests, one at a time.

    ``generate`` is meant for a worker thread; it reports progress through ``on_event`` and
    stops within one denoising step once ``cancel`` is set.
    """

    def __init__(self, loader: Callable = load_pipeline, preview_budget: float = DEFAULT_BUDGET):
        self._loader = loader
        self.previews = RunPreviews(preview_budget)
        self._pipe = None
        self._pipe_key: tuple | None = None
        self._lock = threading.Lock()
        self._controlnets = None
        self._trajectory_caches: dict[str, object] = {}
        self.unet_calls = 0

    # -- models ----------------------------------------------------------------------------
    def pipeline(self, model: str, device: str = "auto", dtype: str = "auto", on_event: EventSink | None = None,
                 *, vae: str | None = None, loras=(), memory: str = "fast"):
        """The loaded pipeline for a model source, reusing the last one when it matches.

        The cache key is the model, device, dtype, VAE and LoRAs (each by its content, LoRAs with
        their weight: a file changed in place is another VAE or LoRA, a copy elsewhere the same)
        and memory mode. A new model, device, dtype or VAE loads anew; other LoRAs or weights
        change the loaded adapters, another memory mode moves the models, both in place.
        """
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        base = (model, str(torch_device), str(torch_dtype), vae, vae and vae_identity(vae))
        loras = tuple(loras)
        key = (base, tuple(lora_identity(lora) for lora in loras), memory)
        if self._pipe_key is None or self._pipe_key[0] != base:
            self.unload()
            sink = on_event or (lambda event: None)
            sink(ev.Loading(0.0, f"loading {model}"))
            # LoRAs come after, in place: a LoRA refused then leaves the loaded model cached
            self._pipe = self._loader(model, device=device, dtype=dtype,
                                      progress=lambda fraction, message: sink(ev.Loading(fraction, message)),
                                      vae=vae, loras=(), memory=memory)
            self._pipe_key = (base, (), None)  # placed below (a custom loader may not place it)
        previous, pipe = self._pipe_key, self._pipe
        if previous == key:
            return pipe
        for lora in loras:
            check_lora(lora, pipe)  # a LoRA refused here leaves the loaded pipeline as it was
        self._pipe_key = None  # until the change is complete
        try:
            if previous[1] != key[1]:
                pipe.remove_all_hooks()  # adapters load into weights in memory, not offloaded ones
                apply_loras(pipe, loras)
            mem.place_pipeline(pipe, memory, torch_device)
            mem.set_vae_tiling(pipe.vae, memory == "low")
        except Exception:
            self.unload()
            raise
        self._pipe_key = key
        return pipe

    def warm_up(self) -> None:
        """Import the pipeline, scheduler and tokenizer classes and run torch's first
        convolution, attention and group norm, so the first generation does not pay for them.

        Each of these holds Python's GIL for a while the first time (loading native kernels);
        a GUI calls this in its worker thread after start-up. Safe to call from a worker
        thread, and more than once (later calls cost next to nothing). Loads no model.
        """
        with mem.importing_libraries(), torch.no_grad():
            from diffusers import (  # noqa: F401
                DDIMScheduler,
                DPMSolverMultistepScheduler,
                EulerDiscreteScheduler,
                StableDiffusionPipeline,
                StableDiffusionXLPipeline,
            )
            from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

            x = torch.zeros(1, 4, 8, 8)
            torch.nn.functional.conv2d(x, torch.zeros(4, 4, 3, 3), padding=1)
            q = torch.zeros(1, 2, 16, 8)
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
            torch.nn.functional.group_norm(x, 2)

    def unload(self) -> None:
        self._pipe, self._pipe_key = None, None
        self.previews.clear()
        if self._controlnets is not None:
            self._controlnets.clear()
        _free_memory()

    def trajectory_cache(self, folder: str | None):
        """The inversion cache of a folder (kept in memory across requests)."""
        from ..paths import cache_dir
        from .inversion import TrajectoryCache

        folder = folder or str(cache_dir() / "trajectories")
        if folder not in self._trajectory_caches:
            self._trajectory_caches[folder] = TrajectoryCache(folder)
        return self._trajectory_caches[folder]

    def controlnet(self, request: SetRequest, kind: str, pipe):
        """The ControlNet of a kind (canny, depth) for this request, loaded once per engine."""
        from .control import ControlError, ControlNetCache

        if self._controlnets is None:
            self._controlnets = ControlNetCache()
        source = getattr(request, f"controlnet_{kind}") or (request.model if is_tiny(request.model) else None)
        if source is None:
            base = base_of(pipe)
            source = base.controlnets.get(kind)
            if source is None:
                raise ControlError(f"{base.name} has no default ControlNet for {kind} maps: choose one made for "
                                   f"{base.name} (Settings → ControlNet for {'edges' if kind == 'canny' else kind})")
        # loaded in system memory, then placed as the UNet is (on the GPU, or offloaded with it)
        controlnet = self._controlnets.get(source, pipe.unet, dtype=pipe.unet.dtype, device="cpu")
        mem.place_like_unet(pipe, controlnet)
        return controlnet

    def _request_pipeline(self, request: SetRequest, sink: EventSink):
        """The pipeline a request runs on (its VAE, LoRAs and memory mode), and the mode."""
        memory_mode = self._memory_mode(request, sink)
        pipe = self.pipeline(request.model, request.device, request.dtype, sink,
                             vae=request.vae, loras=request.loras, memory=memory_mode)
        return pipe, memory_mode

    @staticmethod
    def _memory_mode(request: SetRequest, sink: EventSink) -> str:
        """The request's memory mode; ``auto`` is decided by the memory model and said."""
        if request.memory != "auto":
            return request.memory
        device = resolve_device(request.device)
        mode, reason = mem.choose_mode(mem.device_total_gb(device), workload(request))
        sink(ev.Notice(f"memory mode {mode} (auto): {reason}"))
        return mode

    def reference_trajectory(self, request: SetRequest, on_event: EventSink | None = None,
                             cancel: threading.Event | None = None):
        """The request's reference picture inverted (or taken from the cache), with its cache key.

        For handing one inversion to other engines: ``trajectory_cache(folder).put(key,
        trajectory)`` on another engine lets it skip the inversion (the server does this when it
        shards a set). Raises GenerationCancelled when cancelled.
        """
        sink = on_event or (lambda event: None)
        with self._lock, torch.no_grad():
            pipe, memory_mode = self._request_pipeline(request, sink)
            mem.set_vae_tiling(pipe.vae, mem.tile_vae_for(memory_mode, workload(request, pipe)))
            scheduler = make_scheduler(pipe.scheduler.config, request.sampling.scheduler)
            scheduler.set_timesteps(request.sampling.steps, device=pipe._execution_device)
            cache = self.trajectory_cache(request.cache_dir)
            trajectory = picture_trajectory(cache, pipe, request, scheduler.timesteps, sink, cancel or threading.Event())
            return trajectory_key(request, scheduler.timesteps)[0], trajectory

    # -- generation --------------------------------------------------------------------------
    def generate(self, request: SetRequest, on_event: EventSink | None = None,
                 cancel: threading.Event | None = None) -> ev.RunResult | None:
        """Generate the selected panels of a set. Returns None when cancelled.

        Errors are reported as ``Failed`` and raised again.
        """
        sink = on_event or (lambda event: None)
        cancel = cancel or threading.Event()
        with self._lock, torch.no_grad():
            try:
                result = self._generate(request, sink, cancel)
            except GenerationCancelled:
                _free_memory()
                sink(ev.Cancelled())
                return None
            except Exception as error:
                _free_memory()
                sink(ev.Failed(_user_message(error)))
                raise
            _free_memory()  # cached accelerator blocks go back between runs (CUDA, Apple MPS)
            sink(ev.Finished(result))
            return result

    def _generate(self, request: SetRequest, sink: EventSink, cancel: threading.Event) -> ev.RunResult:
        """A request's route through the engine, stage by stage (docs/architecture.md)."""
        started = time.perf_counter()
        rows = RunRows.of(request)  # plan: what each row is and shares; fails before any model loads
        pipe, memory_mode = self._request_pipeline(request, sink)
        loaded = time.perf_counter()
        setup = self._set_up(pipe, request, rows, memory_mode)
        references = record_references(self.trajectory_cache(request.cache_dir), pipe, request, rows,
                                       setup.timesteps, sink, cancel)
        state = self._denoising(setup, references, sink, cancel)
        denoise(state)
        denoised = time.perf_counter()
        images = decode_rows(state)
        finished = time.perf_counter()
        timings = {
            "load_s": round(loaded - started, 3),
            "denoise_s": round(denoised - loaded, 3),
            "decode_s": round(finished - denoised, 3),
            "per_step_s": round((denoised - loaded) / max(1, len(state.timesteps)), 4),
        }
        return self._record(setup, state, images, timings)

    # -- the stages of a run -------------------------------------------------------------------
    def _set_up(self, pipe, request: SetRequest, rows: RunRows, memory_mode: str) -> RunSetup:
        """The loaded run's plan: memory (micro-batch, VAE tiling), a scheduler per size group
        (the steps checked), the panels' control maps (their ControlNets loaded and checked)."""
        device = pipe._execution_device  # where the models run, whatever the offloading
        tilings = plan_tilings(rows, request, base_of(pipe).native_size // pipe.vae_scale_factor,
                               pipe.vae_scale_factor)
        # a panorama's windows are rows of micro-batches like panels
        memory = mem.plan(memory_mode, mem.device_total_gb(device), workload(request, pipe, tilings),
                          max(unet_rows(rows, tilings), 1), mem.device_budget_gb(device))
        mem.set_vae_tiling(pipe.vae, memory.tile_vae)  # for the pictures' encodes and the decodes
        schedulers = _schedulers(pipe, request, rows, device)
        controls = self._prepare_controls(pipe, request, request.selected)
        return RunSetup(pipe, request, rows, memory, schedulers, controls, tilings)

    def _denoising(self, setup: RunSetup, references: ReferenceRows, sink: EventSink,
                   cancel: threading.Event) -> Denoising:
        """The per-step state: text conditioning, SDXL time ids and starting noise per size
        group, the batching, and the shared layers installed (last: ``denoise`` removes them)."""
        pipe, request, rows, schedulers = setup.pipe, setup.request, setup.rows, setup.schedulers
        device, dtype, base = pipe._execution_device, pipe.unet.dtype, base_of(pipe)
        cond = self._conditioning(pipe, request, rows, sink)
        # each panel's SDXL time ids and starting noise come from its own size (spec section 12)
        time_ids = {size: base.time_ids(pipe, size[1], size[0], dtype, device) for size in rows.groups}
        latents = {size: torch.cat([initial_noise(rows.rows[row].seed, size[1], size[0], pipe.vae_scale_factor)
                                    for row in numbers]).to(device=device, dtype=dtype)
                   * schedulers[size].init_noise_sigma for size, numbers in rows.groups.items()}
        batching = _batching(request, setup.memory, sink, unet_rows(rows, setup.tilings))
        installation = Installation(pipe.unet, request.settings)
        installation.state.halves_override = 2 if request.sampling.uses_cfg else 1
        installation.state.reference_weights = references.weights
        install_characters(installation, pipe, request, rows, set(setup.tilings))
        run = RunContext(pipe=pipe, base=base, scheduler=schedulers[rows.set_size], cond=cond, time_ids=time_ids[rows.set_size],
                         halves=installation.state.halves_override, guidance=request.sampling.guidance,
                         controls=setup.controls, request=request, installation=installation,
                         controlnet=lambda kind: self.controlnet(request, kind, pipe), cancel=cancel, sink=sink,
                         unet=self._unet)
        # one context per panel size: its own scheduler and SDXL time ids, the rest shared
        runs = {size: dataclasses.replace(run, scheduler=schedulers[size], time_ids=time_ids[size])
                for size in rows.groups}
        # a panorama's windows: SDXL time ids of the window's size (spec section 14)
        windows = {size: WindowedGroup(tiling, dataclasses.replace(runs[size], time_ids=base.time_ids(
            pipe, *reversed(tiling.window_size(pipe.vae_scale_factor)), dtype, device)), pipe.vae_scale_factor)
            for size, tiling in setup.tilings.items()}
        return Denoising(rows, runs, latents, references, batching, setup.timesteps,
                         request.settings.full_attention_share,
                         self.previews.for_run(request, pipe, base, len(rows.rows), decode_latent, sink), windows)

    def _conditioning(self, pipe, request: SetRequest, rows: RunRows, sink: EventSink) -> Conditioning:
        """Every row's text conditioning; a prompt longer than CLIP reads is said."""
        prompts = rows.prompts
        too_long = longer_than_clip(pipe, prompts)
        if too_long:
            names = ", ".join(rows.name(k) for k in too_long)
            sink(ev.Notice(f"the prompt of {names} is longer than CLIP reads "
                           f"({CLIP_TOKENS} tokens): the rest is ignored"))
        return self._encode(pipe, prompts, request.sampling.negative_prompt, request.sampling.uses_cfg)

    @staticmethod
    def _record(setup: RunSetup, state: Denoising, images: list, timings: dict) -> ev.RunResult:
        """Each picture's ``PanelDone`` (the references first) and the run's result."""
        request, pipe = setup.request, setup.pipe
        common = request.picture_parameters()
        controls = [panel["control"] for panel in request.to_dict()["panels"]]
        characters = state.main.installation.state.characters
        references, panels, anchors, masks = {}, {}, {}, {}
        windows = {row.position + 1: setup.tilings[row.size].record(pipe.vae_scale_factor)
                   for row in state.rows.panels if row.size in setup.tilings}  # a panorama's windows
        for number, (row, image) in enumerate(zip(state.rows.rows, images)):
            offset = state.references.trajectories.get(number, (None, None))[1]
            if row.role == "anchor":
                anchors[row.picture_key] = image
            else:
                (references if row.records else panels)[row.position] = image
            row_masks = characters.masks.get(number, {}) if characters is not None else {}
            if row_masks:
                masks[row.picture_key] = row_masks
            meta = _picture_metadata(request, row, common, controls, offset)
            state.main.sink(row.done(image, dict(meta, **windows.get(meta.get("index"), {})), row_masks))
        metadata = {
            "request": request.to_dict(),
            "micro_batch": state.batching.micro_batch,
            "memory_mode": setup.memory.mode,
            "vae_tiling": setup.memory.tile_vae,
            "device": str(pipe._execution_device),
            "dtype": str(pipe.unet.dtype).removeprefix("torch."),
            "timings": timings,
        }
        if windows:
            metadata["windows"] = {str(index): record for index, record in windows.items()}
        latents = {row.picture_key: state.latents[size][k].float().cpu()
                   for row, (size, k) in zip(state.rows.rows, state.rows.places)}
        return ev.RunResult(reference=references.get(0), panels=panels, metadata=metadata,
                            latents=latents, references=references, anchors=anchors, masks=masks)

    # -- what the stages call ---------------------------------------------------------------------
    _encode = staticmethod(encode_prompts)  # each base encodes its own way (bases.Base.encode_prompt)

    def _unet(self, pipe, latents, t, embeds, pooled, time_ids, residuals=None):
        self.unet_calls += 1
        down, mid = residuals if residuals is not None else (None, None)
        return pipe.unet(
            latents, t, encoder_hidden_states=embeds,
            added_cond_kwargs=base_of(pipe).added_cond_kwargs(pooled, time_ids, latents.shape[0]),
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]

    def _prepare_controls(self, pipe, request, selected) -> list[PreparedControl | None]:
        """Control maps of the selected panels, and their ControlNets loaded and checked."""
        depth_model = request.depth_model or (TINY_DEPTH if is_tiny(request.model) else None)
        return prepare_controls(request, selected, lambda kind: self.controlnet(request, kind, pipe), depth_model)


def _schedulers(pipe, request: SetRequest, rows: RunRows, device) -> dict[Size, object]:
    """A scheduler per size group, each set to the request's steps (checked against the
    scheduler's training steps)."""
    steps = request.sampling.steps
    schedulers = {size: make_scheduler(pipe.scheduler.config, request.sampling.scheduler) for size in rows.groups}
    try:
        check_steps(steps, schedulers[rows.set_size].config.num_train_timesteps)
    except ValueError as exc:
        raise GenerationError(f"{exc} (the scheduler's training steps)") from None
    for scheduler in schedulers.values():
        scheduler.set_timesteps(steps, device=device)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)
    return schedulers


def _batching(request: SetRequest, memory: mem.MemoryPlan, sink: EventSink, n: int) -> Batching:
    """Panel rows per UNet call (``n`` in all: a panel, or a panorama's window, is a row): the
    request's micro-batch, else the memory model's; the authors' full sharing runs the set as
    one batch."""
    if request.settings.full_attention_share:
        micro_batch = n
        sink(ev.Notice("full attention sharing couples all images: the set runs as one batch"))
    elif request.micro_batch is not None:
        micro_batch = min(request.micro_batch, max(n, 1))
    else:
        micro_batch = min(memory.micro_batch, max(n, 1))
    return Batching(micro_batch, micro_batch if REFERENCE_RIDES_ALONG else 0)


def _picture_metadata(request: SetRequest, row: Row, common: dict, controls: list, offset: int | None) -> dict:
    """A picture's record (its PNG's ``stylealigned`` chunk): what the set shares, and the row's own."""
    if row.role == "anchor":
        anchor = row.source
        meta = dict(common, prompt=row.prompt, seed=None if anchor.picture else anchor.seed, role="anchor",
                    character=anchor.character, anchor=anchor.number + 1)
        if anchor.picture:
            meta.update(picture=anchor.picture, inversion_offset=offset)
        return meta
    if row.records:
        reference = row.source
        meta = dict(common, prompt=row.prompt, seed=getattr(reference, "seed", None), role="reference",
                    reference_index=row.position + 1, weight=request.weights[row.position])
        if isinstance(reference, ReferencePicture):
            meta.update(picture=reference.path, inversion_guidance=reference.inversion_guidance,
                        inversion_offset=offset)
        return meta
    width, height = row.size
    return dict(common, prompt=row.source.prompt, seed=row.source.seed, role="panel", index=row.position + 1,
                control=controls[row.position], width=width, height=height)


def _free_memory() -> None:
    mem.free_device_memory()


def _user_message(error: BaseException) -> str:
    if is_expected_error(error):
        return str(error)
    if is_out_of_memory(error):
        return "out of memory: lower the size or the micro-batch, or use float16"
    return f"{type(error).__name__}: {error}"


