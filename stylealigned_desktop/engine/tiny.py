"""The built-in ``tiny`` model: a random-weight SDXL pipeline built offline in seconds.

It has SDXL's real classes and structure (a text_time UNet with two attention resolutions, an
AutoencoderKL with scale factor 8, CLIPTextModel + CLIPTextModelWithProjection, CLIP tokenizers
from a byte-level vocabulary) at toy sizes. Its pictures are noise: it exists for tests and for
trying the app without a GPU or a download.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

TINY_SEED = 0
TEXT_HIDDEN = 32
TEXT_PROJECTION = 32
TIME_EMBED = 8


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


def _tiny_unet():
    """The tiny UNet, drawing its weights from the current random state."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 8),
        transformer_layers_per_block=(1, 1, 2),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=6 * TIME_EMBED + TEXT_PROJECTION,
        cross_attention_dim=2 * TEXT_HIDDEN,
        norm_num_groups=8,
    )


def build_tiny_unet():
    """The tiny model's UNet exactly as ``build_tiny_components`` makes it (its weights come first
    from the fixed seed), without the rest; for models derived from it (the tiny ControlNet)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:
        return _tiny_unet().eval().requires_grad_(False)
    finally:
        torch.random.set_rng_state(generator_state)


def build_tiny_components() -> dict:
    """The components of a tiny SDXL pipeline, deterministic (fixed seed)."""
    tokenizer, tokenizer_2 = _tiny_tokenizers()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:  # the weights are drawn in this order from the seed
        unet = _tiny_unet()
        vae = _tiny_vae()
        text_encoder, text_encoder_2 = _tiny_text_encoders(tokenizer)
    finally:
        torch.random.set_rng_state(generator_state)
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


def _tiny_tokenizers():
    """SDXL's two CLIP tokenizers over the byte-level vocabulary (they differ in padding)."""
    with tempfile.TemporaryDirectory(prefix="stylealigned-tiny-tok-") as tmp:
        folder = write_tokenizer_files(Path(tmp))
        return _tokenizer(folder, "<|endoftext|>"), _tokenizer(folder, "!")


def _tiny_vae():
    """The tiny VAE (scale factor 8, SDXL's scaling factor), drawing its weights from the
    current random state."""
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
        scaling_factor=0.13025,
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


def _tiny_scheduler():
    """SDXL's DDIM schedule (scaled linear betas, leading spacing, offset 1)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )


def build_tiny_pipeline():
    """A ``StableDiffusionXLPipeline`` with random tiny weights (float32, CPU)."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(**build_tiny_components(), force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(folder: str | Path) -> Path:
    """Write the tiny model as a diffusers folder (``StableDiffusionXLPipeline.from_pretrained`` loads it)."""
    folder = Path(folder)
    build_tiny_pipeline().save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_preview_decoder():
    """A random-weight ``AutoencoderTiny`` at toy size (scale factor 8, like TAESDXL), the tiny
    model's preview decoder: it shows noise, as any random decoder does. Its own seed, so the
    pipeline's weights do not depend on it."""
    from diffusers import AutoencoderTiny

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED + 1)
    try:
        decoder = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                                  num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    finally:
        torch.random.set_rng_state(generator_state)
    return decoder.eval().requires_grad_(False)
