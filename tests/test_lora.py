"""LoRAs on the storyboard engine (issue 12), with real PEFT LoRA files on the tiny model."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.lora import LoraError, loaded_adapters
from stylealigned_desktop.engine.models import model_identity
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Lora,
    Panel,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.runfolder import read_parameters, write_run_folder
from stylealigned_desktop.engine.settings import StyleAlignedSettings

from .loras import tiny_lora_state, write_diffusers_lora, write_kohya_lora, write_sd15_lora


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    state = tiny_lora_state(seed=1)
    return {
        "diffusers": write_diffusers_lora(folder / "ink.safetensors", state),
        "kohya": write_kohya_lora(folder / "ink-kohya.safetensors", state),
        "half": write_diffusers_lora(folder / "ink-half.safetensors", tiny_lora_state(seed=1, up_scale=0.5)),
        "other": write_diffusers_lora(folder / "pastel.safetensors", tiny_lora_state(seed=7)),
        "sd15": write_sd15_lora(folder / "sd15-style.safetensors"),
    }


@pytest.fixture(scope="module")
def engine():
    loads = []
    engine = Engine()
    original = engine._loader
    engine._loader = lambda *a, **k: loads.append(1) or original(*a, **k)
    engine.loads = loads
    return engine


def _request(*loras, **kwargs):
    return SetRequest(
        model="tiny",
        style=GeneratedReference("a toy train", 1),
        panels=(Panel("a car", 2), Panel("a boat", 3)),
        sampling=Sampling(steps=2, guidance=5.0, width=96, height=64, scheduler="dpmpp-2m"),
        settings=StyleAlignedSettings(),
        loras=tuple(loras),
        **kwargs,
    )


def _latents(result):
    return torch.stack([result.latents[i] for i in (None, 0, 1)])


@pytest.fixture(scope="module")
def plain(engine):
    return _latents(engine.generate(_request()))


def test_a_lora_changes_the_pictures_and_removing_it_restores_them_exactly(engine, files, plain):
    with_lora = _latents(engine.generate(_request(Lora(str(files["diffusers"]), 1.0))))
    assert (with_lora - plain).abs().max() > 1e-2
    assert loaded_adapters(engine._pipe)
    again = _latents(engine.generate(_request()))
    assert not loaded_adapters(engine._pipe)
    assert torch.equal(again, plain)


def test_a_unet_only_lora_loads_without_text_encoder_notices(files):
    """SDXL style LoRAs usually train the UNet only: diffusers' "No LoRA keys associated to
    CLIPTextModel..." warnings (twice per LoRA) are not shown to the artist, while other
    diffusers warnings still are."""
    import logging

    from stylealigned_desktop.engine.lora import apply_loras
    from stylealigned_desktop.engine.tiny import build_tiny_pipeline

    class Recorder(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    recorder = Recorder()
    logger = logging.getLogger("diffusers.loaders.lora_base")
    logger.addHandler(recorder)
    try:
        pipe = build_tiny_pipeline()
        apply_loras(pipe, (Lora(str(files["diffusers"]), 1.0),))
        assert loaded_adapters(pipe)
        logger.warning("another diffusers warning")
    finally:
        logger.removeHandler(recorder)
    assert not [m for m in recorder.messages if m.startswith("No LoRA keys associated")]
    assert "another diffusers warning" in recorder.messages


def test_weight_scales_the_loras_change(engine, files):
    # weight 0.5 on a LoRA == weight 1 on the same LoRA with its up matrices halved
    half_weight = _latents(engine.generate(_request(Lora(str(files["diffusers"]), 0.5))))
    half_file = _latents(engine.generate(_request(Lora(str(files["half"]), 1.0))))
    torch.testing.assert_close(half_weight, half_file, rtol=0, atol=1e-5)


def test_weight_zero_is_the_plain_model(engine, files, plain):
    off = _latents(engine.generate(_request(Lora(str(files["diffusers"]), 0.0))))
    torch.testing.assert_close(off, plain, rtol=0, atol=1e-6)


def test_kohya_and_diffusers_files_of_one_lora_give_the_same_pictures(engine, files):
    diffusers_format = _latents(engine.generate(_request(Lora(str(files["diffusers"]), 0.8))))
    kohya_format = _latents(engine.generate(_request(Lora(str(files["kohya"]), 0.8))))
    torch.testing.assert_close(kohya_format, diffusers_format, rtol=0, atol=1e-5)


def test_two_loras_mix_and_weights_change_without_reloading(engine, files, plain):
    loads = len(engine.loads)
    one = _latents(engine.generate(_request(Lora(str(files["diffusers"]), 1.0))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        both = _latents(engine.generate(_request(Lora(str(files["diffusers"]), 1.0),
                                                 Lora(str(files["other"]), 0.7))))
    # PEFT's "several adapters, make sure to know what you are doing" is not passed on: mixing is asked for
    assert not [w for w in caught if "peft_config" in str(w.message)]
    other_weight = _latents(engine.generate(_request(Lora(str(files["diffusers"]), 1.0),
                                                     Lora(str(files["other"]), 0.3))))
    assert (both - one).abs().max() > 1e-3 and (other_weight - both).abs().max() > 1e-4
    assert len(loaded_adapters(engine._pipe)) == 2
    assert len(engine.loads) == loads  # adapters and weights change in place


def test_an_sd15_lora_is_refused_before_any_step(engine, files):
    seen = []
    with pytest.raises(LoraError, match="SD 1.5.*this model"):
        engine.generate(_request(Lora(str(files["sd15"]), 1.0)), seen.append)
    assert not [e for e in seen if isinstance(e, (ev.Step, ev.Preview))]
    assert isinstance(seen[-1], ev.Failed) and "SD 1.5" in seen[-1].message


@pytest.mark.parametrize("name, message", [("missing.safetensors", "not found"), ("style.ckpt", "pickle")])
def test_missing_or_pickle_loras_are_refused(engine, tmp_path, name, message):
    path = tmp_path / name
    if name.endswith(".ckpt"):
        path.write_bytes(b"not really")
    with pytest.raises(LoraError, match=message):
        engine.generate(_request(Lora(str(path), 1.0)))


def test_loras_are_part_of_the_model_identity_the_record_and_the_pictures(engine, files, tmp_path):
    lora = Lora(str(files["diffusers"]), 0.8)
    assert model_identity("tiny", loras=(lora,)) != model_identity("tiny")
    assert model_identity("tiny", loras=(lora,)) != model_identity("tiny", loras=(Lora(lora.path, 0.5),))
    request = _request(lora)
    result = engine.generate(request)
    folder = write_run_folder(tmp_path / "run", request, result)
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert [(x["file"], x["path"], x["weight"]) for x in run["loras"]] == [("ink.safetensors", lora.path, 0.8)]
    parameters = read_parameters(folder / "panel-01.png")
    assert parameters["loras"] == run["loras"]


def test_a_loras_identity_is_its_content_and_weight_wherever_the_file_lies(files, tmp_path):
    """A server keeps its own copy of an uploaded LoRA (each replica in its own folder): the
    copy must key the inversion cache as the original does; other bytes must not."""
    original = Lora(str(files["diffusers"]), 0.8)
    copy = tmp_path / "elsewhere" / "renamed.safetensors"
    copy.parent.mkdir()
    copy.write_bytes(files["diffusers"].read_bytes())
    assert model_identity("tiny", loras=(Lora(str(copy), 0.8),)) == model_identity("tiny", loras=(original,))
    copy.write_bytes(files["other"].read_bytes())  # the same file name, another LoRA
    assert model_identity("tiny", loras=(Lora(str(copy), 0.8),)) != model_identity("tiny", loras=(original,))


def test_a_lora_file_changed_in_place_is_loaded_again(engine, files, tmp_path):
    """The artist trains the LoRA again into the same file: the next set uses the new weights
    (the cache key is the LoRA's content, not its path), as a fresh engine does."""
    path = tmp_path / "mine.safetensors"
    path.write_bytes(files["diffusers"].read_bytes())
    first = _latents(engine.generate(_request(Lora(str(path), 1.0))))
    # saved as trainers and downloads do: a new file put in the old one's place (a rewrite of the
    # same file shows through diffusers' memory-mapped weights, which hides a stale adapter)
    (tmp_path / "mine.part").write_bytes(files["other"].read_bytes())
    os.replace(tmp_path / "mine.part", path)
    again = _latents(engine.generate(_request(Lora(str(path), 1.0))))
    fresh = _latents(Engine().generate(_request(Lora(str(files["other"]), 1.0))))
    assert (again - first).abs().max() > 1e-3
    torch.testing.assert_close(again, fresh, rtol=0, atol=1e-6)


def test_lora_arguments_parse_file_and_weight():
    assert Lora.parse("ink.safetensors") == Lora("ink.safetensors", 1.0)
    assert Lora.parse("ink.safetensors:0.6") == Lora("ink.safetensors", 0.6)
    assert Lora.parse(r"C:\styles\ink.safetensors:-0.5") == Lora(r"C:\styles\ink.safetensors", -0.5)
    assert Lora.parse(r"C:\styles\ink.safetensors") == Lora(r"C:\styles\ink.safetensors", 1.0)
    with pytest.raises(ValueError):
        Lora("ink.safetensors", float("nan"))
    with pytest.raises(ValueError, match="weight"):
        Lora.parse("ink.safetensors:inf")


def test_lora_weights_on_the_command_line_are_within_the_limit_a_dropped_picture_has(files):
    """Issue 23, item 3: one limit (limits.check_lora_weight) for --lora and for the LoRAs a
    dropped picture names."""
    import argparse

    from stylealigned_desktop.cli.common import lora_argument

    path = str(files["diffusers"])
    assert lora_argument(f"{path}:-10") == Lora(path, -10.0)
    for weight in ("10.5", "1e308"):
        with pytest.raises(argparse.ArgumentTypeError, match="LoRA weight must be a number from -10 to 10"):
            lora_argument(f"{path}:{weight}")


def test_a_lora_works_with_low_memory_mode_and_gives_the_fast_pictures(files):
    lora = Lora(str(files["diffusers"]), 0.9)
    fast = Engine().generate(_request(lora, memory="fast"))
    low = Engine().generate(_request(lora, memory="low"))
    for a, b in zip([fast.reference, *fast.panels.values()], [low.reference, *low.panels.values()], strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_lora_file_whose_name_ends_in_colon_number_is_taken_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ink.safetensors:2").write_bytes(b"")
    assert Lora.parse("ink.safetensors:2") == Lora("ink.safetensors:2", 1.0)
    assert Lora.parse("ink.safetensors:2:0.5") == Lora("ink.safetensors:2", 0.5)


def _safetensors(path, tensors: dict[str, tuple[int, ...]]):
    from safetensors.torch import save_file

    save_file({key: torch.zeros(shape) for key, shape in tensors.items()}, str(path))
    return path


_KOHYA_SDXL = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"


@pytest.mark.parametrize("tensors, words", [
    ({"transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight": (4, 3072),
      "transformer.single_transformer_blocks.0.attn.to_k.lora_B.weight": (3072, 4)}, "not a LoRA for SDXL: .*Flux"),
    ({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (4, 3072),
      "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": (9216, 4)}, "not a LoRA for SDXL: .*Flux"),
    ({"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 768),
      "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": (3072, 4)}, "LoRA for SD 1.x or 2.x"),
    ({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 1024),
      "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4)},
     "LoRA for SD 2.x; this model is SDXL"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
      "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (49408, 768)},
     "not a LoRA: it is a whole model"),
    ({"encoder.conv_in.weight": (128, 3, 3, 3), "decoder.conv_out.weight": (3, 128, 3, 3)},
     "not a LoRA: it is a VAE"),
    ({"clip_l": (2, 768), "clip_g": (2, 1280)}, "not a LoRA: it is a textual-inversion embedding"),
    ({f"{_KOHYA_SDXL}.hada_w1_a": (2048, 4), f"{_KOHYA_SDXL}.hada_w1_b": (4, 640)}, "LyCORIS"),
    ({"weight": (3, 3)}, "not a LoRA: none of its weights"),
])
def test_a_file_that_is_not_an_sdxl_lora_is_refused_in_an_artists_words_when_it_is_added(tmp_path, tensors,
                                                                                         words):
    from stylealigned_desktop.engine.bases import SDXL
    from stylealigned_desktop.engine.lora import check_lora_file

    path = _safetensors(tmp_path / "style.safetensors", tensors)
    with pytest.raises(LoraError, match=words) as refusal:
        check_lora_file(Lora(str(path), 1.0), SDXL)  # an SDXL model chosen
    assert str(refusal.value).startswith("style.safetensors ")


def test_a_damaged_file_is_refused_without_the_librarys_text(tmp_path):
    from stylealigned_desktop.engine.lora import check_lora_file

    path = tmp_path / "half-downloaded.safetensors"
    path.write_bytes((2**40).to_bytes(8, "little") + b'{"a": ')  # a header length no file has
    with pytest.raises(LoraError) as refusal:
        check_lora_file(Lora(str(path), 1.0))
    message = str(refusal.value)
    assert message.startswith("half-downloaded.safetensors is not a LoRA file: it cannot be read")
    assert "deserializ" not in message.lower() and "header" not in message.lower(), message


def test_sdxl_and_model_loras_pass_the_check_when_added(tmp_path, files):
    from stylealigned_desktop.engine.lora import check_lora_file

    sdxl = _safetensors(tmp_path / "sdxl.safetensors", {
        f"{_KOHYA_SDXL}.lora_down.weight": (8, 2048), f"{_KOHYA_SDXL}.lora_up.weight": (640, 8),
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (8, 768),
        "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (8, 1280)})
    for path in (sdxl, files["diffusers"], files["kohya"]):
        assert check_lora_file(Lora(str(path), 1.0)) == path


def test_a_flux_lora_is_refused_at_generate_in_words_not_as_peft_text(engine, tmp_path):
    path = _safetensors(tmp_path / "flux.safetensors", {
        "transformer.transformer_blocks.0.attn.to_k.lora_A.weight": (4, 64),
        "transformer.transformer_blocks.0.attn.to_k.lora_B.weight": (64, 4)})
    seen = []
    with pytest.raises(LoraError, match="flux.safetensors is not a LoRA for SDXL"):
        engine.generate(_request(Lora(str(path), 1.0)), seen.append)
    assert isinstance(seen[-1], ev.Failed) and "Peft" not in seen[-1].message
