"""Memory modes (issue 12) on the tiny model: same pictures in every mode, models where each
mode puts them at each stage of a run, VAE tiling, and the memory model's decisions.

On the CPU accelerate's hooks run with the CPU as execution device, so every mode really runs
its offloading machinery; what cannot be seen on a CPU (a weight moving to a GPU) is checked
through the hooks that would move it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine import memory as mem
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.engine.workload import workload

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memory-pictures")
    control = Image.new("RGB", (128, 96), "black")
    ImageDraw.Draw(control).rectangle((20, 30, 100, 90), fill="white")
    control.save(folder / "control.png")
    style = Image.new("RGB", (200, 150), (20, 30, 90))
    ImageDraw.Draw(style).ellipse((40, 20, 150, 130), fill=(250, 160, 20))
    style.save(folder / "style.png")
    return folder


def _request(pictures, memory, width=128, height=96, picture=True, **kwargs):
    style = (ReferencePicture(str(pictures / "style.png"), caption="a sunset", inversion_offset=1)
             if picture else GeneratedReference("a toy train", 1))
    return SetRequest(
        model="tiny",
        style=style,
        panels=(Panel("a car", 2, PanelControl(str(pictures / "control.png"), "canny", scale=0.9)),
                Panel("a boat", 3)),
        sampling=Sampling(steps=2, guidance=5.0, width=width, height=height, scheduler="euler"),
        settings=StyleAlignedSettings(share_group_norm=True),  # GroupNorms run through the hooks too
        memory=memory,
        micro_batch=2,
        cache_dir=str(pictures / f"cache-{memory}"),
        **kwargs,
    )


def _pixels(result):
    return [np.asarray(result.reference)] + [np.asarray(result.panels[i]) for i in sorted(result.panels)]


def _components(engine):
    pipe = engine._pipe
    named = {name: getattr(pipe, name) for name in ("text_encoder", "text_encoder_2", "unet", "vae")}
    for k, net in enumerate(engine._controlnets._models.values()):
        named[f"controlnet{k}"] = net
    return named


@pytest.fixture(scope="module")
def fast_run(pictures):
    return _pixels(Engine().generate(_request(pictures, "fast")))


@pytest.mark.parametrize("mode", ["balanced", "low"])
def test_every_memory_mode_gives_the_same_pictures(pictures, fast_run, mode):
    # a picture reference (VAE encode + inversion), a ControlNet panel and shared GroupNorm
    result = Engine().generate(_request(pictures, mode))
    assert result.metadata["memory_mode"] == mode
    for expected, got in zip(fast_run, _pixels(result), strict=True):
        assert np.array_equal(expected, got)


def test_low_mode_keeps_every_weight_off_the_device_between_layers(pictures, monkeypatch, tmp_path):
    """Sequential offload: at the start of every model's work (text encoders, ControlNet, UNet,
    VAE encode and decode) no weight of any model sits on the execution device, and the engine
    never asks the UNet where it is (its weights are on ``meta``)."""
    from diffusers import UNet2DConditionModel

    def no_unet_device(self):
        raise AssertionError("the engine asked pipe.unet.device; use pipe._execution_device")

    engine = Engine()
    engine.pipeline("tiny", memory="low")
    seen: list[tuple[str, dict[str, int]]] = []

    def snapshot(stage):
        def hook(module, args):
            resident = {name: sum(p.numel() for p in model.parameters() if p.device.type != "meta")
                        for name, model in _components(engine).items()}
            seen.append((stage, resident))
        return hook

    pipe = engine._pipe
    handles = [pipe.text_encoder.register_forward_pre_hook(snapshot("text_encoder")),
               pipe.text_encoder_2.register_forward_pre_hook(snapshot("text_encoder_2")),
               pipe.unet.register_forward_pre_hook(snapshot("unet")),
               pipe.vae.post_quant_conv.register_forward_pre_hook(snapshot("vae decode")),
               pipe.vae.quant_conv.register_forward_pre_hook(snapshot("vae encode"))]
    monkeypatch.setattr(UNet2DConditionModel, "device", property(no_unet_device))
    try:
        result = engine.generate(replace(_request(pictures, "low"), cache_dir=str(tmp_path)))  # encodes anew
    finally:
        for handle in handles:
            handle.remove()
    assert result.metadata["memory_mode"] == "low"
    stages = [stage for stage, _ in seen]
    assert {"text_encoder", "text_encoder_2", "unet", "vae decode", "vae encode"} <= set(stages)
    assert "controlnet0" in _components(engine)
    for stage, resident in seen:
        assert resident and all(count == 0 for count in resident.values()), (stage, resident)
    for name, model in _components(engine).items():
        hooked = [m._hf_hook for m in model.modules() if list(m.parameters(recurse=False))]
        assert hooked and all(getattr(h, "offload", False) for h in hooked), name
        assert {torch.device(h.execution_device) for h in hooked} == {torch.device("cpu")}, name


def test_balanced_mode_brings_each_model_in_for_its_stage_and_controlnets_leave_with_the_unet(
        pictures, monkeypatch):
    from accelerate.hooks import CpuOffload

    engine = Engine()
    engine.pipeline("tiny", memory="balanced")
    arrivals: list[str] = []
    departures: list[str] = []
    original_pre, original_init = CpuOffload.pre_forward, CpuOffload.init_hook

    def name_of(module):
        return next((n for n, m in _components(engine).items() if m is module), type(module).__name__)

    def pre_forward(self, module, *args, **kwargs):
        arrivals.append(name_of(module))
        return original_pre(self, module, *args, **kwargs)

    def init_hook(self, module):
        departures.append(name_of(module))
        return original_init(self, module)

    monkeypatch.setattr(CpuOffload, "pre_forward", pre_forward)
    monkeypatch.setattr(CpuOffload, "init_hook", init_hook)
    result = engine.generate(_request(pictures, "balanced", picture=False))
    assert result.metadata["memory_mode"] == "balanced"
    # text encoders first (each of the three prompts alone), then per step the reference (UNet)
    # and the panels (ControlNet, UNet) in one micro-batch, then one VAE decode per picture
    steps = 2
    assert arrivals == (["text_encoder", "text_encoder_2"] * 3 + ["unet", "controlnet0", "unet"] * steps
                        + ["vae"] * 3)
    # every model runs behind an offload hook on the execution device
    for name, model in _components(engine).items():
        assert isinstance(model._hf_hook, CpuOffload), name
        assert torch.device(model._hf_hook.execution_device) == engine._pipe._execution_device
    # when the VAE comes in it sends the UNet away, and the ControlNet with it
    departures.clear()
    engine._pipe.vae._hf_hook.prev_module_hook.offload()
    assert sorted(departures) == ["controlnet0", "unet"]


def test_switching_modes_in_place_keeps_the_pictures(pictures, fast_run):
    engine = Engine()
    loads = []
    original = engine._loader
    engine._loader = lambda *a, **k: loads.append(k["memory"]) or original(*a, **k)
    for mode in ("low", "fast", "balanced"):
        result = engine.generate(_request(pictures, mode))
        for expected, got in zip(fast_run, _pixels(result), strict=True):
            assert np.array_equal(expected, got), mode
        assert mem.placement_of(engine._pipe) == mode
    assert loads == ["low"]  # loaded once, then moved


def test_vae_tiling_runs_for_the_picture_encode_and_the_decodes_in_low_mode(pictures, monkeypatch):
    """Above the VAE's tile size (128 px for the tiny model, 1024 px for SDXL) ``low`` encodes and
    decodes in tiles; the pictures are diffusers' own tiled decode of the final latents."""
    from diffusers import AutoencoderKL

    calls = []
    for name in ("tiled_decode", "_tiled_encode"):
        original = getattr(AutoencoderKL, name)
        monkeypatch.setattr(AutoencoderKL, name,
                            lambda self, *a, _o=original, _n=name, **k: calls.append(_n) or _o(self, *a, **k))
    engine = Engine()
    result = engine.generate(_request(pictures, "low", width=192, height=136))
    assert result.metadata["vae_tiling"] is True
    assert calls.count("_tiled_encode") == 1 and calls.count("tiled_decode") == 3
    pipe = engine._pipe
    latents = result.latents[0].unsqueeze(0)
    with torch.no_grad():
        decoded = pipe.vae.tiled_decode(latents / pipe.vae.config.scaling_factor).sample
    expected = np.asarray(pipe.image_processor.postprocess(decoded, output_type="pil")[0])
    assert np.array_equal(expected, np.asarray(result.panels[0]))


