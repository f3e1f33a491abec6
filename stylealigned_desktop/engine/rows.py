"""The plan of a run: its rows, what each row is and what it shares, and the size groups.

A run denoises one latent row per picture: first the references that are seen (weight above 0;
spec section 11), then the selected panels. A reference row *records*: in every shared layer it
leaves the keys, values and statistics that the panels then share. A panel row *replays* them,
blended by the references' weights, and never sees another panel (spec section 3). Rows of one
size form a group with its own latents, scheduler and SDXL time ids (spec section 12).

Character anchors (spec section 13) are rows after the references that record too (role
``anchor``), and a panel's :attr:`Row.names` says whose anchors it shares. Where this wave extends
it: a wide panel's MultiDiffusion windows (section 14) become rows of its size group that
replay like panels and say which panel they tile. Torch-free: the plan is checked before any
model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from . import events as ev
from .characters import Anchor, anchors_of, expand_character_names, named_characters
from .errors import GenerationError
from .request import Panel, ReferencePicture, SetRequest, StyleSource

Size = tuple[int, int]
"""(width, height) in pixels."""


@dataclass(frozen=True)
class Row:
    """One picture of the run: what it is and what it shares."""

    role: Literal["reference", "anchor", "panel"]
    position: int
    """A reference's position in ``SetRequest.references``, an anchor's index among the
    anchors, or a panel's 0-based index."""
    source: StyleSource | Anchor | Panel
    size: Size
    shares: tuple[int, ...] = ()
    """The positions of the references whose recorded layers this row attends to (a panel: the
    references that are seen; a reference: none, it records)."""
    text: str | None = None
    """What the text encoders read when it is not the source's prompt: a prompt with its
    characters' descriptions in place of ``[Name]`` (spec section 13)."""
    names: tuple[str, ...] = ()
    """The characters the row names (an anchor: its own)."""

    @property
    def records(self) -> bool:
        """Whether the row records for the panels to share (a reference, an anchor)."""
        return self.role != "panel"

    @property
    def prompt(self) -> str:
        """The text the row is conditioned on: a picture reference's caption, else its prompt."""
        if self.text is not None:
            return self.text
        return self.source.caption if isinstance(self.source, ReferencePicture) else self.source.prompt

    @property
    def seed(self) -> int:
        """The seed of the row's starting noise (a picture reference's noise is never used: 0)."""
        return getattr(self.source, "seed", 0)

    @property
    def picture_key(self):
        """The row's key in ``RunResult.latents`` (:func:`events.picture_key`, :func:`events.anchor_key`)."""
        if self.role == "anchor":
            return ev.anchor_key(self.source.character, self.source.number)
        return ev.picture_key(None, self.position) if self.records else self.position

    def preview(self, step: int, image):
        if self.role == "anchor":
            return ev.AnchorPreview(self.source.character, self.source.number, step, image)
        return ev.Preview(None, step, image, self.position) if self.records else ev.Preview(self.position, step, image)

    def done(self, image, metadata: dict, masks: dict | None = None):
        masks = masks or {}
        if self.role == "anchor":
            return ev.AnchorDone(self.source.character, self.source.number, image, metadata,
                                 masks.get(self.source.character))
        if self.records:
            return ev.PanelDone(None, image, metadata, self.position)
        return ev.PanelDone(self.position, image, metadata, masks=masks)


@dataclass(frozen=True)
class RunRows:
    """The rows of a run in order (references, then panels) and their size groups."""

    rows: tuple[Row, ...]
    set_size: Size

    @classmethod
    def of(cls, request: SetRequest) -> RunRows:
        """The rows of a request, checked: what cannot run fails here, before any model loads."""
        set_size = (request.sampling.width, request.sampling.height)
        used = request.used_references
        rows = [Row("reference", r, request.references[r], set_size) for r in used]
        rows += [Row("anchor", a.index, a, set_size, used, names=(a.character,))
                 for a in anchors_of(request.characters, request.settings.anchors_per_character)]
        for i in request.selected:
            panel = request.panels[i]
            names = tuple(named_characters(panel.prompt, request.characters))
            text = expand_character_names(panel.prompt, request.characters) if names else None
            rows.append(Row("panel", i, panel, request.panel_size(i), used, text, names))
        plan = cls(tuple(rows), set_size)
        plan.check_full_attention_share(request)
        return plan

    def check_full_attention_share(self, request: SetRequest) -> None:
        """The authors' full sharing couples every image: one batch of one reference and panels
        of the set's size, so no re-roll, no blend, no own sizes."""
        if not request.settings.full_attention_share:
            return
        if request.characters:
            raise GenerationError("full_attention_share couples every image: it takes no characters")
        if request.only is not None:
            raise GenerationError(
                "full_attention_share couples every image of the set: it cannot re-roll single panels"
            )
        if len(request.references) > 1 or any(row.size != self.set_size for row in self.panels):
            raise GenerationError("full_attention_share is the authors' ablation of one reference: it takes "
                                  "neither several references nor panels of their own size")

    @property
    def references(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.role == "reference")

    @property
    def anchors(self) -> tuple[Row, ...]:
        """The characters' anchors (spec section 13): after the references, before the panels."""
        return tuple(row for row in self.rows if row.role == "anchor")

    @property
    def panels(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if not row.records)

    @property
    def prompts(self) -> list[str]:
        return [row.prompt for row in self.rows]

    @cached_property
    def groups(self) -> dict[Size, list[int]]:
        """Row numbers by size, in order of first appearance (the set's size first: the
        references lead): rows of one size share latents, a scheduler and their UNet calls."""
        groups: dict[Size, list[int]] = {}
        for number, row in enumerate(self.rows):
            groups.setdefault(row.size, []).append(number)
        return groups

    @cached_property
    def places(self) -> list[tuple[Size, int]]:
        """Where each row lives: its size group and its place in the group's latents."""
        where = {number: (size, k) for size, numbers in self.groups.items() for k, number in enumerate(numbers)}
        return [where[number] for number in range(len(self.rows))]

    def panel_rows(self, size: Size) -> list[int]:
        """The row numbers of the panels of one size group."""
        return [number for number in self.groups[size] if not self.rows[number].records]

    def name(self, number: int) -> str:
        """The row as a message names it: "a reference" or "panel N" (1-based)."""
        row = self.rows[number]
        if row.role == "anchor":
            return f"anchor {row.source.number + 1} of [{row.source.character}]"
        return "a reference" if row.records else f"panel {row.position + 1}"
