"""Control maps (canny, depth, ready-made) and ControlNet loading, on pictures and models made here."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from stylealigned_desktop.engine.control import (
    ControlError,
    ControlNetCache,
    ControlSettings,
    build_tiny_depth_estimator,
    canny_map,
    check_controlnet_matches,
    estimate_depth,
    load_controlnet,
    load_depth_estimator,
    preprocess,
    tiny_controlnet,
)
from stylealigned_desktop.engine.images import PictureError, fit_picture, load_picture
from stylealigned_desktop.engine.request import PanelControl

WIDTH, HEIGHT = 96, 64  # 96 is not a multiple of 64: the detector's padding path is exercised


def shapes_picture(fill: int = 255) -> tuple[Image.Image, np.ndarray]:
    """A rectangle and a circle on black, and the independent mask of where the shapes are."""
    mask = Image.new("L", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(mask)
    draw.rectangle([12, 14, 40, 46], fill=255)
    draw.ellipse([56, 16, 84, 44], fill=255)
    inside = np.asarray(mask) > 0
    picture = Image.fromarray(np.where(inside, fill, 0).astype(np.uint8)).convert("RGB")
    return picture, inside


def shape_borders(inside: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood crosses a shape boundary (computed without any edge detector)."""
    border = np.zeros_like(inside)
    border[:-1] |= inside[:-1] != inside[1:]
    border[1:] |= inside[1:] != inside[:-1]
    border[:, :-1] |= inside[:, :-1] != inside[:, 1:]
    border[:, 1:] |= inside[:, 1:] != inside[:, :-1]
    return border


# ----------------------------------------------------------------------------------------- canny


def test_canny_edges_lie_exactly_on_the_shape_borders():
    picture, inside = shapes_picture()
    edge_map = canny_map(picture)
    pixels = np.asarray(edge_map)
    assert edge_map.mode == "RGB" and edge_map.size == (WIDTH, HEIGHT)
    assert set(np.unique(pixels)) <= {0, 255}
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    edges = pixels[..., 0] > 0
    border = shape_borders(inside)
    near_border = ndimage.binary_dilation(border, iterations=2)
    near_edges = ndimage.binary_dilation(edges, iterations=2)
    assert edges.any()
    assert not (edges & ~near_border).any(), "edges where no shape border is"
    assert not (border & ~near_edges).any(), "a shape border without edges"
    # nothing at the picture's own border (the padding must not create edges)
    assert not edges[:, -3:].any() and not edges[-3:].any()


def test_canny_thresholds_are_adjustable():
    faint, inside = shapes_picture(fill=30)  # a step of 30: Sobel response ~120 < high of 200
    assert not (np.asarray(canny_map(faint))[..., 0] > 0).any()
    sensitive = np.asarray(canny_map(faint, low=10, high=20))[..., 0] > 0
    border = shape_borders(inside)
    assert not (sensitive & ~ndimage.binary_dilation(border, iterations=2)).any()
    assert not (border & ~ndimage.binary_dilation(sensitive, iterations=2)).any()

    settings = ControlSettings.for_panel(
        PanelControl(image="x.png", canny_low=10, canny_high=20), WIDTH, HEIGHT
    )
    via_preprocess = np.asarray(preprocess(faint, "canny", settings))[..., 0] > 0
    np.testing.assert_array_equal(via_preprocess, sensitive)