def test_fast_mode_tiles_above_the_size_threshold(pictures, monkeypatch):
    """The engine applies the plan's tiling in every mode (SDXL: above 1536²; here the threshold
    is lowered to the tiny model's scale)."""
    from diffusers import AutoencoderKL

    calls = []
    original = AutoencoderKL.tiled_decode
    monkeypatch.setattr(AutoencoderKL, "tiled_decode", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    monkeypatch.setattr(mem, "TILING_ABOVE_PIXELS", 160 * 128)
    engine = Engine()
    small = engine.generate(_request(pictures, "fast", width=160, height=128, picture=False))
    assert small.metadata["vae_tiling"] is False and not calls
    large = engine.generate(_request(pictures, "fast", width=168, height=128, picture=False))
    assert large.metadata["vae_tiling"] is True and len(calls) == 3


def test_the_engine_runs_the_memory_models_micro_batch_on_a_small_card(pictures, monkeypatch):
    """A card too small for two panels at once (planned with SDXL's numbers): the engine runs one
    panel at a time, as the plan says, and draws what fast mode draws one panel at a time."""
    one_at_a_time = _pixels(Engine().generate(replace(_request(pictures, "fast", picture=False), micro_batch=1)))
    monkeypatch.setattr(mem, "device_total_gb", lambda device: 6.3)
    request = replace(_request(pictures, "balanced", picture=False), micro_batch=None)
    assert mem.plan("balanced", 6.3, workload(request), 2).micro_batch == 1
    assert mem.plan("balanced", 40.0, workload(request), 2).micro_batch == 2
    result = Engine().generate(request)
    assert result.metadata["micro_batch"] == 1
    for want, got in zip(one_at_a_time, _pixels(result), strict=True):
        assert np.array_equal(want, got)


def test_a_requests_workload_counts_its_used_references_and_its_largest_panel(pictures):
    request = SetRequest(
        model="tiny",
        style=(GeneratedReference("ink", 1, 2.0), GeneratedReference("pencil", 2, 0.0),
               ReferencePicture(str(pictures / "style.png"), weight=1.0)),
        panels=(Panel("a car", 3, size=(192, 64)), Panel("a boat", 4, size=(64, 256)), Panel("a kite", 5)),
        sampling=Sampling(steps=2, width=128, height=128), dtype="float32")
    work = workload(request)
    assert (work.references, work.width, work.height) == (2, 128, 128)  # the weight-0 reference is not run
    assert (work.panel_width, work.panel_height) == (64, 256) and work.bytes_per_weight == 4
    only_car = workload(replace(request, only=(0,)))
    assert (only_car.panel_width, only_car.panel_height) == (192, 64)


def test_tiling_is_on_in_low_mode_and_above_1536_squared_in_every_mode():
    small, large = mem.Workload(1024, 1024), mem.Workload(1600, 1536)
    assert [mem.tile_vae_for(mode, small) for mode in mem.PLACEMENTS] == [False, False, True]
    assert [mem.tile_vae_for(mode, large) for mode in mem.PLACEMENTS] == [True, True, True]
    assert mem.tile_vae_for("fast", mem.Workload(1536, 1536)) is False


def test_auto_on_the_cpu_is_fast_and_says_so(pictures):
    seen = []
    result = Engine().generate(_request(pictures, "auto", picture=False), seen.append)
    assert result.metadata["memory_mode"] == "fast"
    said = [e.message for e in seen if isinstance(e, ev.Notice) and "memory" in e.message]
    assert said == [f"memory mode fast (auto): {mem.NO_GPU_REASON}"] and "no GPU" in said[0]


def test_auto_on_a_small_gpu_says_what_it_picked(monkeypatch):
    monkeypatch.setattr(mem, "device_total_gb", lambda device: 8.0)
    seen = []
    mode = Engine._memory_mode(SetRequest(model="tiny", style=GeneratedReference("x"), panels=(Panel("y", 1),),
                                          device="cpu", dtype="float16"), seen.append)
    assert mode == "balanced"
    assert len(seen) == 1 and "memory mode balanced (auto)" in seen[0].message  # said on every device
    seen.clear()
    monkeypatch.setattr("stylealigned_desktop.engine.generator.resolve_device", lambda d: torch.device("meta"))
    mode = Engine._memory_mode(SetRequest(model="tiny", style=GeneratedReference("x"), panels=(Panel("y", 1),),
                                          dtype="float16"), seen.append)
    assert mode == "balanced"
    assert len(seen) == 1 and "memory mode balanced (auto)" in seen[0].message and "8 GB" in seen[0].message


def test_auto_plans_with_the_chosen_gpus_own_memory(monkeypatch):
    """``--device cuda:N --memory auto``: the plan uses GPU N's total memory as CUDA reports it
    (no GPU here: torch.cuda answers as a machine with a 24 GB GPU 0 and an 8 GB GPU 1 whose
    current device is 0)."""
    from types import SimpleNamespace

    totals = {0: 24e9, 1: 8e9}
    asked = []

    def properties(index):
        asked.append(index)
        return SimpleNamespace(name=f"GPU {index}", total_memory=int(totals[index]))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)

    def auto(device):
        seen = []
        request = SetRequest(model="tiny", style=GeneratedReference("x"), panels=(Panel("y", 1),), device=device,
                             dtype="float16")
        return Engine._memory_mode(request, seen.append), [e.message for e in seen]

    for device, index, expected in (("cuda:1", 1, ("balanced", "8 GB")), ("cuda:0", 0, ("fast", "24 GB")),
                                    ("cuda", 0, ("fast", "24 GB"))):  # plain cuda: the current GPU
        mode, said = auto(device)
        assert len(said) == 1 and (mode, expected[1] in said[0]) == (expected[0], True), (device, said)
        assert asked[-1] == index, device
    assert mem.device_total_gb(torch.device("cuda:1")) == pytest.approx(8.0)


