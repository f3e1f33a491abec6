"""Runs of a session: the plan handed to the engine and the history entry recorded afterwards.

A :class:`RunPlan` is what ``Session.prepare_generate()`` / ``prepare_reroll()`` return: the
engine's immutable ``SetRequest`` plus what the session needs to file the results (panel ids,
the run folder). When the run ends, ``Session.record_run(plan, ...)`` turns it into a
:class:`RunRecord` stored in session.json: enough to show the run's images and to restore
its settings and seeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..engine.anchor_files import anchor_file
from ..engine.request import SetRequest
from ..engine.runfolder import REFERENCE_FILE as REFERENCE_FILE  # re-exported for the UI
from ..engine.runfolder import reference_file as reference_file_name
from .characters import Character, CharacterSettings
from .errors import SessionError
from .generation import GenerationSettings
from .json_fields import Reader, check_number, check_relative_path, check_seed, opt_size
from .values import Control

RUN_STATUSES = ("finished", "cancelled", "failed")
OUTPUTS = "outputs"


def check_run_folder(value: str, where: str) -> str:
    """A run's folder as session.json stores it: ``outputs/<name>``, a direct child of outputs/."""
    check_relative_path(value, where)
    parts = value.split("/")
    if len(parts) != 2 or parts[0] != OUTPUTS or parts[1] in ("", ".", ".."):
        raise SessionError(f"{where} must be a run folder outputs/<name>, got {value!r}")
    return value


def check_file_name(value: str, where: str) -> str:
    """A picture of a run folder: a plain file name in it."""
    if not value or value in (".", "..") or any(c in value for c in "/\\:\0"):
        raise SessionError(f"{where} must be a file name inside the run folder, got {value!r}")
    return value


def panel_file_name(index: int) -> str:
    """The file of panel ``index`` (0-based) in a run folder: ``panel-01.png`` for index 0."""
    return f"panel-{index + 1:02d}.png"




def new_run_id(taken: Iterable[str], now: datetime | None = None) -> str:
    """A run id from the local time, ``20261125-170000``, with ``-2``, ``-3`` ... if taken.

    Ids sort in time order as text, and name the run's folder under ``outputs/``.
    """
    base = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    taken = set(taken)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


@dataclass(frozen=True)
class RunStyle:
    """One reference a run used.

    ``kind`` "generated": ``prompt`` (final) = ``subject`` + style text, with ``seed``.
    ``kind`` "picture": the gallery picture ``reference_id`` stored at ``file`` with ``caption``.
    ``weight`` is its normalised share of the style (spec section 11); ``image`` its picture
    in the run folder (None until the run made it, and for a weight-0 reference).
    """

    kind: str
    prompt: str = ""
    subject: str = ""
    seed: int = 0
    reference_id: str | None = None
    file: str | None = None
    caption: str = ""
    weight: float = 1.0
    image: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", check_number(self.weight, "reference weight"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "prompt": self.prompt, "subject": self.subject, "seed": self.seed,
            "reference_id": self.reference_id, "file": self.file, "caption": self.caption,
            "weight": self.weight, "image": self.image,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RunStyle:
        r = Reader(data, where)
        kind = r.text("kind", required=True)
        if kind not in ("generated", "picture"):
            raise SessionError(f"{where}.kind must be 'generated' or 'picture', got {kind!r}")
        file = r.opt_text("file")
        value = cls(
            kind=kind,
            prompt=r.text("prompt"),
            subject=r.text("subject"),
            seed=check_seed(r.integer("seed"), f"{where}.seed"),
            reference_id=r.opt_text("reference_id"),
            file=None if file is None else check_relative_path(file, f"{where}.file"),
            caption=r.text("caption"),
            weight=r.number("weight", 1.0),
            image=_opt_image(r),
        )
        r.done()
        return value


def _opt_image(r: Reader) -> str | None:
    image = r.opt_text("image")
    return None if image is None else check_file_name(image, f"{r.where}.image")


@dataclass(frozen=True)
class RunPanel:
    """One panel of a run's request.

    ``index`` is its 0-based position in the request; ``prompt`` the final prompt and
    ``subject`` the panel's own prompt; ``control`` the control used (None: none);
    ``file`` its image inside the run folder, None when the run did not produce it (a re-roll
    of another panel, a cancelled run); ``size`` its own (width, height), None: the run's.
    """

    index: int
    panel_id: str
    prompt: str
    subject: str
    seed: int
    control: Control | None = None
    file: str | None = None
    size: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "panel_id": self.panel_id, "prompt": self.prompt,
            "subject": self.subject, "seed": self.seed,
            "control": None if self.control is None else self.control.to_dict(),
            "file": self.file, "size": None if self.size is None else list(self.size),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RunPanel:
        r = Reader(data, where)
        control = r.obj("control")
        file = r.opt_text("file")
        value = cls(
            index=r.integer("index", required=True),
            panel_id=r.text("panel_id", required=True),
            prompt=r.text("prompt"),
            subject=r.text("subject"),
            seed=check_seed(r.integer("seed"), f"{where}.seed"),
            control=None if control is None else Control.from_dict(control, f"{where}.control"),
            file=None if file is None else check_file_name(file, f"{where}.file"),
            size=opt_size(r, "size"),
        )
        r.done()
        return value


