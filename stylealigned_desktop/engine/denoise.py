"""The denoising of one run: its per-step state, one step, and the UNet calls by rows.

The engine (``generator.py``) prepares a :class:`Denoising` (latents per size group, one
:class:`RunContext` per size group, the references' trajectories, the batching) and
:func:`denoise` runs every step of the schedule on it. One step (:func:`denoise_step`):

1. the picture references take their place on their inversion trajectory
   (:class:`~.references.ReferenceRows`);
2. noise predictions per size group (:func:`group_eps`): the references in one UNet call that
   records their shared layers (:func:`recorded_eps`), then the panels in micro-batches that
   replay them (:func:`panel_eps`), halved on out-of-memory (:class:`Batching`);
3. each size group's scheduler step (:func:`advance`), then the ``Step`` event and the
   ``Preview`` of each row whose preview is due (:attr:`Denoising.previews`: the chosen
   decoder on the row's predicted x0, throttled; ``engine/preview_decoders.py``).

Then :func:`decode_rows` decodes every row with the VAE (:func:`decode_latent`). The seams of
this wave: MultiDiffusion windows (spec section 14, ``windows.py``) are rows whose outputs
:func:`group_eps` averages into their panel's one prediction before :func:`advance` steps the whole
panel latent (and its preview is the whole panel's x0). Character anchors (section 13) follow the
references in a UNet call of their own (:func:`recorded_eps`), and the masks of a step are made
at its end (``character_attention.CharacterState``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import events as ev
from . import memory as mem
from .bases import Base
from .errors import GenerationError, raise_if_cancelled
from .install import Installation
from .preview_decoders import LivePreviews, scheduler_x0
from .references import ReferenceRows
from .request import PanelControl, SetRequest
from .rows import RunRows, Size


@dataclass
class Conditioning:
    """Text conditioning of rows, both CFG halves kept separately: (rows, ...) each. The pooled
    embeddings are None on a base without them (SD 1.x / 2.x)."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None
    negative_embeds: torch.Tensor | None
    negative_pooled: torch.Tensor | None

    def rows(self, index: Sequence[int] | slice, halves: int):
        """UNet inputs for these rows, laid out [uncond rows | cond rows] when CFG is on."""
        pooled = None
        if halves == 1:
            return self.embeds[index], None if self.pooled is None else self.pooled[index]
        if self.pooled is not None:
            pooled = torch.cat([self.negative_pooled[index], self.pooled[index]])
        return torch.cat([self.negative_embeds[index], self.embeds[index]]), pooled


@dataclass
class PreparedControl:
    """A panel's control map as the ControlNet takes it: (1, 3, H, W) in [0, 1]."""

    control: PanelControl
    image: torch.Tensor

    def active(self, step: int, total: int) -> bool:
        """Whether the control acts at this step (diffusers' controlnet_keep rule)."""
        return not (step / total < self.control.guidance_start or (step + 1) / total > self.control.guidance_end)


def prepare_controls(request: SetRequest, selected, controlnet: Callable[[str], Any],
                     depth_model: str | None) -> list[PreparedControl | None]:
    """Control maps of the selected panels (each fitted to its panel's own size), their
    ControlNets loaded first (``controlnet(kind)``: a missing or mismatched model fails now)."""
    from .control import ControlSettings, preprocess

    prepared: list[PreparedControl | None] = []
    for index in selected:
        control = request.panels[index].control
        if control is None:
            prepared.append(None)
            continue
        controlnet(control.kind)
        extra = {"depth_model": depth_model} if depth_model else {}
        width, height = request.panel_size(index)
        settings = ControlSettings.for_panel(control, width, height, **extra)
        control_map = preprocess(control.image, control.mode, settings)
        array = torch.from_numpy(np.asarray(control_map, dtype=np.float32) / 255.0)
        prepared.append(PreparedControl(control, array.permute(2, 0, 1).unsqueeze(0)))
    return prepared