def test_mps_memory_is_returned_after_a_run(pictures, monkeypatch):
    import torch._dynamo  # noqa: F401  (on first import it reads is_available.__wrapped__: import it unpatched)

    emptied = []
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: emptied.append(1))
    Engine().generate(_request(pictures, "fast", picture=False, device="cpu"))
    assert emptied


def test_mps_plans_with_the_metal_working_set(monkeypatch):
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 21_000_000_000, raising=False)
    assert mem.device_total_gb(torch.device("mps")) == pytest.approx(21.0)
    assert mem.device_total_gb(torch.device("cpu")) is None


# -- the memory model ---------------------------------------------------------------------------------

TABLE_PANELS = 8
SIZES = (("8 GB", 8), ("12 GB", 12), ("16 GB", 16), ("24 GB", 24))
WORKLOADS = (("SDXL", 1024, 0), ("SDXL + 1 ControlNet", 1024, 1), ("SDXL + 2 ControlNets", 1024, 2),
             ("SDXL", 1536, 0), ("SDXL + 1 ControlNet", 1536, 1), ("SDXL + 2 ControlNets", 1536, 2))

# The memory model's choice (auto) for a set of 8 panels, float16, CFG on: mode / panels at once.
EXPECTED = {
    ("SDXL", 1024, 0): ["balanced / 1", "balanced / 8", "fast / 8", "fast / 8"],
    ("SDXL + 1 ControlNet", 1024, 1): ["low / 8", "balanced / 3", "fast / 6", "fast / 8"],
    ("SDXL + 2 ControlNets", 1024, 2): ["low / 8", "low / 8", "balanced / 5", "fast / 8"],
    ("SDXL", 1536, 0): ["low / 4", "balanced / 3", "balanced / 7", "fast / 8"],
    ("SDXL + 1 ControlNet", 1536, 1): ["low / 3", "low / 6", "balanced / 3", "fast / 7"],
    ("SDXL + 2 ControlNets", 1536, 2): ["low / 3", "low / 6", "balanced / 1", "balanced / 6"],
}


