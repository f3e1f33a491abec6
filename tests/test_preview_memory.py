"""The tiny preview decoder and memory: it follows the memory mode (resident in fast and
balanced, layer by layer in low) and the memory model counts it."""

import numpy as np
import pytest
import torch

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine import hub
from stylealigned_desktop.engine import memory as mem
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.preview_decoders import TinyAutoencoder
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.engine.workload import workload

MARGIN = mem.ACTIVATION_MARGIN


def test_the_memory_model_counts_the_tiny_decoders_weights_where_they_stay():
    plain, tiny = mem.Workload(1024, 1024), mem.Workload(1024, 1024, tiny_preview=True)
    for mode, weights in (("fast", mem.TINY_DECODER_GB), ("balanced", mem.TINY_DECODER_GB), ("low", 0.0)):
        without, with_tiny = mem.stage_peaks_gb(mode, plain, 4), mem.stage_peaks_gb(mode, tiny, 4)
        # four panels' UNet rows (8 with CFG) outweigh one preview decode: only the weights add
        assert {stage: with_tiny[stage] - without[stage] for stage in without} == pytest.approx(
            {"encode": weights, "denoise": weights, "decode": weights}), mode


def test_a_preview_decode_larger_than_the_steps_unet_rows_sets_the_denoising_peak():
    # one panel with CFG is two UNet rows (0.43 GB at 1024²); a 1536² panel's decode is 2.25 x 0.52 GB
    for width, pixels in ((1024, 1.0), (1536, 2.25)):
        plain = mem.Workload(1024, 1024, panel_width=width, panel_height=width)
        tiny = mem.Workload(1024, 1024, panel_width=width, panel_height=width, tiny_preview=True)
        rows = 2 * pixels * mem.UNET_ROW_GB * MARGIN
        decode = pixels * mem.TINY_DECODE_GB * MARGIN
        assert decode > rows
        added = mem.stage_peaks_gb("balanced", tiny, 1)["denoise"] - mem.stage_peaks_gb("balanced", plain, 1)["denoise"]
        assert added == pytest.approx(mem.TINY_DECODER_GB + decode - rows)


def _request(previews="tiny", memory="fast", model="tiny"):
    return SetRequest(model=model, style=GeneratedReference("a lighthouse, ink", 5),
                      panels=(Panel("a boat, ink", 6), Panel("a gull, ink", 7, size=(64, 128))),
                      sampling=Sampling(steps=2, guidance=5.0, width=128, height=96, scheduler="euler"),
                      previews=previews, memory=memory)


def test_a_requests_workload_counts_the_tiny_decoder_when_its_previews_use_it(monkeypatch):
    assert workload(_request("tiny")).tiny_preview and workload(_request("auto")).tiny_preview
    assert not workload(_request("factors")).tiny_preview and not workload(_request("off")).tiny_preview
    assert not workload(_request("vae")).tiny_preview
    # an SDXL model: the tiny decoder counts only once it is downloaded (and Auto, on this
    # GPU-less computer, keeps the factors)
    monkeypatch.setattr(hub, "complete_snapshot", lambda repo: None)
    assert not workload(_request("tiny", model="some/sdxl")).tiny_preview
    monkeypatch.setattr(hub, "complete_snapshot", lambda repo: f"/cache/{repo}")
    assert workload(_request("tiny", model="some/sdxl")).tiny_preview
    assert not workload(_request("auto", model="some/sdxl")).tiny_preview


@pytest.fixture(scope="module")
def engine():
    return Engine(preview_budget=float("inf"))


def _run(engine, memory, monkeypatch):
    used = []
    original = TinyAutoencoder.decode
    monkeypatch.setattr(TinyAutoencoder, "decode", lambda self, x0: used.append(self.vae) or original(self, x0))
    seen = []
    engine.generate(_request(memory=memory), seen.append)
    assert used and all(vae is used[0] for vae in used)
    return used[0], [np.asarray(e.image) for e in seen if isinstance(e, ev.Preview)]


def _hooks(vae):
    return [getattr(m, "_hf_hook", None) for m in vae.modules() if list(m.parameters(recurse=False))]


def test_the_tiny_decoder_follows_the_memory_mode_with_the_same_previews(engine, monkeypatch):
    fast, fast_previews = _run(engine, "fast", monkeypatch)
    assert all(hook is None for hook in _hooks(fast))
    assert {p.device for p in fast.parameters()} == {torch.device("cpu")}  # the execution device here
    balanced, balanced_previews = _run(engine, "balanced", monkeypatch)
    assert all(hook is None for hook in _hooks(balanced))  # small: it stays, never moved per step
    low, low_previews = _run(engine, "low", monkeypatch)
    hooks = _hooks(low)
    assert hooks and all(getattr(hook, "offload", False) for hook in hooks)  # layer by layer
    for previews in (balanced_previews, low_previews):
        assert len(previews) == len(fast_previews) == 3 * 2
        assert all(np.array_equal(a, b) for a, b in zip(fast_previews, previews))
