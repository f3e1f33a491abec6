"""Memory modes and the memory model: where the models sit, and how many panels fit at once.

Memory modes (``--memory``, Settings):

``fast``
    Every model on the accelerator for the whole run (``pipe.to(device)``).
``balanced``
    diffusers' model CPU offload (``enable_model_cpu_offload``): the text encoders, the UNet
    (with its ControlNets) and the VAE each sit on the accelerator only while they run.
``low``
    Sequential CPU offload (``enable_sequential_cpu_offload``): each layer's weights come to the
    accelerator for its own forward and leave after it; VAE tiling and slicing on.
``auto``
    The first of fast, balanced, low whose peak fits the device (``choose_mode``).

Every mode runs the same kernels on the same execution device, so pictures are identical
whichever mode runs. The engine asks the pipeline for its execution device
(``pipe._execution_device``); ``pipe.unet.device`` is the CPU or ``meta`` under offload.

The memory model (GB = 1e9 bytes, SDXL in float16) adds, for each stage of a run (text
encoding, denoising one micro-batch, VAE decode), the weights resident in the mode, the
recorded reference keys/values and the activations, measured without a GPU by
``benchmarks/activation_memory.py`` (live tensor bytes of the real SDXL UNet, ControlNet and VAE
under ``FakeTensorMode``). Activations get ``ACTIVATION_MARGIN`` for the allocator and kernel
workspaces, and only ``USABLE_FRACTION`` of the device minus ``RESERVED_GB`` is planned for.
``docs/performance.md`` tables what it decides; ``benchmarks/gpu_check.py`` checks it against
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from dataclasses import dataclass

MEMORY_MODES = ("auto", "fast", "balanced", "low")
PLACEMENTS = ("fast", "balanced", "low")

GB = 1e9
REFERENCE_PIXELS = 1024 * 1024

# Weights of SDXL base 1.0 in float16 (parameter bytes of the published configs).
UNET_GB = 5.135
TEXT_ENCODERS_GB = 1.635
VAE_GB = 0.167
CONTROLNET_GB = 2.502
BASE_WEIGHTS_GB = {  # (UNet, text encoders, one ControlNet) in float16, from published parameter counts
    "sdxl": (UNET_GB, TEXT_ENCODERS_GB, CONTROLNET_GB),
    "sd1": (1.719, 0.246, 0.723),  # SD 1.5: 860 M UNet, CLIP ViT-L text, 361 M ControlNet
    "sd2": (1.732, 0.681, 0.729),  # SD 2.x: 866 M UNet, OpenCLIP ViT-H text
}
"""The weights per base family (``bases.Base.family``). The activations below are SDXL's,
measured; SD's are taken as the same per pixel (not measured)."""
SEQUENTIAL_RESIDENT_GB = 0.25
"""``low``: the layers in flight (the largest SDXL linear is 0.03 GB) and the offload buffers."""

# Activations at 1024x1024 in float16, measured (benchmarks/activation_memory.py); they grow with
# the number of pixels (attention runs memory-efficient kernels, linear in tokens).
REFERENCE_CACHE_GB = 0.842
"""The reference's keys, values and AdaIN statistics in every shared layer, both CFG halves."""
UNET_ROW_GB = 0.166
"""One UNet row (one panel with CFG is two rows) in the engine's replay layout."""
CONTROLNET_ROW_GB = 0.067
"""Added per row when a ControlNet runs (its activations and the residuals the UNet reads)."""
VAE_DECODE_GB = 3.22
"""One untiled VAE decode in float32 (SDXL's VAE forces float32); float16 halves it."""
VAE_TILE_DECODE_GB = 3.22
"""A tiled decode costs one tile (1024x1024 pixels for SDXL's VAE) whatever the size."""
TEXT_ENCODE_GB = 0.05
TINY_DECODER_GB = 0.005
"""The tiny preview autoencoder's weights (TAESDXL, encoder and decoder, 2.4 M parameters)."""
TINY_DECODE_GB = 0.403
"""One tiny-autoencoder preview decode at 1024x1024 (measured like the others); it runs after a
step's UNet calls, so it adds to the step's peak only where it exceeds them."""

