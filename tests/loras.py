"""Real PEFT LoRA files for the tiny model, in diffusers and kohya format, for tests."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def tiny_lora_state(seed: int = 1, rank: int = 4, up_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """A LoRA trained-like state for the tiny UNet: PEFT adapters with random A and B matrices.

    Keys in diffusers' PEFT layout (``down_blocks.1....attn1.to_q.lora_A.weight``); the scale
    alpha / rank is 1. ``up_scale`` multiplies the B (up) matrices: the LoRA's change scales with it.
    """
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from stylealigned_desktop.engine.tiny import build_tiny_unet

    unet = build_tiny_unet()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS, init_lora_weights=False))
    finally:
        torch.random.set_rng_state(state)
    weights = {k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(unet).items()}
    return {k: v * up_scale if ".lora_B." in k else v for k, v in weights.items()}


def write_diffusers_lora(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """A ``.safetensors`` file as ``StableDiffusionXLPipeline.save_lora_weights`` writes it."""
    from diffusers import StableDiffusionXLPipeline

    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionXLPipeline.save_lora_weights(str(path.parent), unet_lora_layers=state,
                                                weight_name=path.name, safe_serialization=True)
    return path


def write_kohya_lora(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """The same LoRA as kohya's sd-scripts name it: ``lora_unet_<path with _>.lora_down.weight``,
    ``.lora_up.weight`` and ``.alpha`` (= rank, so alpha / rank = 1)."""
    kohya = {}
    for key, value in state.items():
        module, _, kind = key.partition(".lora_")
        name = "lora_unet_" + module.replace(".", "_")
        if kind.startswith("A."):
            kohya[f"{name}.lora_down.weight"] = value
            kohya[f"{name}.alpha"] = torch.tensor(float(value.shape[0]))
        else:
            kohya[f"{name}.lora_up.weight"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(kohya, str(path))
    return path


def write_sd15_lora(path: Path) -> Path:
    """A kohya LoRA for SD 1.5: its cross-attention reads 768-wide text embeddings."""
    rank = 4
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    save_file({f"{name}.lora_down.weight": torch.randn(rank, 768), f"{name}.lora_up.weight": torch.randn(320, rank),
               f"{name}.alpha": torch.tensor(float(rank))}, str(path))
    return path
