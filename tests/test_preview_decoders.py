"""Preview decoders (factors, tiny autoencoder, full VAE), their choice, and the throttle."""

import math

import pytest
import torch
from diffusers.image_processor import VaeImageProcessor

from stylealigned_desktop.engine.denoise import decode_latent
from stylealigned_desktop.engine.preview import latent_to_rgb
from stylealigned_desktop.engine.preview_choice import PreviewChoice, choose_preview
from stylealigned_desktop.engine.preview_decoders import (
    FullVae,
    LatentFactors,
    LivePreviews,
    PreviewThrottle,
    TinyAutoencoder,
    make_preview_decoder,
)
from stylealigned_desktop.engine.tiny import build_tiny_pipeline, build_tiny_preview_decoder


@pytest.fixture(scope="module")
def tiny_pipe():
    return build_tiny_pipeline()


def test_tiny_autoencoder_decodes_a_non_square_latent_at_full_size_as_diffusers_postprocesses():
    vae = build_tiny_preview_decoder()
    x0 = torch.randn(4, 6, 10)
    picture = TinyAutoencoder(vae).decode(x0)
    assert picture.size == (80, 48)
    with torch.no_grad():
        sample = vae.decode(x0[None]).sample
    expected = VaeImageProcessor().postprocess(sample, output_type="pil")[0]
    assert picture.tobytes() == expected.tobytes()


def test_factors_and_full_vae_are_todays_decodes(tiny_pipe):
    x0 = torch.randn(4, 8, 6)
    assert LatentFactors().decode(x0).tobytes() == latent_to_rgb(x0).tobytes()
    full = FullVae(lambda latent: decode_latent(tiny_pipe, latent), every=3)
    assert full.decode(x0).tobytes() == decode_latent(tiny_pipe, x0[None]).tobytes()


def _decoder(choice, pipe):
    return make_preview_decoder(choice, pipe, lambda latent: decode_latent(pipe, latent))


def test_auto_says_it_falls_back_to_the_factors_without_the_tiny_decoder(tiny_pipe):
    seen = []
    choice = choose_preview("auto", "some/sdxl", on_disk=lambda repo: seen.append(repo))
    assert seen == ["madebyollin/taesdxl"]
    assert choice == PreviewChoice("factors", None, choice.said)
    assert "latent factors" in choice.said and "hf download madebyollin/taesdxl" in choice.said
    assert isinstance(_decoder(choice, tiny_pipe), LatentFactors)
    on_disk = choose_preview("auto", "some/sdxl", on_disk=lambda repo: "/somewhere")
    assert on_disk.decoder == "tiny" and on_disk.source == "madebyollin/taesdxl"


def test_sd_bases_take_taesd_and_every_tiny_model_its_random_decoder():
    seen = []
    for family in ("sd1", "sd2"):
        choice = choose_preview("auto", "some/sd-model", family=family, on_disk=lambda repo: seen.append(repo))
        assert choice.decoder == "factors" and choice.said.endswith("hf download madebyollin/taesd)")
    assert seen == ["madebyollin/taesd", "madebyollin/taesd"]
    for model in ("tiny-sd15", "tiny-sd2", "tiny-sd2v"):
        assert choose_preview("auto", model, family="sd2").source is None  # random, built with the model


def test_auto_keeps_the_factors_on_the_processor_where_asking_for_tiny_still_gets_it():
    """A TAESDXL decode costs seconds on a CPU (docs/performance.md): Auto keeps the factors
    there and says why; asked for by name, the tiny autoencoder is used."""
    on_disk = lambda repo: "/somewhere"  # noqa: E731
    auto = choose_preview("auto", "some/sdxl", on_disk=on_disk, accelerator=False)
    assert auto.decoder == "factors" and "processor" in auto.said
    assert choose_preview("tiny", "some/sdxl", on_disk=on_disk, accelerator=False).decoder == "tiny"
    assert choose_preview("auto", "tiny", accelerator=False).decoder == "tiny"  # the toy decoder costs little


def test_auto_loads_a_tiny_decoder_on_disk_offline(tiny_pipe, tmp_path):
    saved = build_tiny_preview_decoder()
    saved.save_pretrained(tmp_path / "taesd", safe_serialization=True)
    choice = choose_preview("auto", "some/sdxl", tiny_source=str(tmp_path / "taesd"))
    decoder = _decoder(choice, tiny_pipe)
    assert isinstance(decoder, TinyAutoencoder) and "tiny autoencoder" in choice.said
    x0 = torch.randn(4, 5, 7)
    assert decoder.decode(x0).tobytes() == TinyAutoencoder(saved).decode(x0).tobytes()


def test_the_builtin_tiny_model_has_its_own_random_tiny_decoder_and_other_kinds_are_named(tiny_pipe):
    choice = choose_preview("auto", "tiny")
    assert isinstance(_decoder(choice, tiny_pipe), TinyAutoencoder) and "noise" in choice.said
    assert isinstance(_decoder(choose_preview("factors", "tiny"), tiny_pipe), LatentFactors)
    vae = choose_preview("vae")
    assert isinstance(_decoder(vae, tiny_pipe), FullVae) and "every 5 steps" in vae.said
    with pytest.raises(ValueError, match="auto, factors, tiny, vae"):
        choose_preview("taesd")


