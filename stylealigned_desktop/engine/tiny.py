"""The built-in tiny models: random-weight pipelines built offline in seconds.

``tiny`` has SDXL's real classes and structure (a text_time UNet with two attention
resolutions, an AutoencoderKL with scale factor 8, CLIPTextModel + CLIPTextModelWithProjection,
CLIP tokenizers from a byte-level vocabulary) at toy sizes. ``tiny-sd15``, ``tiny-sd2`` and
``tiny-sd2v`` are ``StableDiffusionPipeline``s with SD 1.5's / SD 2's structure (one text
encoder, no added conditioning, four UNet levels with SD's 16 self-attention layers; SD 2's linear
projections) and SD 2's epsilon or v-prediction schedule. Their pictures are noise: they exist
for tests and for trying the app without a GPU or a download.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

TINY_MODELS = ("tiny", "tiny-sd15", "tiny-sd2", "tiny-sd2v")
"""The built-in random-weight models: SDXL, SD 1.5, SD 2 base, SD 2.1-768-like (v-prediction)."""

TINY_SEED = 0
TEXT_HIDDEN = 32
TEXT_PROJECTION = 32
TIME_EMBED = 8
SD2_TEXT_HIDDEN = 48  # SD 2's text is wider than SD 1's (1024 against 768); toy widths keep the order


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def _letter_merges() -> list[str]:
    """BPE merges that join lowercase letters into pieces of two and three, so a word costs about
    a third of its letters in tokens (a real CLIP vocabulary reads most words as one): an ordinary
    prompt then fits tiny's 77 tokens, as it fits SDXL's. Each pair comes with its extensions, so
    the three-letter pieces are made before the pairs around them."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    merges = []
    for a in letters:
        for b in letters:
            merges.append(f"{a} {b}</w>")
            merges.append(f"{a} {b}")
            merges.extend(f"{a}{b} {c}{end}" for c in letters for end in ("</w>", ""))
    return merges


def write_tokenizer_files(folder: Path) -> Path:
    """A CLIP byte-level vocabulary (every character is a token) with merges of lowercase
    letters into pieces of two and three."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    merges = _letter_merges()
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return folder


def _tokenizer(folder: Path, pad_token: str):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder), pad_token=pad_token, model_max_length=77)


def tiny_unet_config(name: str = "tiny") -> dict:
    """The UNet config of a tiny model (no weights, no torch). SDXL's: a text_time UNet with
    two attention resolutions. SD's: four levels (three with attention, two layers each: 6 + 1 +
    9 = 16 self-attention layers, as in the real ones), its text width, no added conditioning;
    SD 2 projects linearly. Both are trained at 128 px (a 16 x 16 latent)."""
    _check_name(name)
    common = dict(sample_size=16, in_channels=4, out_channels=4, norm_num_groups=8)
    if name == "tiny":
        return dict(common, block_out_channels=(32, 64, 64), layers_per_block=1,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                    attention_head_dim=(2, 4, 8), transformer_layers_per_block=(1, 1, 2),
                    use_linear_projection=True, addition_embed_type="text_time",
                    addition_time_embed_dim=TIME_EMBED,
                    projection_class_embeddings_input_dim=6 * TIME_EMBED + TEXT_PROJECTION,
                    cross_attention_dim=2 * TEXT_HIDDEN)
    sd2 = name != "tiny-sd15"
    return dict(common, block_out_channels=(32, 64, 64, 64), layers_per_block=2,
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                attention_head_dim=(2, 4, 8, 8) if sd2 else 4, use_linear_projection=sd2,
                cross_attention_dim=SD2_TEXT_HIDDEN if sd2 else TEXT_HIDDEN)


def _tiny_unet(name: str = "tiny"):
    """A tiny model's UNet, drawing its weights from the current random state."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**tiny_unet_config(name))


def build_tiny_unet(name: str = "tiny"):
    """A tiny model's UNet exactly as ``build_tiny_components`` makes it (its weights come first
    from the fixed seed), without the rest; for models derived from it (the tiny ControlNet)."""
    _check_name(name)
    with _drawn_from_seed():
        return _tiny_unet(name).eval().requires_grad_(False)