@dataclass(frozen=True)
class RunCharacter:
    """A character as a run used it (``character``: its anchors' seeds as drawn for the run,
    the artist's anchor pictures) and its anchors' pictures in the run folder (``images``, one
    per anchor, None where the run made none)."""

    character: Character
    images: tuple[str | None, ...] = ()

    def drew_the_same(self, character: Character | None, anchor: int) -> bool:
        """Whether ``character`` as it is now draws ``anchor`` as this run did (same looks,
        subject words, anchor text, and the anchor's seed or picture)."""
        was = self.character
        return character is not None and (
            (was.description, was.subject_words, was.anchor_text, was.picture(anchor))
            == (character.description, character.subject_words, character.anchor_text,
                character.picture(anchor))
            and (was.picture(anchor) is not None
                 or was.anchor_seeds[anchor:anchor + 1] == character.anchor_seeds[anchor:anchor + 1]))

    def to_dict(self) -> dict[str, Any]:
        return {"character": self.character.to_dict(), "images": list(self.images)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RunCharacter:
        r = Reader(data, where)
        images = tuple(_opt_file(x, f"{where}.images[{i}]") for i, x in enumerate(r.items("images")))
        value = cls(Character.from_dict(r.obj("character", {}), f"{where}.character"), images)
        r.done()
        return value


def _opt_file(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise SessionError(f"{where} must be a file name or null, got {value!r}")
    return None if value is None else check_file_name(value, where)


@dataclass(frozen=True)
class RunPlan:
    """A generation about to be handed to the engine.

    Give ``request`` to ``Engine.generate``; write the run folder into ``folder``
    (``<session>/outputs/<run_id>``); then call ``Session.record_run(plan, ...)``.
    ``panel_ids[i]`` is the session panel behind ``request.panels[i]``: use it to put
    previews and results on the right panel even if the user reorders meanwhile.
    """

    run_id: str
    folder: Path
    request: SetRequest
    panel_ids: tuple[str, ...]
    subjects: tuple[str, ...]
    controls: tuple[Control | None, ...]
    references: tuple[RunStyle, ...]
    style_text: str
    settings: GenerationSettings
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    characters: tuple[Character, ...] = ()
    """The characters as the run uses them (their anchors' seeds drawn for it)."""
    character_settings: CharacterSettings | None = None

    @property
    def selected(self) -> tuple[int, ...]:
        """The request indices this run generates."""
        return self.request.selected

    def panel_id(self, index: int | None) -> str | None:
        """The session panel id of request index ``index`` (None: the reference)."""
        return None if index is None else self.panel_ids[index]


@dataclass(frozen=True)
class RunRecord:
    """One entry of a session's history (a run folder under ``outputs/`` plus how it was made).

    ``folder`` is session-relative (``outputs/<id>``); image files are relative to it.
    ``references`` are the run's references in request order, each with its weight and its
    picture in the run folder. ``consistency`` is an optional style-consistency score (e.g.
    mean pairwise DINO).
    """

    id: str
    created: str
    folder: str
    status: str
    style_text: str
    references: tuple[RunStyle, ...]
    panels: tuple[RunPanel, ...]
    settings: GenerationSettings
    only: tuple[int, ...] | None = None
    consistency: float | None = None
    message: str = ""
    characters: tuple[RunCharacter, ...] = ()
    character_settings: CharacterSettings | None = None

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise SessionError(
                f"run status must be one of {', '.join(RUN_STATUSES)}, got {self.status!r}"
            )
        check_run_folder(self.folder, "run folder")
        if self.consistency is not None:
            object.__setattr__(self, "consistency", check_number(self.consistency, "consistency"))

    @property
    def style(self) -> RunStyle:
        """The first reference (the only one of most runs)."""
        return self.references[0]

    @property
    def reference_file(self) -> str | None:
        """The first reference's picture in the run folder."""
        return self.references[0].image

    @property
    def generated(self) -> tuple[RunPanel, ...]:
        """The panels this run produced an image for."""
        return tuple(p for p in self.panels if p.file is not None)

    def images(self) -> list[tuple[int | None, str]]:
        """(request index or None for the first reference, session-relative file) of every
        image; see :meth:`reference_images` for all references."""
        out: list[tuple[int | None, str]] = []
        if self.reference_file:
            out.append((None, f"{self.folder}/{self.reference_file}"))
        out.extend((p.index, f"{self.folder}/{p.file}") for p in self.generated)
        return out

    def reference_images(self) -> list[tuple[int, str]]:
        """(position, session-relative file) of every reference picture the run made."""
        return [(k, f"{self.folder}/{r.image}") for k, r in enumerate(self.references) if r.image]

    def anchor_images(self) -> list[tuple[str, int, str]]:
        """(character, 0-based anchor, session-relative file) of every anchor the run made."""
        return [(c.character.name, k, f"{self.folder}/{image}")
                for c in self.characters for k, image in enumerate(c.images) if image]

    def panel(self, panel_id: str) -> RunPanel | None:
        return next((p for p in self.panels if p.panel_id == panel_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "folder": self.folder,
            "status": self.status,
            "style_text": self.style_text,
            "references": [x.to_dict() for x in self.references],
            "panels": [p.to_dict() for p in self.panels],
            "settings": self.settings.to_dict(),
            "only": None if self.only is None else list(self.only),
            "consistency": self.consistency,
            "message": self.message,
            "characters": [c.to_dict() for c in self.characters],
            "character_settings": None if self.character_settings is None
            else self.character_settings.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "run") -> RunRecord:
        r = Reader(data, where)
        only = r.raw("only")
        if only is not None and (
            not isinstance(only, list)
            or any(isinstance(i, bool) or not isinstance(i, int) for i in only)
        ):
            raise SessionError(f"{where}.only must be a list of panel indices or null")
        references = tuple(RunStyle.from_dict(x, f"{where}.references[{i}]")
                           for i, x in enumerate(r.items("references")))
        character_settings = r.obj("character_settings")
        value = cls(
            id=r.text("id", required=True),
            created=r.text("created"),
            folder=check_run_folder(r.text("folder", required=True), f"{where}.folder"),
            status=r.text("status", "finished"),
            style_text=r.text("style_text"),
            references=references or (RunStyle("generated"),),
            panels=tuple(
                RunPanel.from_dict(p, f"{where}.panels[{i}]") for i, p in enumerate(r.items("panels"))
            ),
            settings=GenerationSettings.from_dict(r.obj("settings", {}), f"{where}.settings"),
            only=None if only is None else tuple(only),
            consistency=r.opt_number("consistency"),
            message=r.text("message"),
            characters=tuple(RunCharacter.from_dict(c, f"{where}.characters[{i}]")
                             for i, c in enumerate(r.items("characters"))),
            character_settings=None if character_settings is None else CharacterSettings.from_dict(
                character_settings, f"{where}.character_settings"),
        )
        r.done()
        return value

    @classmethod
    def from_plan(
        cls,
        plan: RunPlan,
        session_folder: Path,
        status: str = "finished",
        panel_files: Mapping[int, str] | None = None,
        reference_file: str | None = None,
        consistency: float | None = None,
        message: str = "",
        run_folder: Path | None = None,
    ) -> RunRecord:
        """The history entry of a run made from ``plan`` (its files in ``run_folder``,
        default ``plan.folder``).

        ``panel_files`` maps request indices to files in the run folder; by default each
        selected panel's ``panel-NN.png`` and each reference's ``reference.png`` /
        ``reference-NN.png`` are taken when they exist (a cancelled run may have written only
        some of them). ``reference_file`` names the first reference's file instead.
        """
        folder = plan.folder if run_folder is None else run_folder
        if panel_files is None:
            panel_files = {i: panel_file_name(i) for i in plan.selected
                           if (folder / panel_file_name(i)).is_file()}
        images = [reference_file_name(k) if (folder / reference_file_name(k)).is_file() else None
                  for k in range(len(plan.references))]
        if reference_file is not None:
            images[0] = reference_file
        references = tuple(replace(x, image=image) for x, image in zip(plan.references, images))
        try:
            relative = folder.resolve().relative_to(session_folder.resolve()).as_posix()
        except ValueError:
            raise SessionError(f"the run folder {folder} is not inside the session folder") from None
        panels = tuple(
            RunPanel(
                index=i,
                panel_id=plan.panel_ids[i],
                prompt=p.prompt,
                subject=plan.subjects[i],
                seed=p.seed,
                control=plan.controls[i],
                file=panel_files.get(i),
                size=p.size,
            )
            for i, p in enumerate(plan.request.panels)
        )
        return cls(
            id=plan.run_id,
            created=plan.created,
            folder=relative,
            status=status,
            style_text=plan.style_text,
            references=references,
            panels=panels,
            settings=plan.settings,
            only=plan.request.only,
            consistency=consistency,
            message=message,
            characters=_run_characters(plan, folder),
            character_settings=plan.character_settings if plan.characters else None,
        )


def _run_characters(plan: RunPlan, folder: Path) -> tuple[RunCharacter, ...]:
    """The plan's characters with the anchor pictures the run wrote into ``folder``."""
    anchors = plan.character_settings.anchors_per_character if plan.character_settings else 0
    return tuple(
        RunCharacter(c, tuple(anchor_file(c.name, k) if (folder / anchor_file(c.name, k)).is_file()
                              else None for k in range(anchors)))
        for c in plan.characters)