@dataclass
class RunContext:
    """Everything the UNet calls of one run share; built once per run by the engine."""

    pipe: Any
    base: Base
    """The pipeline's base (``bases.base_of``): its added conditioning, what its UNet predicts."""
    scheduler: Any
    cond: Conditioning
    time_ids: torch.Tensor | None
    """SDXL's size time ids of this size group; None on bases without them."""
    halves: int
    guidance: float
    controls: list[PreparedControl | None]
    """One per selected panel (the reference has none)."""
    request: SetRequest
    installation: Installation
    controlnet: Callable[[str], Any]
    """The ControlNet of a kind ("canny", "depth"), loaded once per engine."""
    cancel: threading.Event
    sink: Callable
    unet: Callable
    """The UNet call, ``unet(pipe, latents, t, embeds, pooled, time_ids, residuals)`` (the engine's)."""

    def step_controls(self, step: int, total: int) -> list[PreparedControl | None]:
        """The panels' controls that act at this step (None where a panel has none or it is off)."""
        return [c if c is not None and c.active(step, total) else None for c in self.controls]


@dataclass
class Batching:
    """How the panels are grouped into UNet calls; shrinks on out-of-memory for the rest of the run."""

    micro_batch: int
    """Panels per call."""
    with_reference: int
    """Panels in the call that carries the references (0: the references alone)."""


@dataclass
class Denoising:
    """The state of one run from step to step."""

    rows: RunRows
    runs: dict[Size, RunContext]
    """One context per size group (its scheduler and SDXL time ids; the rest shared)."""
    latents: dict[Size, torch.Tensor]
    """Per size group, its rows' latents in row order (the set's size: the references first)."""
    references: ReferenceRows
    batching: Batching
    timesteps: torch.Tensor
    full_attention_share: bool
    """The authors' ablation: every row in one call (one reference, the set's size only)."""
    previews: LivePreviews | None = None
    """The run's live previews (None: off): which rows' previews are due after a step, and the
    decoder that makes them from each row's predicted clean latent."""
    windows: dict[Size, Any] = field(default_factory=dict)
    """The size groups of wide panels (``windows.WindowedGroup``): their panels' rows run as
    MultiDiffusion windows (spec section 14)."""

    @property
    def main(self) -> RunContext:
        """The set-size group's context (the references' group)."""
        return self.runs[self.rows.set_size]


def denoise(state: Denoising) -> None:
    """Every step of the schedule; the shared layers are removed again whatever happens."""
    try:
        for i, t in enumerate(state.timesteps):
            denoise_step(state, i, t)
    finally:
        state.main.installation.remove()
    state.references.finish(state.latents[state.rows.set_size])


def denoise_step(state: Denoising, i: int, t) -> None:
    """One step for every row: references placed, noise predicted, schedulers stepped, events."""
    run, total = state.main, len(state.timesteps)
    started = time.perf_counter()
    raise_if_cancelled(run.cancel)
    state.references.place(state.latents[state.rows.set_size], run.scheduler, i, t)
    step_controls = run.step_controls(i, total)
    characters = run.installation.state.characters
    if characters is not None:
        characters.begin_step(i)
    if state.full_attention_share:
        eps = {state.rows.set_size: full_batch_eps(run, state.latents[state.rows.set_size], t, step_controls)}
    else:
        eps = group_eps(state, t, step_controls)
    if characters is not None:
        characters.end_step()  # this step's masks: the anchors' for the next step
    x0 = advance(state, eps, t)
    run.sink(ev.Step(i + 1, total))
    if state.previews is not None:
        show_previews(state, i + 1, x0, time.perf_counter() - started)


def show_previews(state: Denoising, step: int, x0: dict[Size, torch.Tensor], step_seconds: float) -> None:
    """The ``Preview`` of each row due after ``step``: the decoder on the row's predicted x0
    (decoded here, on the engine's thread; ``step_seconds`` feeds the throttle's budget)."""
    places = state.rows.places

    def row_x0(number: int) -> torch.Tensor:
        size, k = places[number]
        return x0[size][k]

    for number, picture in state.previews.after_step(step, row_x0, step_seconds):
        state.main.sink(state.rows.rows[number].preview(step, picture))


