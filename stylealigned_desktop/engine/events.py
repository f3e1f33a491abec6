"""Events the engine reports while it works (plain dataclasses, safe to pass between threads).

``index`` is a panel's 0-based index in the request; None means the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class Loading:
    progress: float
    """0..1"""
    message: str = ""


@dataclass(frozen=True)
class Inverting:
    step: int
    total: int


@dataclass(frozen=True)
class Step:
    step: int
    """1-based number of denoising steps done."""
    total: int


@dataclass(frozen=True)
class Preview:
    index: int | None
    step: int
    image: Image.Image


@dataclass(frozen=True)
class PanelDone:
    index: int | None
    image: Image.Image
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """Something the user should know that did not stop the run (e.g. micro-batch halved)."""

    message: str


@dataclass(frozen=True)
class RunResult:
    """A finished run: final images by panel index (0-based), the reference, and run metadata.

    ``latents`` holds the final latents (float32, CPU) by index (None = reference).
    """

    reference: Image.Image | None
    panels: dict[int, Image.Image]
    metadata: dict[str, Any]
    latents: dict[int | None, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    run: RunResult


@dataclass(frozen=True)
class Cancelled:
    pass


@dataclass(frozen=True)
class Failed:
    message: str


Event = Loading | Inverting | Step | Preview | PanelDone | Notice | Finished | Cancelled | Failed