def _decision(total_gb, width, controlnets):
    plan = mem.plan("auto", total_gb, mem.Workload(width, width, controlnets=controlnets), TABLE_PANELS)
    return plan, f"{plan.mode} / {plan.micro_batch}"


def test_memory_model_table():
    got = {key: [_decision(gb, key[1], key[2])[1] for _label, gb in SIZES] for key in EXPECTED}
    assert got == EXPECTED


def test_memory_model_decisions_fit_and_are_the_best_that_fit():
    order = {"fast": 0, "balanced": 1, "low": 2}
    for _label, width, nets in WORKLOADS:
        previous = None
        for _size, gb in SIZES:
            plan, _ = _decision(gb, width, nets)
            work = mem.Workload(width, width, controlnets=nets)
            budget = mem.usable_gb(gb)
            if plan.mode != "low":  # low is the last resort: it runs whether or not it fits
                assert plan.peak_gb <= budget
            faster = [m for m in ("fast", "balanced") if order[m] < order[plan.mode]]
            assert all(mem.peak_gb(m, work, 1) > budget for m in faster)
            if plan.micro_batch < TABLE_PANELS:
                assert mem.peak_gb(plan.mode, work, plan.micro_batch + 1) > budget
            if previous is not None:  # more memory: never a slower mode, never fewer panels in the same mode
                assert order[plan.mode] <= order[previous.mode]
                if plan.mode == previous.mode:
                    assert plan.micro_batch >= previous.micro_batch
            previous = plan