def group_eps(state: Denoising, t, step_controls: list[PreparedControl | None]) -> dict[Size, torch.Tensor]:
    """Noise predictions of every size group: the set's size first (its references record, and
    its first panels may ride in their call), then each other size's panels, which replay."""
    rows, n_refs, n_anchors = state.rows, len(state.rows.references), len(state.rows.anchors)
    eps = {}
    for size in rows.groups:  # the set's size comes first: the references lead the rows
        panel_rows = rows.panel_rows(size)
        controls = [step_controls[row - n_refs - n_anchors] for row in panel_rows]
        if size in state.windows:  # wide panels: the averaged outputs of their windows
            eps[size] = state.windows[size].group_eps(state, size, t, panel_rows, controls)
        elif size == rows.set_size:
            eps[size] = recorded_eps(state.runs[size], state.latents[size], t, n_refs, panel_rows, controls,
                                     state.batching, n_anchors)
        else:
            eps[size], state.batching.micro_batch = panel_eps(
                state.runs[size], state.latents[size], t, panel_rows, controls, state.batching.micro_batch)
    return eps


def advance(state: Denoising, eps: dict[Size, torch.Tensor], t) -> dict[Size, torch.Tensor]:
    """Each size group's scheduler step on its whole latents; returns the predicted clean
    latents per group (for the previews): the scheduler's own where it has one."""
    x0 = {}
    for size, run in state.runs.items():
        latents = state.latents[size]
        output = run.scheduler.step(eps[size], t, latents, return_dict=True)
        x0[size] = scheduler_x0(run.scheduler, output)
        if x0[size] is None:
            x0[size] = predicted_x0(run, latents, eps[size], t)
        state.latents[size] = output.prev_sample.to(latents.dtype)
    return x0


def decode_rows(state: Denoising) -> list:
    """Every row's final picture, in row order (cancel is checked before each decode)."""
    images = []
    for number, (size, k) in enumerate(state.rows.places, start=1):
        raise_if_cancelled(state.main.cancel)
        images.append(decode_latent(state.main.pipe, state.latents[size][k : k + 1]))
        state.main.sink(ev.Decoding(number, len(state.rows.places)))
    return images


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def eps_of_rows(run: RunContext, latents, t, rows, controls=None):
    """CFG-combined noise prediction for some rows of the set (latents: those rows).

    ``controls``: one entry per row (None: no control), or None for no control at all.
    """
    if run.installation.state.characters is not None:
        run.installation.state.characters.begin_call(rows)
    model_input = torch.cat([latents] * run.halves) if run.halves == 2 else latents
    model_input = run.scheduler.scale_model_input(model_input, t)
    embeds, pooled = run.cond.rows(rows, run.halves)
    residuals = control_residuals(run, model_input, t, embeds, pooled, controls) if controls else None
    noise = run.unet(run.pipe, model_input, t, embeds, pooled, run.time_ids, residuals)
    if run.halves == 2:
        uncond, text = noise.chunk(2)
        noise = uncond + run.guidance * (text - uncond)
    return noise


