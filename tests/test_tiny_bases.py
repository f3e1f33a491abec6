"""The built-in tiny SD 1.5 / SD 2 / SD 2-v models: SD's real classes and structure at toy size."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from stylealigned_desktop.engine.install import self_attention_names
from stylealigned_desktop.engine.models import classify_source, is_tiny
from stylealigned_desktop.engine.tiny import build_tiny_pipeline, save_tiny_pipeline


@pytest.mark.parametrize("name, linear, prediction", [("tiny-sd15", False, "epsilon"),
                                                      ("tiny-sd2", True, "epsilon"),
                                                      ("tiny-sd2v", True, "v_prediction")])
def test_tiny_sd_models_have_sd_structure(name, linear, prediction):
    pipe = build_tiny_pipeline(name)
    assert isinstance(pipe, StableDiffusionPipeline)
    config = pipe.unet.config
    assert config.addition_embed_type is None and config.use_linear_projection is linear
    assert config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert pipe.scheduler.config.prediction_type == prediction
    assert len(self_attention_names(pipe.unet)) == 16  # spec section 6: L = 16 on SD 1.x / 2.x
    assert pipe.vae.config.scaling_factor == pytest.approx(0.18215)
    assert classify_source(name) == "tiny" and is_tiny(name) and not is_tiny("tiny-sd3")


def test_tiny_sd_models_are_deterministic_and_distinct():
    a, b, other = build_tiny_pipeline("tiny-sd2"), build_tiny_pipeline("tiny-sd2"), build_tiny_pipeline("tiny-sd15")
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.unet.parameters(), b.unet.parameters()))
    assert a.unet.config.cross_attention_dim != other.unet.config.cross_attention_dim


def test_unknown_tiny_name_is_refused():
    with pytest.raises(ValueError, match="tiny-sd15"):
        build_tiny_pipeline("tiny-sd3")


def test_saved_tiny_sd2v_folder_loads_with_diffusers(tmp_path):
    pipe = build_tiny_pipeline("tiny-sd2v")
    folder = save_tiny_pipeline(tmp_path / "model", "tiny-sd2v")
    loaded = StableDiffusionPipeline.from_pretrained(folder)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    kwargs = dict(num_inference_steps=2, height=64, width=128, output_type="np")
    expected = pipe(["a"], generator=torch.Generator().manual_seed(0), **kwargs).images
    got = loaded(["a"], generator=torch.Generator().manual_seed(0), **kwargs).images
    np.testing.assert_allclose(got, expected, atol=1e-5)