def test_memory_model_adds_up_as_documented():
    work = mem.Workload(1024, 1024, controlnets=1)
    peaks = mem.stage_peaks_gb("fast", work, 3)
    weights = mem.UNET_GB + mem.TEXT_ENCODERS_GB + mem.VAE_GB + mem.CONTROLNET_GB
    rows = 3 * 2
    activations = mem.REFERENCE_CACHE_GB + rows * (mem.UNET_ROW_GB + mem.CONTROLNET_ROW_GB) * mem.ACTIVATION_MARGIN
    assert peaks["denoise"] == pytest.approx(weights + activations)
    balanced = mem.stage_peaks_gb("balanced", work, 3)
    assert balanced["denoise"] == pytest.approx(mem.UNET_GB + mem.CONTROLNET_GB + activations)
    # 1536^2 has 2.25x the pixels: activations and the reference cache grow with them
    big = mem.stage_peaks_gb("balanced", mem.Workload(1536, 1536, controlnets=1), 3)
    assert big["denoise"] - (mem.UNET_GB + mem.CONTROLNET_GB) == pytest.approx(2.25 * activations)
    assert mem.plan("auto", None, work, 16).micro_batch == 16  # the CPU: no limit planned


def test_memory_model_counts_every_reference_and_the_largest_panel():
    """R references keep R recorded caches all step and run R rows when recorded; panel rows
    count at the largest panel's size; the decode and the tiling at the largest picture's."""
    def denoise_activations(work, m):
        return mem.stage_peaks_gb("balanced", work, m)["denoise"] - mem.UNET_GB

    row, cache = mem.UNET_ROW_GB * mem.ACTIVATION_MARGIN, mem.REFERENCE_CACHE_GB
    three = mem.Workload(1024, 1024, references=3)
    # replaying 4 panels (8 rows) outweighs recording 3 references (6 rows)
    assert denoise_activations(three, 4) == pytest.approx(3 * cache + 8 * row)
    # recording 3 references (6 rows) outweighs replaying 1 panel (2 rows)
    assert denoise_activations(three, 1) == pytest.approx(3 * cache + 6 * row)
    wide = mem.Workload(1024, 1024, panel_width=1536, panel_height=1536)
    assert denoise_activations(wide, 2) == pytest.approx(cache + 2 * 2 * 2.25 * row)
    decode = mem.stage_peaks_gb("balanced", wide, 1, tile_vae=False)["decode"]
    assert decode == pytest.approx(2 * mem.VAE_GB + mem.ACTIVATION_MARGIN * mem.VAE_DECODE_GB * 2.25)
    assert mem.tile_vae_for("fast", mem.Workload(1024, 1024, panel_width=1600, panel_height=1536))
    assert mem.tile_vae_for("fast", mem.Workload(1600, 1536, panel_width=1024, panel_height=1024))
    # more references leave room for fewer panels at once on the same card
    one_ref = mem.plan("balanced", 12, mem.Workload(1024, 1024), 8)
    four_refs = mem.plan("balanced", 12, mem.Workload(1024, 1024, references=4), 8)
    assert four_refs.micro_batch < one_ref.micro_batch


def test_performance_doc_shows_the_memory_model_table():
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    section = text[text.index("### The memory model's choices"):]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"(SDXL(?: \+ \d ControlNets?)?), (\d+)²", cells[0]) if cells else None
        if match and len(cells) == 1 + len(SIZES):
            nets = int(re.search(r"\+ (\d)", match.group(1)).group(1)) if "+" in match.group(1) else 0
            rows[(match.group(1), int(match.group(2)), nets)] = [c.replace("**", "") for c in cells[1:]]
    assert rows == EXPECTED


def test_a_run_on_the_cpu_makes_no_full_garbage_collection(monkeypatch, tiny_pipe):
    """A full collection scans every library object while holding the GIL (about 0.3 s with
    torch and diffusers loaded): after each run it stalled the window (issue 30 item 12)."""
    import gc

    collections = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    request = SetRequest(model="tiny", style=GeneratedReference("a tree", 1), panels=(Panel("a cat", 2),),
                         sampling=Sampling(steps=2, width=96, height=64), device="cpu")
    assert Engine(loader=lambda *a, **k: tiny_pipe).generate(request) is not None
    assert collections == []


def test_warm_up_keeps_the_imported_libraries_out_of_collections():
    import gc

    Engine().warm_up()
    assert gc.get_freeze_count() > 10_000  # torch, diffusers and transformers' objects