def recorded_eps(run: RunContext, latents, t, n_refs: int, rows, controls, batching: Batching, n_anchors: int = 0):
    """Noise predictions of the set-size group: the references (its first ``n_refs`` rows),
    the characters' anchors (the next ``n_anchors``, one call of their own that records them,
    spec section 13) and its panels (conditioning ``rows``).

    The references run in one UNet call (``record``: they attend plainly and leave their
    keys, values and statistics, which later calls replay) together with the first
    ``batching.with_reference`` panels, which use them at once (0 unless
    ``generator.REFERENCE_RIDES_ALONG``). Out of memory in that call halves the panels riding
    along, down to the references alone; ``batching`` keeps the smaller sizes for the rest of the run.
    """
    panels = latents[n_refs + n_anchors:]
    while True:
        raise_if_cancelled(run.cancel)
        first = 0 if n_anchors else min(batching.with_reference, len(rows))  # panels follow the anchors
        run.installation.state.mode = "record"
        try:
            head = eps_of_rows(run, torch.cat([latents[:n_refs], panels[:first]]), t,
                               list(range(n_refs)) + rows[:first], [None] * n_refs + controls[:first])
            break
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            mem.free_device_memory()
            if first == 0:
                raise GenerationError(
                    "out of memory for the reference alone: lower the size, close other GPU programs, "
                    "or use a smaller dtype") from error
            batching.with_reference = first // 2
            batching.micro_batch = min(batching.micro_batch, max(1, first // 2))
            run.sink(ev.Notice(f"out of memory: continuing with {batching.micro_batch} panel(s) at a time"
                               + ("" if batching.with_reference else " (the reference on its own)")))
    if n_anchors:
        run.installation.state.mode = "replay"
        head = torch.cat([head, eps_of_rows(run, latents[n_refs : n_refs + n_anchors], t,
                                            list(range(n_refs, n_refs + n_anchors)))])
    if first == len(rows):
        return head
    rest, batching.micro_batch = panel_eps(run, panels[first:], t, rows[first:],
                                           controls[first:], batching.micro_batch)
    batching.with_reference = min(batching.with_reference, batching.micro_batch)
    return torch.cat([head, rest])


def full_batch_eps(run: RunContext, latents, t, step_controls):
    """The authors' full sharing: the reference and every panel in one call (``batch`` mode)."""
    run.installation.state.mode = "batch"
    return eps_of_rows(run, latents, t, slice(None), [None] + step_controls)


def panel_eps(run: RunContext, latents, t, rows, controls, micro_batch: int):
    """Noise predictions of panels of one size (conditioning ``rows``), micro-batch by
    micro-batch (halved on out-of-memory); each micro-batch replays the recorded references."""
    run.installation.state.mode = "replay"
    n = latents.shape[0]
    out = torch.empty_like(latents)
    start = 0
    while start < n:
        raise_if_cancelled(run.cancel)
        stop = min(n, start + micro_batch)
        try:
            out[start:stop] = eps_of_rows(run, latents[start:stop], t, rows[start:stop], controls[start:stop])
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            mem.free_device_memory()
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


def control_residuals(run: RunContext, model_input, t, embeds, pooled, controls):
    """ControlNet residuals for the rows of one UNet batch; rows without control get zeros.

    ``controls`` has one entry per row of a CFG half. Each ControlNet runs only on its own
    panels' rows and sees the same text as the UNet row it controls (both CFG halves).
    Residuals are linear in the conditioning scale, so each row is scaled by its own panel's.
    """
    if not any(c is not None for c in controls):
        return None
    m, halves = len(controls), run.halves
    down, mid = None, None
    for kind in sorted({c.control.kind for c in controls if c is not None}):
        positions = [j for j, c in enumerate(controls) if c is not None and c.control.kind == kind]
        rows = [h * m + j for h in range(halves) for j in positions]
        image = torch.cat([controls[j].image for j in positions] * halves).to(model_input.device, model_input.dtype)
        scale = torch.tensor([controls[j].control.scale for j in positions] * halves,
                             device=model_input.device, dtype=model_input.dtype).view(-1, 1, 1, 1)
        res_down, res_mid = run.controlnet(kind)(
            model_input[rows], t, encoder_hidden_states=embeds[rows], controlnet_cond=image,
            conditioning_scale=1.0, guess_mode=False,
            added_cond_kwargs=run.base.added_cond_kwargs(None if pooled is None else pooled[rows], run.time_ids,
                                                         len(rows)),
            return_dict=False,
        )
        if down is None:
            down = [torch.zeros((model_input.shape[0],) + r.shape[1:], dtype=r.dtype, device=r.device) for r in res_down]
            mid = torch.zeros((model_input.shape[0],) + res_mid.shape[1:], dtype=res_mid.dtype, device=res_mid.device)
        for total, part in zip(down, res_down):
            total[rows] += part * scale
        mid[rows] += res_mid * scale
    return down, mid


def predicted_x0(run: RunContext, latents, output, t):
    """x0 from a model output (ε or v, as the base predicts) for schedulers whose step does not
    report it (their samples are the variance-preserving latents)."""
    alphas = run.scheduler.alphas_cumprod.to(latents.device)
    alpha = alphas[int(t)].to(torch.float32)
    return run.base.x0(output.float(), latents.float(), alpha)


def decode_latent(pipe, latents):
    """VAE decode of one latent, as the SDXL pipeline does it (float32 VAE where it must)."""
    vae = pipe.vae
    needs_upcast = vae.dtype == torch.float16 and vae.config.force_upcast
    if needs_upcast:
        vae.to(dtype=torch.float32)
    try:
        latents = latents.to(next(iter(vae.post_quant_conv.parameters())).dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            std = torch.tensor(std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            latents = latents * std / vae.config.scaling_factor + mean
        else:
            latents = latents / vae.config.scaling_factor
        with torch.no_grad():
            image = vae.decode(latents, return_dict=False)[0]
    finally:
        if needs_upcast:
            vae.to(dtype=torch.float16)
    return pipe.image_processor.postprocess(image, output_type="pil")[0]