ACTIVATION_MARGIN = 1.3
USABLE_FRACTION = 0.92
RESERVED_GB = 0.6
"""The CUDA context, the desktop and other programs: planned as unavailable."""
TILING_ABOVE_PIXELS = 1536 * 1536
"""VAE tiling is on above this size in every mode (and always in ``low``)."""


@dataclass(frozen=True)
class Workload:
    """What a run asks of the device, for the memory model.

    ``width`` x ``height`` is the set's size, the size the references are drawn (and recorded)
    at; ``panel_width`` x ``panel_height`` the largest panel row's (None: the set's size; a
    panorama's row is one of its windows).
    """

    width: int = 1024
    height: int = 1024
    cfg: bool = True
    references: int = 1
    """References recorded together each step (those with weight above 0)."""
    panel_width: int | None = None
    panel_height: int | None = None
    controlnets: int = 0
    """How many distinct ControlNets the set uses (0, 1 or 2)."""
    bytes_per_weight: int = 2
    """2 for float16/bfloat16, 4 for float32."""
    vae_upcast: bool = True
    """The VAE decodes in float32 (its config forces upcasting)."""
    family: str = "sdxl"
    """The model's base family (``bases.Base.family``): its weights."""
    base_name: str = "SDXL"
    """The base as the user reads it, for the reason ``choose_mode`` gives."""
    picture_pixels: int = 0
    """The largest panel picture decoded, in pixels, when it is larger than its UNet rows (a
    panorama's rows are its MultiDiffusion windows, its decode the whole picture)."""
    tiny_preview: bool = False
    """Live previews through the tiny autoencoder (``engine/preview_decoders.py``)."""

    @property
    def pixel_factor(self) -> float:
        """The references' pixels over 1024x1024."""
        return self.width * self.height / REFERENCE_PIXELS

    @property
    def panel_pixel_factor(self) -> float:
        """The largest panel's pixels over 1024x1024."""
        return (self.panel_width or self.width) * (self.panel_height or self.height) / REFERENCE_PIXELS

    @property
    def largest_pixels(self) -> int:
        """The largest picture of the run (a reference or a panel), in pixels."""
        return max(round(max(self.pixel_factor, self.panel_pixel_factor) * REFERENCE_PIXELS), self.picture_pixels)

    @property
    def halves(self) -> int:
        return 2 if self.cfg else 1

    @property
    def dtype_factor(self) -> float:
        return self.bytes_per_weight / 2


@dataclass(frozen=True)
class MemoryPlan:
    """The memory model's decision for one run."""

    mode: str
    micro_batch: int
    tile_vae: bool
    peak_gb: float
    """Planned peak with ``micro_batch`` panels at once."""
    budget_gb: float | None
    """What the plan may use of the device; None on the CPU (no limit planned)."""
    reason: str


def usable_gb(total_gb: float) -> float:
    """What the plan may use of a device with ``total_gb``."""
    return max(0.0, total_gb * USABLE_FRACTION - RESERVED_GB)


def tile_vae_for(mode: str, work: Workload) -> bool:
    """VAE tiling: always in ``low``, and above 1536x1536 pixels in every mode."""
    return mode == "low" or work.largest_pixels > TILING_ABOVE_PIXELS


