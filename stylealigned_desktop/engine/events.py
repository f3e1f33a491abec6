"""Events the engine reports while it works (plain dataclasses, safe to pass between threads).

``index`` is a panel's 0-based index in the request; None means a reference, and then
``reference`` is its 0-based position in ``SetRequest.references`` (always 0 for a set with one
reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


def picture_key(index: int | None, reference: int = 0):
    """One key for every picture of a set: a panel's index, None for the first reference and
    ``("reference", r)`` for reference r >= 1 (as ``RunResult.latents`` is keyed)."""
    if index is not None:
        return index
    return None if reference == 0 else ("reference", reference)


@dataclass(frozen=True)
class Loading:
    progress: float
    """0..1"""
    message: str = ""


@dataclass(frozen=True)
class Inverting:
    """Reading a reference picture (DDIM inversion): ``step`` of ``total`` of picture
    ``picture`` (1-based) of the ``pictures`` this run reads."""

    step: int
    total: int
    picture: int = 1
    pictures: int = 1


@dataclass(frozen=True)
class Step:
    step: int
    """1-based number of denoising steps done."""
    total: int


@dataclass(frozen=True)
class Decoding:
    """Finishing: ``done`` of the set's ``total`` pictures decoded from latents (the slow part
    of the end of a run in the Low memory mode, with the VAE offloaded and tiled)."""

    done: int
    total: int


@dataclass(frozen=True)
class Preview:
    index: int | None
    step: int
    image: Image.Image
    reference: int = 0


@dataclass(frozen=True)
class PanelDone:
    index: int | None
    image: Image.Image
    metadata: dict[str, Any] = field(default_factory=dict)
    reference: int = 0
    masks: dict[str, Any] = field(default_factory=dict)
    """A panel's subject mask per character it names (spec section 13): its last step's, a
    (rows, columns) uint8 array of 0 and 1 at the deepest attention grid (latent / 4 per side in
    SDXL). Empty for a panel that names no character and for references."""


def anchor_key(character: str, number: int) -> tuple[str, str, int]:
    """An anchor's key in ``RunResult.anchors``, ``masks`` and ``latents``: ("anchor", name, k)."""
    return ("anchor", character, number)


@dataclass(frozen=True)
class AnchorPreview:
    """A character's anchor (spec section 13) at a step: ``number`` is 0-based within the character."""

    character: str
    number: int
    step: int
    image: Image.Image


@dataclass(frozen=True)
class AnchorDone:
    """A character's finished anchor, its record and its last step's subject mask (as PanelDone's)."""

    character: str
    number: int
    image: Image.Image
    metadata: dict[str, Any] = field(default_factory=dict)
    mask: Any = None


@dataclass(frozen=True)
class Notice:
    """Something the user should know that did not stop the run (e.g. micro-batch halved)."""

    message: str


@dataclass(frozen=True)
class RunResult:
    """A finished run: final images by panel index (0-based), the references, and run metadata.

    ``references`` holds every reference's image by its position in ``SetRequest.references``
    (a weight-0 reference is not run and has none); ``reference`` is position 0's, as one-
    reference code reads it. ``latents`` holds the final latents (float32, CPU) by panel index,
    None for reference 0 and ``("reference", r)`` for reference r >= 1.
    """

    reference: Image.Image | None
    panels: dict[int, Image.Image]
    metadata: dict[str, Any]
    latents: dict[Any, Any] = field(default_factory=dict)
    references: dict[int, Image.Image] = field(default_factory=dict)
    anchors: dict[tuple[str, str, int], Image.Image] = field(default_factory=dict)
    """The characters' anchors by :func:`anchor_key` (spec section 13)."""
    masks: dict[Any, dict[str, Any]] = field(default_factory=dict)
    """Subject masks (as ``PanelDone.masks``) by panel index, and by :func:`anchor_key` for anchors."""

    def __post_init__(self) -> None:
        if not self.references and self.reference is not None:
            self.references[0] = self.reference


@dataclass(frozen=True)
class Finished:
    run: RunResult


@dataclass(frozen=True)
class Cancelled:
    pass


@dataclass(frozen=True)
class Failed:
    message: str


Event = (Loading | Inverting | Step | Decoding | Preview | PanelDone | AnchorPreview | AnchorDone | Notice
         | Finished | Cancelled | Failed)
