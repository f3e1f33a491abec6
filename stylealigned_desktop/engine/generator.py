"""The storyboard engine: the references once per step, panels in micro-batches.

Panels never see each other (spec section 3), so every denoising step runs the references once
(``record``: they leave keys, values and statistics in every shared layer; with
``REFERENCE_RIDES_ALONG`` the first micro-batch's panels share that call and use them at once),
and then the panels in micro-batches of any size (``replay``). Each panel's result depends only on its
own prompt, seed and control, the style source and the settings: not on the other panels, their
order or the micro-batch size. Memory per step is that of one micro-batch plus the reference's
cached keys and values, whatever the number of panels.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from . import events as ev
from . import memory as mem
from .denoise import (
    Conditioning,
    PreparedControl,
    RunContext,
    control_residuals,
    decode_latent,
    predicted_x0,
)
from .errors import is_expected_error
from .install import Installation
from .limits import CLIP_TOKENS, check_steps
from .lora import apply_loras, check_lora, lora_identity
from .models import TINY, load_pipeline, model_identity, resolve_device, resolve_dtype
from .preview import latent_to_rgb
from .request import ReferencePicture, SetRequest

EventSink = Callable[[ev.Event], None]


class GenerationCancelled(Exception):
    """Raised inside the engine when the cancel event is set; the run ends with ``Cancelled``."""


class GenerationError(RuntimeError):
    """A generation that cannot go on, with a message for the user."""

    expected = True  # engine.errors.is_expected_error: one line in the log, no traceback


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


def _longer_than_clip(pipe, prompts: Sequence[str]) -> list[int]:
    """Indices of the prompts the text encoders cut (more tokens than the tokenizer's limit)."""
    tokenizer = pipe.tokenizer if pipe.tokenizer is not None else pipe.tokenizer_2
    if tokenizer is None:
        return []
    limit = min(tokenizer.model_max_length, CLIP_TOKENS)
    return [k for k, prompt in enumerate(prompts) if len(tokenizer(prompt).input_ids) > limit]


def _not_about_a_cut_prompt(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not message.startswith(("The following part of your input was truncated",
                                   "Token indices sequence length is longer than"))


# diffusers and transformers log a cut prompt on every encode (and transformers on counting it);
# the engine says it once per run, as a Notice naming the panel
for _name in ("diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl",
              "transformers.tokenization_utils_base"):
    logging.getLogger(_name).addFilter(_not_about_a_cut_prompt)


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def workload(request: SetRequest, pipe=None) -> mem.Workload:
    """What a request asks of the device, for the memory model (``engine/memory.py``)."""
    kinds = {request.panels[i].control.kind for i in request.selected if request.panels[i].control is not None}
    sampling = request.sampling
    set_size = (sampling.width, sampling.height)
    largest = max((request.panel_size(i) for i in request.selected), key=lambda s: s[0] * s[1], default=set_size)
    dtype = resolve_dtype(request.dtype, resolve_device(request.device))
    vae_upcast = True
    if pipe is not None:
        vae_upcast = pipe.vae.dtype != torch.float32 and bool(pipe.vae.config.force_upcast)
    return mem.Workload(width=sampling.width, height=sampling.height, cfg=sampling.uses_cfg,
                        references=max(1, len(request.used_references)), panel_width=largest[0],
                        panel_height=largest[1], controlnets=len(kinds),
                        bytes_per_weight=torch.finfo(dtype).bits // 8, vae_upcast=vae_upcast)


REFERENCE_RIDES_ALONG = False
"""Whether the first micro-batch of panels rides in the references' UNet call (one call fewer per
step). Off: a panel's rows then run in a call of the same composition whatever the sharding, so a
set split across server replicas stays pixel for pixel the local run
(tests/server/test_sharding.py); riding along changes a panel's batch and so its rounding, and
its gain was not measurable on the shared CPU (docs/performance.md, issue 15)."""


@dataclasses.dataclass
class Batching:
    """How the panels are grouped into UNet calls; shrinks on out-of-memory for the rest of the run."""

    micro_batch: int
    """Panels per call."""
    with_reference: int
    """Panels in the call that carries the references (0: the references alone)."""


class Engine:
    """Holds loaded models (cached across requests) and runs requests, one at a time.

    ``generate`` is meant for a worker thread; it reports progress through ``on_event`` and
    stops within one denoising step once ``cancel`` is set.
    """

    def __init__(self, loader: Callable = load_pipeline):
        self._loader = loader
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

        The cache key is the model, device, dtype, VAE, LoRAs (each by its content and weight:
        a file changed in place is another LoRA, a copy elsewhere the same) and memory mode. A
        new model, device, dtype or VAE loads anew; other LoRAs or weights change the loaded
        adapters, another memory mode moves the models, both in place.
        """
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        base = (model, str(torch_device), str(torch_dtype), vae)
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
        from diffusers import (  # noqa: F401
            DDIMScheduler,
            DPMSolverMultistepScheduler,
            EulerDiscreteScheduler,
            StableDiffusionXLPipeline,
        )
        from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

        with torch.no_grad():
            x = torch.zeros(1, 4, 8, 8)
            torch.nn.functional.conv2d(x, torch.zeros(4, 4, 3, 3), padding=1)
            q = torch.zeros(1, 2, 16, 8)
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
            torch.nn.functional.group_norm(x, 2)
        mem.keep_out_of_collections()  # the libraries just imported live as long as the process

    def unload(self) -> None:
        self._pipe, self._pipe_key = None, None
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
        from .control import DEFAULT_CONTROLNETS, ControlNetCache

        if self._controlnets is None:
            self._controlnets = ControlNetCache()
        source = getattr(request, f"controlnet_{kind}") or (TINY if request.model == TINY else DEFAULT_CONTROLNETS[kind])
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
            trajectory = self._trajectory(pipe, request, scheduler.timesteps, sink, cancel or threading.Event())
            return self._trajectory_key(request, scheduler.timesteps)[0], trajectory

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
        started = time.perf_counter()
        sampling, settings = request.sampling, request.settings
        selected = list(request.selected)
        set_size = (sampling.width, sampling.height)
        if settings.full_attention_share and request.only is not None:
            raise GenerationError(
                "full_attention_share couples every image of the set: it cannot re-roll single panels"
            )
        if settings.full_attention_share and (
                len(request.references) > 1 or any(request.panel_size(i) != set_size for i in selected)):
            raise GenerationError("full_attention_share is the authors' ablation of one reference: it takes "
                                  "neither several references nor panels of their own size")
        pipe, memory_mode = self._request_pipeline(request, sink)
        loaded = time.perf_counter()
        device = pipe._execution_device  # where the models run, whatever the offloading
        dtype = pipe.unet.dtype
        halves = 2 if sampling.uses_cfg else 1

        # Rows: the references that are seen (weight above 0; spec section 11), then the panels.
        used = list(request.used_references)
        references = [request.references[r] for r in used]
        n_refs = len(references)
        sizes = [set_size] * n_refs + [request.panel_size(i) for i in selected]
        groups = _size_groups(sizes)
        plan = mem.plan(memory_mode, mem.device_total_gb(device), workload(request, pipe), max(len(selected), 1),
                        mem.device_budget_gb(device))
        mem.set_vae_tiling(pipe.vae, plan.tile_vae)  # for the pictures' encodes and the decodes
        schedulers = {size: make_scheduler(pipe.scheduler.config, sampling.scheduler) for size in groups}
        scheduler = schedulers[set_size]
        try:
            check_steps(sampling.steps, scheduler.config.num_train_timesteps)
        except ValueError as exc:
            raise GenerationError(f"{exc} (the scheduler's training steps)") from None
        for each in schedulers.values():
            each.set_timesteps(sampling.steps, device=device)
            if hasattr(each, "set_begin_index"):
                each.set_begin_index(0)
        timesteps = scheduler.timesteps

        # Everything that can fail on bad input fails here, before any denoising.
        controls = self._prepare_controls(pipe, request, selected)
        trajectories = {}  # reference row -> (trajectory, offset)
        pictures = [row for row, reference in enumerate(references) if isinstance(reference, ReferencePicture)]
        for row, reference in enumerate(references):
            if isinstance(reference, ReferencePicture):
                offset = reference.offset_for(sampling.steps)
                if not 0 <= offset < sampling.steps:
                    raise GenerationError(f"inversion offset must be in 0..{sampling.steps - 1} for "
                                          f"{sampling.steps} steps, got {offset}")
                trajectories[row] = (self._trajectory(pipe, request, timesteps, sink, cancel, reference,
                                                       (pictures.index(row) + 1, len(pictures))), offset)

        reference_prompts = [r.caption if isinstance(r, ReferencePicture) else r.prompt for r in references]
        prompts = reference_prompts + [request.panels[i].prompt for i in selected]
        too_long = _longer_than_clip(pipe, prompts)
        if too_long:
            names = ", ".join("a reference" if k < n_refs else f"panel {selected[k - n_refs] + 1}" for k in too_long)
            sink(ev.Notice(f"the prompt of {names} is longer than CLIP reads "
                           f"({CLIP_TOKENS} tokens): the rest is ignored"))
        cond = self._encode(pipe, prompts, sampling.negative_prompt, halves == 2)
        # each panel's SDXL time ids and starting noise come from its own size (spec section 12)
        time_ids = {size: self._time_ids(pipe, size[1], size[0], dtype, device) for size in groups}
        f = pipe.vae_scale_factor
        seeds = [getattr(r, "seed", 0) for r in references] + [request.panels[i].seed for i in selected]
        latents = {size: torch.cat([initial_noise(seeds[row], size[1], size[0], f) for row in rows])
                   .to(device=device, dtype=dtype) * schedulers[size].init_noise_sigma
                   for size, rows in groups.items()}

        n = len(selected)
        if settings.full_attention_share:
            micro_batch = n
            sink(ev.Notice("full attention sharing couples all images: the set runs as one batch"))
        elif request.micro_batch is not None:
            micro_batch = min(request.micro_batch, max(n, 1))
        else:
            micro_batch = min(plan.micro_batch, max(n, 1))

        batching = Batching(micro_batch, micro_batch if REFERENCE_RIDES_ALONG else 0)
        installation = Installation(pipe.unet, settings)
        installation.state.halves_override = halves
        installation.state.reference_weights = tuple(request.weights[r] for r in used)
        rows_of = {row: (size, k) for size, rows in groups.items() for k, row in enumerate(rows)}
        run = RunContext(pipe=pipe, scheduler=scheduler, cond=cond, time_ids=time_ids[set_size], halves=halves,
                         guidance=sampling.guidance, controls=controls, request=request,
                         installation=installation, controlnet=lambda kind: self.controlnet(request, kind, pipe),
                         cancel=cancel, sink=sink)
        # one context per panel size: its own scheduler and SDXL time ids, the rest shared
        runs = {size: dataclasses.replace(run, scheduler=schedulers[size], time_ids=time_ids[size]) for size in groups}
        try:
            total = len(timesteps)
            for i, t in enumerate(timesteps):
                self._check(cancel)
                for row, (trajectory, offset) in trajectories.items():
                    latents[set_size][row] = self._reference_sample(scheduler, trajectory, i, offset, t).to(device, dtype)
                step_controls = run.step_controls(i, total)
                if settings.full_attention_share:
                    eps = {set_size: self._full_batch_eps(run, latents[set_size], t, step_controls)}
                else:
                    eps = {}
                    # the references lead the set-size group (its first panels may ride in their call)
                    for size in sorted(groups, key=lambda size: size != set_size):
                        panel_rows = [row for row in groups[size] if row >= n_refs]
                        controls = [step_controls[row - n_refs] for row in panel_rows]
                        if size == set_size:
                            eps[size] = self._recorded_eps(runs[size], latents[size], t, n_refs, panel_rows,
                                                           controls, batching)
                        else:
                            eps[size], batching.micro_batch = self._panel_eps(
                                runs[size], latents[size], t, panel_rows, controls, batching.micro_batch)
                x0 = {}
                for size in groups:
                    output = schedulers[size].step(eps[size], t, latents[size], return_dict=True)
                    x0[size] = getattr(output, "pred_original_sample", None)
                    if x0[size] is None:
                        x0[size] = predicted_x0(schedulers[size], latents[size], eps[size], t)
                    latents[size] = output.prev_sample.to(dtype)
                sink(ev.Step(i + 1, len(timesteps)))
                for row in range(len(sizes)):
                    size, k = rows_of[row]
                    sink(self._picture_event(ev.Preview, row, n_refs, used, selected, i + 1, latent_to_rgb(x0[size][k])))
        finally:
            installation.remove()
        for row, (trajectory, _offset) in trajectories.items():
            latents[set_size][row] = trajectory.z0.to(device, dtype)  # a picture reference: its VAE round trip
        denoised = time.perf_counter()

        images = []
        for row in range(len(sizes)):
            self._check(cancel)
            size, k = rows_of[row]
            images.append(decode_latent(pipe, latents[size][k : k + 1]))
            sink(ev.Decoding(row + 1, len(sizes)))
        finished = time.perf_counter()

        meta_common = request.picture_parameters()
        reference_images = {}
        for row, (position, reference) in enumerate(zip(used, references)):
            meta = dict(meta_common, prompt=reference_prompts[row], seed=getattr(reference, "seed", None),
                        role="reference", reference_index=position + 1, weight=request.weights[position])
            if isinstance(reference, ReferencePicture):
                meta.update(picture=reference.path, inversion_guidance=reference.inversion_guidance,
                            inversion_offset=trajectories[row][1])
            reference_images[position] = images[row]
            sink(ev.PanelDone(None, images[row], meta, position))
        panel_images = {}
        for row, index in enumerate(selected, start=n_refs):
            panel = request.panels[index]
            width, height = sizes[row]
            meta = dict(meta_common, prompt=panel.prompt, seed=panel.seed, role="panel", index=index + 1,
                        control=request.to_dict()["panels"][index]["control"], width=width, height=height)
            panel_images[index] = images[row]
            sink(ev.PanelDone(index, images[row], meta))
        metadata = {
            "request": request.to_dict(),
            "micro_batch": batching.micro_batch,
            "memory_mode": memory_mode,
            "vae_tiling": plan.tile_vae,
            "device": str(device),
            "dtype": str(dtype).removeprefix("torch."),
            "timings": {
                "load_s": round(loaded - started, 3),
                "denoise_s": round(denoised - loaded, 3),
                "decode_s": round(finished - denoised, 3),
                "per_step_s": round((denoised - loaded) / max(1, len(timesteps)), 4),
            },
        }
        final_latents = {}
        for row in range(len(sizes)):
            size, k = rows_of[row]
            key = selected[row - n_refs] if row >= n_refs else (None if used[row] == 0 else ("reference", used[row]))
            final_latents[key] = latents[size][k].float().cpu()
        return ev.RunResult(reference=reference_images.get(0), panels=panel_images, metadata=metadata,
                            latents=final_latents, references=reference_images)

    @staticmethod
    def _picture_event(kind, row, n_refs, used, selected, step, image):
        """A Preview of a row: a reference's (``index`` None, its position) or a panel's."""
        if row < n_refs:
            return kind(None, step, image, used[row])
        return kind(selected[row - n_refs], step, image)

    # -- pieces of a step -----------------------------------------------------------------------
    @staticmethod
    def _check(cancel: threading.Event) -> None:
        if cancel.is_set():
            raise GenerationCancelled()

    @staticmethod
    def _encode(pipe, prompts: list[str], negative_prompt: str | None, cfg: bool) -> Conditioning:
        """Each distinct prompt is encoded alone, a batch of one: a text encoder's matrix kernels may
        round by batch size (MKL's AVX2 path does, on AMD CPUs), and a panel's numbers must not
        depend on which other prompts share its set (spec section 3)."""
        encoded = {}
        for prompt in dict.fromkeys(prompts):
            encoded[prompt] = pipe.encode_prompt(
                prompt=[prompt],
                device=pipe._execution_device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=cfg,
                negative_prompt=None if negative_prompt is None else [negative_prompt],
            )
        parts = zip(*(encoded[prompt] for prompt in prompts))
        embeds, negative, pooled, negative_pooled = (
            None if part[0] is None else torch.cat(part) for part in parts)
        return Conditioning(embeds, pooled, negative, negative_pooled)

    @staticmethod
    def _time_ids(pipe, height: int, width: int, dtype, device) -> torch.Tensor:
        projection = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else None
        ids = pipe._get_add_time_ids((height, width), (0, 0), (height, width), dtype=dtype,
                                     text_encoder_projection_dim=projection)
        return ids.to(device)

    def _unet(self, pipe, latents, t, embeds, pooled, time_ids, residuals=None):
        self.unet_calls += 1
        down, mid = residuals if residuals is not None else (None, None)
        return pipe.unet(
            latents, t, encoder_hidden_states=embeds,
            added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids.repeat(latents.shape[0], 1)},
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]

    def _eps(self, run: RunContext, latents, t, rows, controls=None):
        """CFG-combined noise prediction for some rows of the set (latents: those rows).

        ``controls``: one entry per row (None: no control), or None for no control at all.
        """
        model_input = torch.cat([latents] * run.halves) if run.halves == 2 else latents
        model_input = run.scheduler.scale_model_input(model_input, t)
        embeds, pooled = run.cond.rows(rows, run.halves)
        residuals = control_residuals(run, model_input, t, embeds, pooled, controls) if controls else None
        noise = self._unet(run.pipe, model_input, t, embeds, pooled, run.time_ids, residuals)
        if run.halves == 2:
            uncond, text = noise.chunk(2)
            noise = uncond + run.guidance * (text - uncond)
        return noise

    @staticmethod
    def _reference_sample(scheduler, trajectory, i, offset, t):
        """The reference row's sample at step i, in the scheduler's own scaling.

        The trajectory holds UNet inputs; ``scale_model_input`` is linear (identity for DDIM and
        DPM-Solver, 1/sqrt(sigma^2 + 1) for Euler), so dividing by its factor gives the sample.
        """
        from .inversion import reference_unet_input

        unet_input = reference_unet_input(trajectory, i, offset)
        factor = scheduler.scale_model_input(torch.ones(1, device=t.device), t).item()
        return unet_input / factor

    def _trajectory(self, pipe, request, timesteps, sink, cancel, style=None, place=(1, 1)):
        """A reference picture's DDIM trajectory (``style``; None: the request's first
        picture), from the cache or inverted now; ``place``: (which, of how many) pictures
        this run reads, for the Inverting events."""
        from .inversion import InversionCancelled, encode_picture, invert

        style = style or _first_picture(request)
        sampling = request.sampling
        key, picture = self._trajectory_key(request, timesteps, style)
        levels = list(key.timesteps)

        def compute():
            z0 = encode_picture(pipe, picture)
            return invert(pipe, z0, style.caption, sampling.steps, style.inversion_guidance,
                          sampling.width, sampling.height, scheduler=sampling.scheduler, timesteps=levels,
                          on_step=lambda done, total: sink(ev.Inverting(done, total, *place)), cancel=cancel)

        try:
            trajectory = self.trajectory_cache(request.cache_dir).get_or_compute(key, compute)
        except InversionCancelled:
            raise GenerationCancelled() from None
        if [int(t) for t in trajectory.timesteps] != levels:
            raise GenerationError("the cached inversion does not match this scheduler's timesteps")
        return trajectory

    @staticmethod
    def _trajectory_key(request, timesteps, style=None):
        """The cache key of a reference picture's trajectory (``style``; None: the request's
        first picture), and the fitted picture. ``timesteps``: the generation schedule's levels
        (the inversion steps between them, spec 7.3)."""
        from .images import fit_picture, load_picture, picture_hash
        from .inversion import TrajectoryKey

        style, sampling = style or _first_picture(request), request.sampling
        picture = fit_picture(load_picture(style.path), sampling.width, sampling.height)
        key = TrajectoryKey(
            picture_hash=picture_hash(picture), caption=style.caption,
            model=model_identity(request.model, request.vae, request.loras),
            width=sampling.width, height=sampling.height, scheduler=sampling.scheduler,
            steps=sampling.steps, guidance=float(style.inversion_guidance),
            timesteps=tuple(int(t) for t in timesteps),
        )
        return key, picture

    def _prepare_controls(self, pipe, request, selected) -> list[PreparedControl | None]:
        """Control maps of the selected panels, and their ControlNets loaded and checked."""
        from .control import ControlSettings, preprocess

        prepared: list[PreparedControl | None] = []
        for index in selected:
            control = request.panels[index].control
            if control is None:
                prepared.append(None)
                continue
            self.controlnet(request, control.kind, pipe)  # a missing or mismatched model fails now
            depth_model = request.depth_model or (TINY if request.model == TINY else None)
            extra = {"depth_model": depth_model} if depth_model else {}
            width, height = request.panel_size(index)  # the map fitted to the panel's own size
            settings = ControlSettings.for_panel(control, width, height, **extra)
            control_map = preprocess(control.image, control.mode, settings)
            array = torch.from_numpy(np.asarray(control_map, dtype=np.float32) / 255.0)
            prepared.append(PreparedControl(control, array.permute(2, 0, 1).unsqueeze(0)))
        return prepared

    def _recorded_eps(self, run: RunContext, latents, t, n_refs: int, rows, controls, batching: Batching):
        """Noise predictions of the set-size group: the references (its first ``n_refs`` rows)
        and its panels (conditioning ``rows``).

        The references run in one UNet call (``record``: they attend plainly and leave their
        keys, values and statistics, which later calls replay) together with the first
        ``batching.with_reference`` panels, which use them at once (0 unless
        ``REFERENCE_RIDES_ALONG``). Out of memory in that call halves the panels riding along,
        down to the references alone; ``batching`` keeps the smaller sizes for the rest of the run.
        """
        while True:
            self._check(run.cancel)
            first = min(batching.with_reference, len(rows))
            run.installation.state.mode = "record"
            try:
                head = self._eps(run, latents[: n_refs + first], t, list(range(n_refs)) + rows[:first],
                                 [None] * n_refs + controls[:first])
                break
            except Exception as error:
                if not _is_out_of_memory(error):
                    raise
                _free_memory()
                if first == 0:
                    raise GenerationError(
                        "out of memory for the reference alone: lower the size, close other GPU programs, "
                        "or use a smaller dtype") from error
                batching.with_reference = first // 2
                batching.micro_batch = min(batching.micro_batch, max(1, first // 2))
                run.sink(ev.Notice(f"out of memory: continuing with {batching.micro_batch} panel(s) at a time"
                                   + ("" if batching.with_reference else " (the reference on its own)")))
        if first == len(rows):
            return head
        rest, batching.micro_batch = self._panel_eps(run, latents[n_refs + first:], t, rows[first:],
                                                     controls[first:], batching.micro_batch)
        batching.with_reference = min(batching.with_reference, batching.micro_batch)
        return torch.cat([head, rest])

    def _full_batch_eps(self, run: RunContext, latents, t, step_controls):
        run.installation.state.mode = "batch"
        return self._eps(run, latents, t, slice(None), [None] + step_controls)

    def _panel_eps(self, run: RunContext, latents, t, rows, controls, micro_batch: int):
        """Noise predictions of panels of one size (conditioning ``rows``), micro-batch by
        micro-batch (halved on out-of-memory); each micro-batch replays the recorded references."""
        run.installation.state.mode = "replay"
        n = latents.shape[0]
        out = torch.empty_like(latents)
        start = 0
        while start < n:
            self._check(run.cancel)
            stop = min(n, start + micro_batch)
            try:
                out[start:stop] = self._eps(run, latents[start:stop], t, rows[start:stop], controls[start:stop])
            except Exception as error:
                if not _is_out_of_memory(error):
                    raise
                _free_memory()
                if micro_batch == 1:
                    raise GenerationError(
                        "out of memory even with one panel at a time: lower the size, close other GPU "
                        "programs, or use a smaller dtype"
                    ) from error
                micro_batch = max(1, micro_batch // 2)
                run.sink(ev.Notice(f"out of memory: continuing with {micro_batch} panel(s) at a time"))
                continue
            start = stop
        return out, micro_batch


def _first_picture(request: SetRequest) -> ReferencePicture:
    picture = next((r for r in request.references if isinstance(r, ReferencePicture)), None)
    if picture is None:
        raise GenerationError("the set has no reference picture to invert")
    return picture


def _size_groups(sizes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """Rows by (width, height), in order of first appearance: rows of one size share latents, a
    scheduler and their UNet micro-batches (spec section 12)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for row, size in enumerate(sizes):
        groups.setdefault(size, []).append(row)
    return groups


def _free_memory() -> None:
    mem.free_device_memory()


def _user_message(error: BaseException) -> str:
    if is_expected_error(error):
        return str(error)
    if _is_out_of_memory(error):
        return "out of memory: lower the size or the micro-batch, or use float16"
    return f"{type(error).__name__}: {error}"


