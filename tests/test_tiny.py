import numpy as np
import torch
from diffusers import StableDiffusionXLPipeline

from stylealigned_desktop.engine.models import load_pipeline
from stylealigned_desktop.engine.tiny import build_tiny_pipeline, save_tiny_pipeline


def test_tiny_model_is_an_sdxl_pipeline_with_real_structure(tiny_pipe):
    unet = tiny_pipe.unet
    assert isinstance(tiny_pipe, StableDiffusionXLPipeline)
    assert unet.config.addition_embed_type == "text_time"
    assert tiny_pipe.vae_scale_factor == 8
    attention_resolutions = {
        i for i, block in enumerate(unet.down_blocks) if getattr(block, "attentions", None)
    }
    assert len(attention_resolutions) >= 2
    ids = tiny_pipe.tokenizer("a toy train").input_ids
    assert ids[0] == tiny_pipe.tokenizer.bos_token_id and ids[-1] == tiny_pipe.tokenizer.eos_token_id
    assert tiny_pipe.tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == "atoytrain"


def test_tiny_model_is_deterministic():
    a, b = build_tiny_pipeline(), build_tiny_pipeline()
    for pa, pb in zip(a.unet.parameters(), b.unet.parameters()):
        assert torch.equal(pa, pb)


def test_saved_tiny_folder_loads_with_diffusers_and_our_loader(tmp_path, tiny_pipe):
    folder = save_tiny_pipeline(tmp_path / "tiny-sdxl")
    assert (folder / "model_index.json").is_file()
    loaded = StableDiffusionXLPipeline.from_pretrained(folder)
    ours = load_pipeline(str(folder))
    kwargs = dict(num_inference_steps=2, height=64, width=64, output_type="np")
    expected = tiny_pipe(["a"], generator=torch.Generator().manual_seed(0), **kwargs).images
    for pipe in (loaded, ours):
        got = pipe(["a"], generator=torch.Generator().manual_seed(0), **kwargs).images
        np.testing.assert_allclose(got, expected, atol=1e-5)
