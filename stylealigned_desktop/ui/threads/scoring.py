"""The set-consistency score of a finished run, computed in the engine's worker thread.

The score is the paper's DINO set consistency (``engine.metrics``): the mean cosine similarity
between the DINO ViT-B/8 embeddings of every pair of pictures of the set (the reference and the
panels). The window computes it only when the DINO model is already on this computer (a hub id
in the Hugging Face cache, or a local folder): it never starts a download by itself. The
functions here import torch (through ``engine.metrics``) only when called: call them in the
worker thread, never on the UI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...engine.hub import DEFAULT_DINO, download_command

PAPER_CONSISTENCY = 0.51
"""The paper's StyleAligned sets (Hertz et al. 2024, DINO set consistency)."""
UNSHARED_CONSISTENCY = 0.35
"""Sets drawn without sharing (plain SDXL) in an independent reproduction: about 0.345."""

CONSISTENCY_TIP = (
    "Set consistency: how alike the pictures of this run look, as the StyleAligned paper "
    "measures it. It is the mean DINO cosine similarity between every pair of pictures of the "
    "set (the reference and the panels): higher means more alike, 1 would be identical "
    f"pictures. The paper's StyleAligned sets average about {PAPER_CONSISTENCY:.2f}; sets "
    f"drawn without sharing about {UNSHARED_CONSISTENCY:.2f}."
)


def dino_source(configured: str) -> str:
    """The DINO model to use: the configured hub id or folder, else the paper's ViT-B/8."""
    return configured.strip() or DEFAULT_DINO


def how_to_get_dino(source: str) -> str:
    """What to do so the window can score runs (for the history's hint and its help)."""
    from ...engine.models import looks_like_path  # torch-free

    hub_id = DEFAULT_DINO if looks_like_path(source) or Path(source).exists() else source
    return (
        f"Consistency scores need the DINO model {source}, which is not on this computer. "
        "Download it once while online (about 350 MB):\n\n"
        f"    {download_command(hub_id)}\n\n"
        "(or from the model dialog: Other models), or choose a folder holding it in Settings → Advanced → Consistency model (DINO). Runs that finish while "
        "the model is available get their score in the history."
    )


@dataclass(frozen=True)
class ConsistencyOutcome:
    """What scoring a run gave: a ``score``, or why there is none (``missing``: how to get
    DINO; the pictures were not looked at)."""

    score: float | None = None
    missing: str | None = None


def dino_missing(source: str) -> str | None:
    """None when the DINO model loads without a download; else why not and how to get it."""
    from ...engine.metrics import dino_unavailable_reason
    from ...engine.models import looks_like_path

    reason = dino_unavailable_reason(source)
    if reason is None:
        return None
    if looks_like_path(source) or Path(source).expanduser().exists():
        # say what is wrong with the folder the artist chose
        return f"{reason[0].upper()}{reason[1:]}.\n\n{how_to_get_dino(source)}"
    return how_to_get_dino(source)


def score_pictures(paths: Sequence[str | Path], source: str,
                   device: str = "auto") -> ConsistencyOutcome:
    """The DINO set consistency of the pictures at ``paths`` (at least 2), in the worker.

    Checks first that the model is on this computer; loads it once (``engine.metrics`` keeps
    it). Raises for unreadable pictures or a model folder that cannot be loaded.
    """
    missing = dino_missing(source)
    if missing is not None:
        return ConsistencyOutcome(missing=missing)
    if len(paths) < 2:
        raise ValueError(f"a set needs at least 2 pictures to be scored, got {len(paths)}")
    from PIL import Image

    from ...engine.metrics import images_set_consistency

    pictures = []
    for path in paths:
        with Image.open(path) as picture:
            pictures.append(picture.convert("RGB"))
    return ConsistencyOutcome(score=images_set_consistency(pictures, source, device))