class SpyDecoder:
    """Counts what it decodes; ``every`` as a decoder's."""

    name = "spy"

    def __init__(self, every=1):
        self.every = every
        self.calls = []

    def decode(self, x0):
        self.calls.append(int(x0))
        return f"picture of {int(x0)}"


class StepClock:
    """Reads 0 at a decode's start and ``seconds`` at its end: measured, never slept."""

    def __init__(self, seconds):
        self.seconds, self.reads = seconds, 0

    def __call__(self):
        self.reads += 1
        return 0.0 if self.reads % 2 else self.seconds


def run_previews(panels, steps, step_seconds, decode_seconds, budget=0.10, decoder_every=1):
    spy = SpyDecoder(decoder_every)
    previews = LivePreviews(spy, PreviewThrottle(panels, budget=budget), clock=StepClock(decode_seconds))
    schedule = {}
    for step in range(1, steps + 1):
        before = len(spy.calls)
        shown = previews.after_step(step, lambda row: torch.tensor(row), step_seconds)
        schedule[step] = spy.calls[before:]
        assert [row for row, _ in shown] == spy.calls[before:]
        assert all(picture == f"picture of {row}" for row, picture in shown)
    return schedule


def gaps(schedule, panels, steps):
    last, worst = [0] * panels, [0] * panels
    for step in range(1, steps + 1):
        for row in schedule[step]:
            worst[row] = max(worst[row], step - last[row])
            last[row] = step
    return [max(w, steps - last_step) for w, last_step in zip(worst, last)]


@pytest.mark.parametrize("panels, step_seconds, decode_seconds, budget", [
    (5, 1.0, 0.05, 0.10),  # two decodes a step: every panel at least every 3 steps
    (3, 2.0, 0.5, 0.10),  # 0.4 decodes a step: every 8 steps
    (4, 0.3, 0.01, 0.10),  # 3 a step: every 2 steps
    (6, 0.7, 0.2, 0.25),  # 0.875 a step: every 7 steps
])
def test_each_panel_at_least_once_every_k_steps_under_the_budget(panels, step_seconds, decode_seconds, budget):
    steps = 40
    schedule = run_previews(panels, steps, step_seconds, decode_seconds, budget=budget)
    assert schedule[1] == list(range(panels))  # the first step shows every panel (and measures a decode)
    per_step = budget * step_seconds / decode_seconds  # the decodes the budget buys a step
    assert max(gaps(schedule, panels, steps)) <= math.ceil(panels / per_step - 1e-9)
    spent = decode_seconds * sum(len(schedule[step]) for step in range(2, steps + 1))
    assert spent <= budget * step_seconds * (steps - 1) + 1e-9  # never over the budget


def test_a_decode_dearer_than_the_budget_never_slows_the_set():
    # one decode costs ten steps (a full-size decode on a processor): the budget buys one in a
    # hundred steps, so after the first step's, none in thirty; then one panel, in turn
    schedule = run_previews(panels=5, steps=130, step_seconds=1.0, decode_seconds=10.0)
    decoded = [(step, rows) for step, rows in schedule.items() if rows]
    assert decoded == [(1, [0, 1, 2, 3, 4]), (101, [0])]


def test_the_budget_bounds_the_decodes_and_panels_take_turns():
    # the first step shows every panel (and measures a decode); then 10 % of a 1 s step buys
    # one 0.1 s decode per step: three panels in turn
    schedule = run_previews(panels=3, steps=12, step_seconds=1.0, decode_seconds=0.1)
    assert schedule[1] == [0, 1, 2]
    assert [schedule[step] for step in range(2, 13)] == [[0], [1], [2]] * 3 + [[0], [1]]
    # a quarter of that: one decode every fourth step, still in turn
    schedule = run_previews(panels=3, steps=17, step_seconds=1.0, decode_seconds=0.5, budget=0.125)
    decoded = [(step, rows) for step, rows in schedule.items() if rows]
    assert decoded == [(1, [0, 1, 2]), (5, [0]), (9, [1]), (13, [2]), (17, [0])]


def test_a_generous_budget_shows_every_panel_every_step():
    schedule = run_previews(panels=4, steps=5, step_seconds=1.0, decode_seconds=0.001)
    assert all(rows == [0, 1, 2, 3] for rows in schedule.values())


def test_a_full_vae_every_n_steps_decodes_every_panel_on_those_steps_only():
    # chosen by name for checking: every panel on its steps, even a decode dearer than the budget
    schedule = run_previews(panels=3, steps=9, step_seconds=1.0, decode_seconds=5.0, decoder_every=3)
    assert {step: rows for step, rows in schedule.items() if rows} == {3: [0, 1, 2], 6: [0, 1, 2], 9: [0, 1, 2]}