def stage_peaks_gb(mode: str, work: Workload, panels_at_once: int, tile_vae: bool | None = None) -> dict[str, float]:
    """Planned peak of each stage of a run (GB): text encoding, denoising, VAE decode."""
    if mode not in PLACEMENTS:
        raise ValueError(f"memory mode must be one of {', '.join(PLACEMENTS)}, got {mode!r}")
    tile_vae = tile_vae_for(mode, work) if tile_vae is None else tile_vae
    d = work.dtype_factor
    unet_gb, text_gb, controlnet_gb = BASE_WEIGHTS_GB[work.family]
    unet, text, vae = unet_gb * d, text_gb * d, VAE_GB * d
    controlnets = controlnet_gb * d * work.controlnets
    everything = unet + text + vae + controlnets
    # Every reference's keys/values stay recorded all step; the UNet then runs either the
    # references' rows (recording) or one micro-batch of panel rows (replaying), the larger counts.
    cache = REFERENCE_CACHE_GB * work.pixel_factor * work.references * work.halves / 2 * d
    row_pixels = max(work.references * work.pixel_factor, max(1, panels_at_once) * work.panel_pixel_factor)
    per_row = UNET_ROW_GB + (CONTROLNET_ROW_GB if work.controlnets else 0.0)
    unet_rows = row_pixels * work.halves * per_row * ACTIVATION_MARGIN * d
    preview = TINY_DECODE_GB * work.largest_pixels / REFERENCE_PIXELS * ACTIVATION_MARGIN * d if work.tiny_preview else 0.0
    denoise_activations = cache + max(unet_rows, preview)
    # the tiny decoder stays resident in fast and balanced; low brings it in layer by layer
    tiny = TINY_DECODER_GB * d if work.tiny_preview and mode != "low" else 0.0
    decode_factor = 2.0 if work.vae_upcast else d
    decode_activations = ACTIVATION_MARGIN * decode_factor / 2 * (
        VAE_TILE_DECODE_GB if tile_vae else VAE_DECODE_GB * work.largest_pixels / REFERENCE_PIXELS)
    vae_weights = VAE_GB * (2.0 if work.vae_upcast else d)
    if mode == "fast":
        resident = {"encode": everything, "denoise": everything, "decode": everything - vae + vae_weights}
    elif mode == "balanced":
        resident = {"encode": text * 0.85, "denoise": unet + controlnets, "decode": vae_weights}
    else:
        resident = {"encode": SEQUENTIAL_RESIDENT_GB, "denoise": SEQUENTIAL_RESIDENT_GB,
                    "decode": SEQUENTIAL_RESIDENT_GB}
    return {
        "encode": resident["encode"] + tiny + TEXT_ENCODE_GB,
        "denoise": resident["denoise"] + tiny + denoise_activations,
        "decode": resident["decode"] + tiny + decode_activations,
    }


def peak_gb(mode: str, work: Workload, panels_at_once: int, tile_vae: bool | None = None) -> float:
    return max(stage_peaks_gb(mode, work, panels_at_once, tile_vae).values())


NO_GPU_REASON = ("no GPU on this computer: the models run from system memory, and Balanced or Low memory "
                 "would only be slower")
"""Why Auto picks Fast without a GPU (said after each run and beside the memory setting)."""


def choose_mode(total_gb: float | None, work: Workload) -> tuple[str, str]:
    """The fastest mode whose peak with one panel at a time fits, and why (for the user)."""
    if total_gb is None:
        return "fast", NO_GPU_REASON
    budget = usable_gb(total_gb)
    what = _describe(work)
    for mode in ("fast", "balanced"):
        need = peak_gb(mode, work, 1)
        if need <= budget:
            return mode, f"{what} needs about {need:.1f} GB in {mode} mode; {budget:.1f} GB of {total_gb:.0f} GB usable"
    need = peak_gb("balanced", work, 1)
    return "low", f"{what} needs about {need:.1f} GB even in balanced mode; {budget:.1f} GB of {total_gb:.0f} GB usable"


def micro_batch_for(budget_gb: float | None, mode: str, work: Workload, panels: int) -> int:
    """The most panels at once whose planned peak fits ``budget_gb`` (at least 1)."""
    panels = max(1, panels)
    if budget_gb is None:
        return panels
    best = 1
    for m in range(2, panels + 1):
        if peak_gb(mode, work, m) > budget_gb:
            break
        best = m
    return best


def plan(requested: str, total_gb: float | None, work: Workload, panels: int,
         budget_gb: float | None = None) -> MemoryPlan:
    """Mode, micro-batch and VAE tiling for a run on a device of ``total_gb`` (None: CPU).

    ``budget_gb`` caps what the micro-batch may use (a GPU's free memory now, other programs
    counted); by default the usable part of ``total_gb``.
    """
    if requested not in MEMORY_MODES:
        raise ValueError(f"memory mode must be one of {', '.join(MEMORY_MODES)}, got {requested!r}")
    if requested == "auto":
        mode, reason = choose_mode(total_gb, work)
    else:
        mode, reason = requested, "chosen in the settings"
    budget = None if total_gb is None else usable_gb(total_gb)
    if budget is not None and budget_gb is not None:
        budget = min(budget, budget_gb)
    micro_batch = micro_batch_for(budget, mode, work, panels)
    return MemoryPlan(mode=mode, micro_batch=micro_batch, tile_vae=tile_vae_for(mode, work),
                      peak_gb=peak_gb(mode, work, micro_batch), budget_gb=budget, reason=reason)