@contextlib.contextmanager
def _drawn_from_seed():
    """Weights made inside are drawn from the fixed seed; the caller's random state is kept."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _check_name(name: str) -> None:
    if name not in TINY_MODELS:
        raise ValueError(f"unknown tiny model {name!r}: one of {', '.join(TINY_MODELS)}")


def build_tiny_components(name: str = "tiny") -> dict:
    """The components of a tiny pipeline (``name``: one of :data:`TINY_MODELS`), deterministic
    (fixed seed)."""
    _check_name(name)
    if name != "tiny":
        return _tiny_sd_components(name)
    tokenizer, tokenizer_2 = _tiny_tokenizers()
    with _drawn_from_seed():  # the weights are drawn in this order from the seed
        unet = _tiny_unet()
        vae = _tiny_vae()
        text_encoder, text_encoder_2 = _tiny_text_encoders(tokenizer)
    for module in (unet, vae, text_encoder, text_encoder_2):
        module.eval().requires_grad_(False)  # inference only (engine.models.freeze)
    return dict(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        scheduler=_tiny_scheduler(),
    )


def _tiny_sd_components(name: str) -> dict:
    """The components of a tiny SD 1.x / 2.x pipeline: one tokenizer and text encoder."""
    with tempfile.TemporaryDirectory(prefix="stylealigned-tiny-tok-") as tmp:
        tokenizer = _tokenizer(write_tokenizer_files(Path(tmp)), "<|endoftext|>" if name == "tiny-sd15" else "!")
    with _drawn_from_seed():  # the weights are drawn in this order from the seed
        unet = _tiny_unet(name)
        vae = _tiny_vae(scaling_factor=0.18215)
        text_encoder = _tiny_text_encoder(tokenizer, SD2_TEXT_HIDDEN if name != "tiny-sd15" else TEXT_HIDDEN,
                                          "gelu" if name != "tiny-sd15" else "quick_gelu")
    for module in (unet, vae, text_encoder):
        module.eval().requires_grad_(False)
    scheduler = _tiny_scheduler(prediction_type="v_prediction" if name == "tiny-sd2v" else "epsilon")
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


def _tiny_text_encoder(tokenizer, hidden: int, activation: str):
    """One CLIP text encoder of an SD 1.x / 2.x model at toy size (SD 1 uses quick GELU, SD 2's
    OpenCLIP GELU), drawing its weights from the current random state."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=3, max_position_embeddings=77, hidden_act=activation,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))


def _tiny_tokenizers():
    """SDXL's two CLIP tokenizers over the byte-level vocabulary (they differ in padding)."""
    with tempfile.TemporaryDirectory(prefix="stylealigned-tiny-tok-") as tmp:
        folder = write_tokenizer_files(Path(tmp))
        return _tokenizer(folder, "<|endoftext|>"), _tokenizer(folder, "!")


def _tiny_vae(scaling_factor: float = 0.13025):
    """The tiny VAE (scale factor 8; SDXL's scaling factor unless told SD's), drawing its
    weights from the current random state."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=128,
        scaling_factor=scaling_factor,
    )


def _tiny_text_encoders(tokenizer):
    """SDXL's two text encoders (CLIPTextModel, then CLIPTextModelWithProjection) at toy size,
    drawing their weights from the current random state in that order."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    text_config = dict(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=3,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=TEXT_PROJECTION,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    return text_encoder, CLIPTextModelWithProjection(CLIPTextConfig(**text_config))


def _tiny_scheduler(prediction_type: str = "epsilon"):
    """SDXL's and SD's DDIM schedule (scaled linear betas, leading spacing, offset 1); SD 2.1-768
    predicts v."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type=prediction_type,
    )


def build_tiny_pipeline(name: str = "tiny"):
    """A tiny pipeline with random weights (float32, CPU): ``tiny`` a
    ``StableDiffusionXLPipeline``; ``tiny-sd15``, ``tiny-sd2``, ``tiny-sd2v`` a
    ``StableDiffusionPipeline`` (no safety checker)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    components = build_tiny_components(name)
    if name == "tiny":
        pipe = StableDiffusionXLPipeline(**components, force_zeros_for_empty_prompt=True)
    else:
        pipe = StableDiffusionPipeline(**components, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(folder: str | Path, name: str = "tiny") -> Path:
    """Write a tiny model as a diffusers folder (its pipeline class's ``from_pretrained`` loads it)."""
    folder = Path(folder)
    build_tiny_pipeline(name).save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_preview_decoder():
    """A random-weight ``AutoencoderTiny`` at toy size (scale factor 8, like TAESDXL), the tiny
    model's preview decoder: it shows noise, as any random decoder does. Its own seed, so the
    pipeline's weights do not depend on it."""
    import torch
    from diffusers import AutoencoderTiny

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED + 1)
    try:
        decoder = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                                  num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    finally:
        torch.random.set_rng_state(generator_state)
    return decoder.eval().requires_grad_(False)
