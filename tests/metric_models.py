"""Tiny random-weight metric models (DINO ViT, CLIP, Inception v3) saved the way the real ones
are, for the metric tests and the frozen build's smoke (packaging/smoke_inputs.py)."""

from __future__ import annotations

from pathlib import Path

import torch

TINY_IMAGE = 32


def build_tiny_dino(folder: Path) -> Path:
    """A random ViTModel + ViTImageProcessor saved like facebook/dino-vitb8 (patch 8)."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(1)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=37, image_size=TINY_IMAGE, patch_size=8)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": TINY_IMAGE, "width": TINY_IMAGE}).save_pretrained(folder)
    return folder


def build_tiny_clip(folder: Path) -> Path:
    """A random CLIPModel + CLIPProcessor (byte-level tokenizer) saved to a folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from stylealigned_desktop.engine.tiny import write_tokenizer_files

    vocab = write_tokenizer_files(folder / "vocab-src")
    tokenizer = CLIPTokenizer.from_pretrained(str(vocab), pad_token="<|endoftext|>",
                                              model_max_length=77)
    torch.manual_seed(2)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                         num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=77,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(image_size=TINY_IMAGE, patch_size=8, hidden_size=32,
                           intermediate_size=37, num_attention_heads=4, num_hidden_layers=2),
        projection_dim=16,
    )
    model_folder = folder / "clip"
    CLIPModel(config).save_pretrained(model_folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": TINY_IMAGE},
                                         crop_size={"height": TINY_IMAGE, "width": TINY_IMAGE})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(model_folder)
    return model_folder


def build_tiny_inception(path: Path) -> Path:
    """torchvision's inception_v3 (random weights) as a safetensors state dict."""
    from safetensors.torch import save_file
    from torchvision.models import inception_v3

    torch.manual_seed(3)
    model = inception_v3(weights=None, aux_logits=False, init_weights=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path