def _describe(work: Workload) -> str:
    nets = {0: "", 1: " + 1 ControlNet"}.get(work.controlnets, f" + {work.controlnets} ControlNets")
    refs = f", {work.references} references" if work.references > 1 else ""
    return f"{work.base_name}{nets} at {work.width}x{work.height}{refs}"


# -- the device ---------------------------------------------------------------------------------------
def device_total_gb(device) -> float | None:
    """An accelerator's memory (GB): a CUDA GPU's total (``cuda:N``: GPU N's own; plain ``cuda``:
    the current GPU's), a Mac's Metal working-set size; None on CPU. Reading a GPU's properties
    starts no CUDA context on it."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_properties(index).total_memory / GB
    if device.type == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", None)
        if recommended is not None:
            return recommended() / GB
        import psutil

        return psutil.virtual_memory().total / GB
    return None


def device_budget_gb(device) -> float | None:
    """What a run may use now: a CUDA GPU's free memory plus what this process holds; None on CPU."""
    import torch

    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return (free + torch.cuda.memory_reserved(device)) / GB
    return None


def free_device_memory() -> None:
    """Return cached blocks to the system (CUDA, Apple MPS) after a run or an out-of-memory.

    Nothing to do without an accelerator: a CPU tensor goes with its last reference. A full
    ``gc.collect()`` there only held the GIL for about 0.3 s after every run (half a million
    library objects scanned), which stalled the window's thread (issue 30 item 12)."""
    import torch

    mps = getattr(torch, "mps", None)
    on_mps = mps is not None and torch.backends.mps.is_available()
    if not (torch.cuda.is_available() or on_mps):
        return
    gc.collect()  # tensors held in reference cycles go before the caches are emptied
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if on_mps:
        mps.empty_cache()


@contextlib.contextmanager
def importing_libraries():
    """While torch, diffusers and transformers are imported: no automatic garbage collection,
    then every object alive (the libraries, which live as long as the process) moved out of the
    collector's view (``gc.freeze``).

    Importing them makes half a million objects, and Python's automatic full collections scan
    all of them, more each time: in a warm-up seven such scans held the GIL for 50 to 250 ms of
    CPU each, which a window's thread waits out (issue 30, item 12). Imports make next to no
    garbage. After the freeze, automatic full collections scan only what is made later. Models
    are made later, so they stay collectable.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


# -- placing models -----------------------------------------------------------------------------------
def placement_of(pipe) -> str:
    """The memory mode a pipeline is placed in, read from its UNet's accelerate hooks."""
    from accelerate.hooks import CpuOffload

    hook = getattr(pipe.unet, "_hf_hook", None)
    if hook is None:
        return "fast"
    return "balanced" if isinstance(hook, CpuOffload) else "low"


def place_pipeline(pipe, mode: str, device) -> None:
    """Put the pipeline's models where ``mode`` wants them; switches a loaded pipeline in place."""
    import torch

    if mode not in PLACEMENTS:
        raise ValueError(f"memory mode must be one of {', '.join(PLACEMENTS)}, got {mode!r}")
    device = torch.device(device)
    if placement_of(pipe) == mode and (mode != "fast" or pipe.device == device) and (
            mode == "fast" or pipe._execution_device.type == device.type):
        return
    pipe.remove_all_hooks()  # restores offloaded weights from their CPU copies
    if mode == "fast":
        pipe.to(device)
        return
    if mode == "balanced":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    if device.type == "cpu":
        _plain_cpu_execution(pipe)