def test_preprocess_canny_from_a_file_at_the_panel_size(tmp_path):
    picture, _inside = shapes_picture()
    wide = Image.new("RGB", (WIDTH * 2, HEIGHT), (0, 0, 0))
    wide.paste(picture, (WIDTH // 2, 0))  # the shapes sit in the centre crop
    path = tmp_path / "sketch.png"
    wide.save(path)
    edge_map = preprocess(path, "canny", ControlSettings(width=WIDTH, height=HEIGHT))
    assert edge_map.size == (WIDTH, HEIGHT) and edge_map.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(edge_map), np.asarray(canny_map(picture)))


def test_canny_does_not_import_the_whole_controlnet_aux_package():
    code = (
        "import sys; from PIL import Image\n"
        "from stylealigned_desktop.engine.control import canny_map\n"
        "canny_map(Image.new('RGB', (64, 64)))\n"
        "assert 'controlnet_aux' not in sys.modules, 'controlnet_aux/__init__ was run'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------------------- map


def test_map_mode_uses_the_picture_as_is_after_fitting(tmp_path):
    rng = np.random.default_rng(2)
    ready = Image.fromarray(rng.integers(0, 256, (150, 100, 3), dtype=np.uint8))
    path = tmp_path / "depth-from-blender.png"
    ready.save(path)
    got = preprocess(path, "map", ControlSettings(width=WIDTH, height=HEIGHT))
    assert got.size == (WIDTH, HEIGHT) and got.mode == "RGB"
    expected = fit_picture(load_picture(path), WIDTH, HEIGHT)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    # at the panel size already: untouched
    same = Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    np.testing.assert_array_equal(
        np.asarray(preprocess(same, "map", ControlSettings(width=WIDTH, height=HEIGHT))),
        np.asarray(same),
    )


# ----------------------------------------------------------------------------------------- depth


@pytest.fixture(scope="module")
def tiny_dpt_folder(tmp_path_factory):
    """A tiny random DPT depth estimator and its processor, saved as a transformers folder."""
    model, processor = build_tiny_depth_estimator()
    folder = tmp_path_factory.mktemp("tiny-dpt")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_depth_map_is_normalised_at_the_panel_size(tiny_dpt_folder):
    picture, _inside = shapes_picture()
    settings = ControlSettings(width=80, height=48, depth_model=str(tiny_dpt_folder), device="cpu")
    depth = estimate_depth(fit_picture(picture, 80, 48), str(tiny_dpt_folder), "cpu")
    assert depth.shape == (48, 80) and depth.dtype == np.float32
    assert depth.min() == 0.0 and depth.max() == 1.0

    # independently: the model's raw prediction, resized bicubically, then min-max normalised
    model, processor = load_depth_estimator(str(tiny_dpt_folder), "cpu")
    inputs = processor(images=fit_picture(picture, 80, 48), return_tensors="pt")
    with torch.no_grad():
        raw = model(**inputs).predicted_depth[:, None]
    resized = torch.nn.functional.interpolate(raw, size=(48, 80), mode="bicubic")[0, 0].numpy()
    expected = (resized - resized.min()) / (resized.max() - resized.min())
    np.testing.assert_allclose(depth, expected, atol=1e-5)

    image = preprocess(picture, "depth", settings)
    pixels = np.asarray(image)
    assert image.mode == "RGB" and image.size == (80, 48)
    assert pixels.min() == 0 and pixels.max() == 255
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    np.testing.assert_array_equal(pixels[..., 0], np.round(depth * 255).astype(np.uint8))


def build_tiny_depth_anything(folder, estimation_type: str):
    """A random Depth Anything (tiny DINOv2 backbone) saved as a transformers folder."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    backbone = Dinov2Config(image_size=28, patch_size=14, hidden_size=16, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=24, out_indices=[1, 2],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16],
                                 reassemble_factors=[2, 1], fusion_hidden_size=8, head_hidden_size=8,
                                 patch_size=14, depth_estimation_type=estimation_type, max_depth=20)
    torch.manual_seed(5)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=False).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("estimation_type", ["relative", "metric"])
def test_depth_anything_loads_through_the_auto_classes(tmp_path, estimation_type):
    """Any transformers depth estimator works (AutoModelForDepthEstimation); a metric one
    (distance grows away from the camera) is flipped so that near is bright, like MiDaS."""
    from transformers import DepthAnythingForDepthEstimation

    folder = build_tiny_depth_anything(tmp_path / "depth-anything", estimation_type)
    picture = fit_picture(shapes_picture()[0], 80, 48)
    depth = estimate_depth(picture, str(folder), "cpu")
    model, processor = load_depth_estimator(str(folder), "cpu")
    assert isinstance(model, DepthAnythingForDepthEstimation)
    with torch.no_grad():
        raw = model(**processor(images=picture, return_tensors="pt")).predicted_depth[:, None]
    resized = torch.nn.functional.interpolate(raw, size=(48, 80), mode="bicubic")[0, 0].numpy()
    normalised = (resized - resized.min()) / (resized.max() - resized.min())
    expected = 1.0 - normalised if estimation_type == "metric" else normalised
    np.testing.assert_allclose(depth, expected, atol=1e-5)


def test_depth_estimator_is_loaded_once_per_source_and_device(tiny_dpt_folder):
    first = load_depth_estimator(str(tiny_dpt_folder), "cpu")
    assert load_depth_estimator(str(tiny_dpt_folder), "cpu") is first
    assert type(first[0]).__name__ == "DPTForDepthEstimation"
    tiny = load_depth_estimator("tiny", "cpu")
    assert tiny is not first and load_depth_estimator("tiny", "cpu") is tiny


def test_missing_depth_model_explains_how_to_get_it(tmp_path):
    with pytest.raises(ControlError) as caught:
        load_depth_estimator("nobody/no-such-depth-model", "cpu")
    message = str(caught.value)
    assert "nobody/no-such-depth-model" in message and "hf download" in message
    assert "local folder" in message

    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ControlError, match="not-a-model"):
        preprocess(Image.new("RGB", (64, 64)), "depth", ControlSettings(depth_model=str(empty)))
    with pytest.raises(ControlError, match="folder not found"):
        load_depth_estimator(str(tmp_path / "missing" / "folder"), "cpu")


# ------------------------------------------------------------------------------------ bad input


def test_bad_control_picture_gives_a_clear_error(tmp_path):
    path = tmp_path / "blockout.png"
    path.write_text("not a picture", encoding="utf-8")
    for mode in ("canny", "depth", "map"):
        with pytest.raises(PictureError) as caught:
            preprocess(path, mode, ControlSettings(width=64, height=64, depth_model="tiny"))
        assert str(path) in str(caught.value)
    with pytest.raises(PictureError, match="no such file"):
        preprocess(tmp_path / "gone.png", "canny")


def test_bad_mode_and_thresholds():
    with pytest.raises(ControlError, match="pose"):
        preprocess(Image.new("RGB", (64, 64)), "pose")
    with pytest.raises(ControlError, match="low < high <= 255, got 200/100"):
        ControlSettings(canny_low=200, canny_high=100)
    with pytest.raises(ControlError, match="from 0 to 255, got 300"):  # the rule the CLI and session share
        ControlSettings(canny_low=100, canny_high=300)
    with pytest.raises(ControlError, match="low=-1"):
        canny_map(Image.new("RGB", (64, 64)), low=-1, high=10)
    with pytest.raises(ControlError, match="width must be a whole number from 1 to 4096, got 0"):
        ControlSettings(width=0, height=64)


# ------------------------------------------------------------------------------------ ControlNet


def control_residuals(controlnet, unet, control: torch.Tensor):
    """One ControlNet call on a 64 px latent grid with SDXL's added conditioning."""
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    text = torch.randn(1, 7, unet.config.cross_attention_dim, generator=generator)
    pooled_width = (
        unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
    )
    added = {
        "text_embeds": torch.randn(1, pooled_width, generator=generator),
        "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]]),
    }
    with torch.no_grad():
        down, mid = controlnet(
            sample,
            torch.tensor([500]),
            encoder_hidden_states=text,
            controlnet_cond=control,
            added_cond_kwargs=added,
            return_dict=False,
        )
    return down, mid


def test_tiny_controlnet_matches_and_reacts_to_the_control(tiny_pipe):
    unet = tiny_pipe.unet
    controlnet = tiny_controlnet(unet)
    assert type(controlnet).__name__ == "ControlNetModel"
    check_controlnet_matches(controlnet, unet)  # no error
    again = tiny_controlnet(unet)  # deterministic: a fixed seed
    for (name, a), b in zip(controlnet.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name

    blank = torch.zeros(1, 3, 64, 64)
    lines = torch.zeros(1, 3, 64, 64)
    lines[:, :, 20:24, :] = 1.0
    down_blank, mid_blank = control_residuals(controlnet, unet, blank)
    down_lines, mid_lines = control_residuals(controlnet, unet, lines)
    # the residuals are not zero (a from_unet ControlNet would be a no-op) and follow the map
    assert all(r.abs().max() > 0 for r in down_lines)
    assert any(not torch.allclose(a, b) for a, b in zip(down_blank, down_lines))
    assert not torch.allclose(mid_blank, mid_lines)
    assert len(down_lines) == len(unet.config.block_out_channels) * (
        unet.config.layers_per_block + 1
    )


def test_controlnet_cache_loads_each_once(tiny_pipe):
    cache = ControlNetCache()
    first = cache.get("tiny", tiny_pipe.unet)
    assert cache.get("tiny", tiny_pipe.unet) is first
    assert cache.get("tiny", tiny_pipe.unet, dtype="float32", device="cpu") is first
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.get("tiny", tiny_pipe.unet) is not first


def test_controlnet_from_a_local_diffusers_folder(tiny_pipe, tmp_path):
    saved = tiny_controlnet(tiny_pipe.unet)
    folder = tmp_path / "my-controlnet"
    saved.save_pretrained(folder)
    loaded = load_controlnet(str(folder), dtype=torch.float32, device="cpu")
    assert type(loaded).__name__ == "ControlNetModel"
    for (name, a), b in zip(saved.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    cache = ControlNetCache()
    assert cache.get(str(folder), tiny_pipe.unet) is cache.get(str(folder), tiny_pipe.unet)


def sd15_like_unet(sdxl_unet):
    """A tiny UNet shaped like SD 1.5: another text width and no SDXL text_time conditioning."""
    from diffusers import UNet2DConditionModel

    config = sdxl_unet.config
    return UNet2DConditionModel(
        sample_size=16,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        down_block_types=config.down_block_types,
        up_block_types=config.up_block_types,
        attention_head_dim=config.attention_head_dim,
        cross_attention_dim=48,
        norm_num_groups=config.norm_num_groups,
    )


def test_sd15_controlnet_on_sdxl_is_refused(tiny_pipe):
    from diffusers import ControlNetModel

    sd15_controlnet = ControlNetModel.from_unet(
        sd15_like_unet(tiny_pipe.unet), conditioning_embedding_out_channels=(8, 8, 16, 16)
    )
    with pytest.raises(ControlError) as caught:
        check_controlnet_matches(sd15_controlnet, tiny_pipe.unet, source="ControlNet 'sd15-canny'")
    message = str(caught.value)
    assert "'sd15-canny'" in message and "SD 1.5" in message
    assert "text-embedding width (48,) vs the model's (64,)" in message
    assert "added conditioning None vs the model's text_time" in message
    assert "diffusers/controlnet-canny-sdxl-1.0" in message


def test_controlnet_of_other_block_widths_is_refused(tiny_pipe):
    from diffusers import ControlNetModel

    config = dict(tiny_pipe.unet.config)
    config["block_out_channels"] = (32, 32, 64)
    other = ControlNetModel.from_unet(
        type(tiny_pipe.unet).from_config(config), conditioning_embedding_out_channels=(8, 8, 16, 16)
    )
    with pytest.raises(
        ControlError, match=r"block widths \(32, 32, 64\) vs the model's \(32, 64, 64\)"
    ):
        check_controlnet_matches(other, tiny_pipe.unet)


def test_missing_controlnet_explains_how_to_get_it(tmp_path, tiny_pipe):
    with pytest.raises(ControlError) as caught:
        load_controlnet("diffusers/controlnet-canny-sdxl-1.0", dtype=torch.float16)
    message = str(caught.value)
    assert "diffusers/controlnet-canny-sdxl-1.0" in message and "hf download" in message
    with pytest.raises(ControlError, match="folder not found"):
        load_controlnet(str(tmp_path / "no" / "such" / "folder"))
    empty = tmp_path / "empty-controlnet"
    empty.mkdir()
    with pytest.raises(ControlError, match="empty-controlnet"):
        ControlNetCache().get(str(empty), tiny_pipe.unet)
    with pytest.raises(ControlError, match="pass unet"):
        load_controlnet("tiny")