def _plain_cpu_execution(pipe) -> None:
    """diffusers gives the hooks ``cpu:0``; accelerate compares devices with ``==`` and
    ``cpu:0 != cpu``, so every forward would copy the weights and sequential offload would turn
    parameters into plain tensors. The CPU as execution device (tests) is plain ``cpu``."""
    import torch

    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            for module in component.modules():
                hooks = getattr(getattr(module, "_hf_hook", None), "hooks", None) or [getattr(module, "_hf_hook", None)]
                for hook in hooks:
                    if getattr(hook, "execution_device", None) is not None:
                        hook.execution_device = torch.device("cpu")


def set_vae_tiling(vae, tiled: bool) -> None:
    """Tiled and sliced VAE encode/decode on or off (diffusers' ``enable_tiling``/``enable_slicing``)."""
    if tiled:
        vae.enable_tiling()
        vae.enable_slicing()
    else:
        vae.disable_tiling()
        vae.disable_slicing()


def place_like_unet(pipe, module) -> None:
    """Give a model that runs with the UNet (a ControlNet) the UNet's placement.

    ``fast``: on the execution device. ``balanced``: an accelerate CPU-offload hook that brings
    it in when it runs, and leaves with the UNet (when the VAE comes in, as the UNet does).
    ``low``: sequential offload, layer by layer, like every other model.
    """
    from accelerate import cpu_offload, cpu_offload_with_hook
    from accelerate.hooks import CpuOffload, remove_hook_from_module

    mode = placement_of(pipe)
    device = pipe._execution_device
    current = getattr(module, "_hf_hook", None)
    if mode == "fast":
        if current is not None:
            remove_hook_from_module(module, recurse=True)
        module.to(device)
        return
    if mode == "balanced" and isinstance(current, CpuOffload) and _joined(pipe, module):
        return
    if mode == "low" and current is not None and not isinstance(current, CpuOffload):
        return
    if current is not None:
        remove_hook_from_module(module, recurse=True)
    module.to("cpu")
    if mode == "low":
        cpu_offload(module, device, offload_buffers=len(module._parameters) > 0)
        return
    unet_hook = pipe.unet._hf_hook
    _, hook = cpu_offload_with_hook(module, device, prev_module_hook=unet_hook.prev_module_hook)
    _join_unet(pipe, hook)


def place_preview_decoder(pipe, module) -> None:
    """The tiny preview decoder (a few MB) follows the memory mode: resident on the execution
    device in ``fast`` and ``balanced`` (moving it in and out each step would cost more than it
    holds), layer by layer in ``low`` like every other model."""
    if placement_of(pipe) == "low":
        place_like_unet(pipe, module)
    else:
        module.to(pipe._execution_device)


def _leaving_with_unet(pipe):
    """The hook the VAE calls to send the UNet away (wrapped to take the UNet's companions too)."""
    vae_hook = getattr(pipe.vae, "_hf_hook", None)
    return getattr(vae_hook, "prev_module_hook", None)


def _joined(pipe, module) -> bool:
    leaving = _leaving_with_unet(pipe)
    return isinstance(leaving, _companions_hook_class()) and any(h.model is module for h in leaving.companions)


def _join_unet(pipe, hook) -> None:
    leaving = _leaving_with_unet(pipe)
    if leaving is None or getattr(leaving, "model", None) is not pipe.unet:
        raise RuntimeError("model CPU offload is not chained UNet -> VAE on this pipeline")
    companions_hook = _companions_hook_class()
    if not isinstance(leaving, companions_hook):
        leaving = companions_hook(leaving)
        pipe.vae._hf_hook.prev_module_hook = leaving
    leaving.companions.append(hook)


@functools.cache
def _companions_hook_class():
    """accelerate is imported when a pipeline is placed, not with this module."""
    from accelerate.hooks import UserCpuOffloadHook

    class UnetAndCompanions(UserCpuOffloadHook):
        """The UNet's offload hook, also offloading the models that run with it (ControlNets)."""

        def __init__(self, unet_hook):
            super().__init__(unet_hook.model, unet_hook.hook)
            self.companions = []

        def offload(self):
            super().offload()
            for companion in self.companions:
                companion.offload()

    return UnetAndCompanions
