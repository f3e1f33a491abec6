"""The plain-text storyboard format: one panel per line.

    # comments and blank lines are ignored
    a toy train at dawn
    a toy boat | seed=42
    a train at dawn | control=depth:train.png | scale=0.7
    a lighthouse | control=canny:sketch.png | low=80 | high=160 | start=0 | end=0.8
    the harbour at dawn, wide | size=1344x768
    she opens the door | scene=2 | dialogue=Who's there? | camera=close-up | duration=2.5

Fields after the prompt are separated by ``|``: ``seed=N``; ``size=WxH`` (the panel's own
width and height, multiples of 64; without it the set's size); ``control=MODE:PATH`` with MODE
canny, depth or map (a relative PATH is relative to the file); ``scale=`` (ControlNet
conditioning scale, default 0.8); ``start=`` / ``end=`` (the part of the denoising, 0..1, during
which the control acts); ``low=`` / ``high=`` (canny thresholds); ``kind=depth|canny`` (for
``control=map:...``: which ControlNet the ready-made map feeds, default depth). A literal ``|``
in a prompt is written ``\\|``, and a prompt that begins with ``#`` is written ``\\#``.

Panel notes (the storyboard deliverables' text, ``session/notes.py``): ``scene=N`` / ``shot=N``
(without them: numbered automatically), ``action=``, ``dialogue=``, ``notes=``, ``camera=``
(free text, e.g. close-up), ``duration=`` (seconds; without it the set's default). In these
texts a line break is written ``\\n``.

The same text is a session's storyboard in and out: :func:`import_panels_text` /
:func:`import_panels_file` add a panel per line to a ``Session`` (all or nothing), and
:func:`export_panels_text` / :func:`export_panels_file` write its panels back.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import limits
from .session.errors import PictureError, SessionError
from .session.json_fields import check_seed
from .session.notes import PanelNotes
from .session.pictures import PreparedPicture, prepare_picture
from .session.values import Control, Panel, new_panel_id

if TYPE_CHECKING:
    from .session.model import Session

CONTROL_MODES = ("canny", "depth", "map")
_SPLIT = re.compile(r"(?<!\\)\|")
_SIZE = re.compile(r"\s*(\d+)\s*[x×X]\s*(\d+)\s*")


def parse_size(text: str) -> tuple[int, int]:
    """``"1344x768"`` -> (1344, 768): a panel's width x height, multiples of 64 (ValueError)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"a size is WIDTHxHEIGHT, e.g. 1344x768, got {text!r}")
    return limits.check_panel_size((int(match[1]), int(match[2])))


class PromptsFileError(ValueError):
    """A malformed line, with its file and line number."""


@dataclass(frozen=True)
class PanelLine:
    prompt: str
    seed: int | None = None
    size: tuple[int, int] | None = None
    control_mode: str | None = None
    control_image: str | None = None
    scale: float | None = None
    start: float | None = None
    end: float | None = None
    low: int | None = None
    high: int | None = None
    kind: str | None = None
    notes: PanelNotes = PanelNotes()

    def control_values(self, defaults) -> dict:
        """The line's control settings under their ``PanelControl`` names, each falling back to
        the same-named attribute of ``defaults`` (a PanelControl, a session Control...)."""
        given = {"scale": self.scale, "guidance_start": self.start, "guidance_end": self.end,
                 "canny_low": self.low, "canny_high": self.high, "map_kind": self.kind}
        return {name: getattr(defaults, name) if value is None else value for name, value in given.items()}


_RANGES = {  # the request's own limits (engine/request.py), checked here to name the line
    "seed": ("seed", int, 0, limits.SEED_LIMIT),
    "scale": ("control strength (scale=)", float, 0.0, limits.MAX_CONTROL_SCALE),
    "start": ("control start (start=)", float, 0.0, 1.0),
    "end": ("control end (end=)", float, 0.0, 1.0),
    "low": ("canny low threshold (low=)", int, 0, limits.MAX_CANNY),
    "high": ("canny high threshold (high=)", int, 0, limits.MAX_CANNY),
}


def _number(value: str, where: str, key: str) -> int | float:
    label, kind, low, high = _RANGES[key]
    try:
        number = kind(value)
    except ValueError:
        raise PromptsFileError(f"{where}: {key}= needs a {'whole ' if kind is int else ''}number, got {value!r}") from None
    check = limits.check_whole if kind is int else limits.check_number
    try:
        return check(number, label, low, high)
    except ValueError as error:
        raise PromptsFileError(f"{where}: {error}") from None


def parse_line(line: str, where: str = "line", base: Path | None = None) -> PanelLine | None:
    """One line of the format; None for blank and comment lines."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("\\#"):
        text = text[1:]
    parts = [p.strip().replace("\\|", "|") for p in _SPLIT.split(text)]
    prompt, fields = parts[0], parts[1:]
    if not prompt:
        raise PromptsFileError(f"{where}: the prompt is empty")
    try:
        limits.check_prompt(prompt)
    except ValueError as error:
        raise PromptsFileError(f"{where}: {error}") from None
    values: dict = {}
    notes: dict = {}
    for field in fields:
        key, sep, value = field.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise PromptsFileError(f"{where}: expected key=value after '|', got {field!r}")
        if key in values or key in notes or (key == "control" and "control_mode" in values):
            raise PromptsFileError(f"{where}: {key}= given twice")
        if key == "seed":
            values["seed"] = _number(value, where, key)
        elif key == "size":
            try:
                values["size"] = parse_size(value)
            except ValueError as exc:
                raise PromptsFileError(f"{where}: size=: {exc}") from None
        elif key == "control":
            mode, colon, path = value.partition(":")
            mode = mode.strip().lower()
            if not colon or mode not in CONTROL_MODES or not path.strip():
                raise PromptsFileError(
                    f"{where}: control= must be MODE:PATH with MODE one of {', '.join(CONTROL_MODES)}, got {value!r}")
            image = Path(path.strip()).expanduser()
            if base is not None and not image.is_absolute():
                image = base / image
            values["control_mode"], values["control_image"] = mode, str(image)
        elif key in ("scale", "start", "end", "low", "high"):
            values[key] = _number(value, where, key)
        elif key in _NOTE_TEXTS or key in _NOTE_NUMBERS:
            notes[key] = _note_value(key, value, where)
        elif key == "kind":
            if value.lower() not in ("depth", "canny"):
                raise PromptsFileError(f"{where}: kind= must be depth or canny, got {value!r}")
            values[key] = value.lower()
        else:
            raise PromptsFileError(f"{where}: unknown field {key!r} (known: seed, size, control, scale, "
                                   "start, end, low, high, kind, scene, shot, action, dialogue, "
                                   "notes, camera, duration)")
    control_only = [k for k in ("scale", "start", "end", "low", "high", "kind") if k in values]
    if control_only and "control_mode" not in values:
        raise PromptsFileError(f"{where}: {', '.join(control_only)} given without control=MODE:PATH")
    try:
        values["notes"] = PanelNotes(**notes)
    except SessionError as error:
        raise PromptsFileError(f"{where}: {error}") from None
    return PanelLine(prompt=prompt, **values)


_NOTE_TEXTS = ("action", "dialogue", "notes", "camera")
_NOTE_NUMBERS = {"scene": int, "shot": int, "duration": float}


def _note_value(key: str, value: str, where: str) -> str | int | float:
    """A panel-note field's value: text (``\\n`` a line break) or a number (checked by PanelNotes)."""
    if key in _NOTE_TEXTS:
        return value.replace("\\n", "\n")
    kind = _NOTE_NUMBERS[key]
    try:
        return kind(value)
    except ValueError:
        raise PromptsFileError(
            f"{where}: {key}= needs a {'whole ' if kind is int else ''}number, got {value!r}") from None


def parse_text(text: str, source: str = "<text>", base: Path | None = None) -> list[PanelLine]:
    """The panels of a storyboard text: at most :data:`~.engine.limits.MAX_PANELS`."""
    panels = []
    for number, line in enumerate(text.splitlines(), start=1):
        panel = parse_line(line, f"{source}:{number}", base)
        if panel is not None:
            panels.append(panel)
            if len(panels) > limits.MAX_PANELS:
                raise PromptsFileError(
                    f"{source}:{number}: more than {limits.MAX_PANELS} panels; split the storyboard "
                    "into several sets")
    return panels


MAX_FILE_BYTES = limits.MAX_PANELS * (limits.MAX_PROMPT_CHARS + 1024) * 4
"""A storyboard file larger than this cannot hold at most 1 000 panels of 2 000 characters."""


def read_text(path: Path, name: str) -> str:
    """The text of a storyboard file; :class:`PromptsFileError` starting with ``name``.

    Only a regular file is read (a FIFO or a device would never end), and only up to
    :data:`MAX_FILE_BYTES`.
    """
    try:
        with open(path, "rb", opener=_open_regular) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PromptsFileError(f"{name}: no such file") from None
    except _NotRegular:
        raise PromptsFileError(f"{name}: not a regular file") from None
    except OSError as error:
        raise PromptsFileError(f"{name}: cannot read ({error.strerror or error})") from None
    if len(data) > MAX_FILE_BYTES:
        raise PromptsFileError(f"{name}: too big for a storyboard (more than {MAX_FILE_BYTES // 2**20} MB)")
    try:
        return data.decode("utf-8-sig")  # a BOM (Windows editors) is not part of the prompt
    except UnicodeDecodeError:
        raise PromptsFileError(f"{name}: not a UTF-8 text file") from None


class _NotRegular(OSError):
    pass


def _open_regular(path: str, flags: int) -> int:
    """os.open that never blocks on a FIFO and refuses anything but a regular file."""
    fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _NotRegular(path)
    return fd


def read_prompts_file(path: str | Path) -> list[PanelLine]:
    path = Path(path)
    return parse_text(read_text(path, str(path)), str(path), path.parent)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def format_line(panel: PanelLine) -> str:
    """The inverse of :func:`parse_line` (control paths written as given)."""
    prompt = _escape(panel.prompt)
    parts = ["\\" + prompt if prompt.startswith("#") else prompt]
    if panel.seed is not None:
        parts.append(f"seed={panel.seed}")
    if panel.size is not None:
        parts.append(f"size={panel.size[0]}x{panel.size[1]}")
    if panel.control_mode:
        parts.append(f"control={panel.control_mode}:{_escape(panel.control_image)}")
    for key in ("scale", "start", "end", "low", "high", "kind"):
        value = getattr(panel, key)
        if value is not None:
            parts.append(f"{key}={value}")
    notes = panel.notes
    for key in ("scene", "shot", "duration"):
        if getattr(notes, key) is not None:
            parts.append(f"{key}={getattr(notes, key)}")
    for key in _NOTE_TEXTS:
        text = "\\n".join(getattr(notes, key).splitlines()).strip()
        if text:
            parts.append(f"{key}={_escape(text)}")
    return " | ".join(parts)


# --- a session's storyboard as text ----------------------------------------------------------


def _panel_line_number(text: str, k: int) -> int:
    """The 1-based line number of the ``k``-th (0-based) panel line of a storyboard text.

    Only needed for error messages: :func:`parse_text` returns the panels without their line
    numbers, and a panel line is one :func:`parse_line` does not skip.
    """
    numbers = (n for n, line in enumerate(text.splitlines(), start=1) if parse_line(line) is not None)
    return next(itertools.islice(numbers, k, None))


def _control_of_line(line: PanelLine) -> tuple[Control, PreparedPicture | None]:
    """A line's control settings (no picture yet) and its picture (read and checked, not copied)."""
    if not line.control_mode:
        return Control(), None
    control = Control(mode=line.control_mode, **line.control_values(Control()))
    picture = Path(line.control_image)
    if not picture.is_absolute():
        raise SessionError(
            f"the control picture {picture} is a relative path: give a full path "
            "(in an imported file, relative paths start from the file's folder)"
        )
    return control, prepare_picture(picture)


def import_panels_text(
    session: Session,
    text: str,
    replace_all: bool = False,
    *,
    base: str | Path | None = None,
    source: str = "storyboard text",
) -> list[Panel]:
    """Add a panel per line of a plain-text storyboard to ``session``.

    Blank and ``#`` lines are ignored. ``seed=N`` gives the panel seed N, locked (without it
    a seed is drawn, unlocked); ``size=WxH`` its own size. ``control=MODE:PATH`` copies the picture into ``controls/``
    (as ``Session.set_panel_control_picture`` does) with the line's ``scale``,
    ``start``/``end``, ``low``/``high`` and ``kind`` (the map kind); what a line leaves out
    keeps :class:`Control`'s defaults. A relative PATH is relative to ``base`` (the imported
    file's folder); text without a ``base`` needs absolute paths.

    All or nothing: a malformed line, a bad value or an unreadable control picture raises
    :class:`SessionError` naming ``source`` and the line number, and nothing changes. With
    ``replace_all`` the current panels are dropped first. Returns the new panels.
    """
    folder = None if base is None else Path(base).expanduser().absolute()
    try:
        lines = parse_text(text, source, folder)
    except PromptsFileError as exc:
        raise SessionError(str(exc)) from None

    def where(k: int) -> str:
        return f"{source}:{_panel_line_number(text, k)}"

    # everything is checked (and read) before anything is written
    checked = _check_lines(lines, where)
    return session.add_panels(_new_panels(session, checked, where), replace_all=replace_all)


def _check_lines(
    lines: list[PanelLine], where: Callable[[int], str]
) -> list[tuple[PanelLine, Control, PreparedPicture | None]]:
    """Each line with its control and its control picture read and checked (nothing written);
    the first bad line raises :class:`SessionError` at ``where(k)``."""
    checked: list[tuple[PanelLine, Control, PreparedPicture | None]] = []
    for k, line in enumerate(lines):
        try:
            if line.seed is not None:
                check_seed(line.seed)
            control, picture = _control_of_line(line)
        except PictureError as exc:
            raise SessionError(f"{where(k)}: control picture {exc.path}: {exc.reason}") from None
        except SessionError as exc:
            raise SessionError(f"{where(k)}: {exc}") from None
        checked.append((line, control, picture))
    return checked


def _new_panels(
    session: Session,
    checked: list[tuple[PanelLine, Control, PreparedPicture | None]],
    where: Callable[[int], str],
) -> list[Panel]:
    """The checked lines as new panels, their control pictures copied into the session; a line
    without a seed gets a drawn, unlocked one."""
    new = []
    for k, (line, control, picture) in enumerate(checked):
        if picture is not None:
            try:
                control = replace(control, image=session.store_control_copy(picture))
            except OSError as exc:
                raise SessionError(
                    f"{where(k)}: the control picture cannot be copied into the session "
                    f"({exc.strerror or exc})"
                ) from None
        new.append(Panel(
            id=new_panel_id(),
            prompt=line.prompt,
            seed=session.draw_seed() if line.seed is None else line.seed,
            seed_locked=line.seed is not None,
            control=control,
            size=line.size,
            notes=line.notes,
        ))
    return new


def import_panels_file(session: Session, path: str | Path, replace_all: bool = False) -> list[Panel]:
    """Read a plain-text storyboard file (UTF-8; see :func:`import_panels_text`) into
    ``session``; relative control paths start from the file's folder."""
    path = Path(path).expanduser()
    try:
        text = read_text(path, path.name)
    except PromptsFileError as exc:
        raise SessionError(str(exc)) from None
    return import_panels_text(
        session, text, replace_all=replace_all, base=path.absolute().parent, source=path.name
    )


def export_panels_text(session: Session) -> str:
    """``session``'s storyboard as plain text (:func:`format_line`, one panel a line) that
    :func:`import_panels_text` and ``stylealigned generate --prompts-file`` read back.

    Locked seeds are written (``seed=N``), unlocked ones are not (they are drawn anew); a
    control is written as ``control=MODE:<absolute path of the session's copy>`` with its
    settings that differ from :class:`Control`'s defaults (``kind`` always for a map), then its
    notes (``scene=``, ``dialogue=`` ...: those set). Line breaks in a prompt become spaces (in
    a note ``\\n``); panels without a prompt are left out (a line needs one).
    """
    d = Control()
    lines = []
    for panel in session.panels:
        prompt = " ".join(panel.prompt.split())
        if not prompt:
            continue
        control: dict[str, Any] = {}
        c = panel.control
        if c.image:
            control = {"control_mode": c.mode, "control_image": str(session.path(c.image))}
            for key, name in (("scale", "scale"), ("start", "guidance_start"),
                              ("end", "guidance_end"), ("low", "canny_low"),
                              ("high", "canny_high"), ("kind", "map_kind")):
                if getattr(c, name) != getattr(d, name) or (key == "kind" and c.mode == "map"):
                    control[key] = getattr(c, name)
        seed = panel.seed if panel.seed_locked else None
        lines.append(format_line(PanelLine(prompt=prompt, seed=seed, size=panel.size,
                                           notes=panel.notes, **control)))
    return "".join(f"{line}\n" for line in lines)


def export_panels_file(session: Session, path: str | Path) -> None:
    """Write :func:`export_panels_text` to ``path`` (atomically)."""
    from .session.atomic import write_text_atomic

    try:
        write_text_atomic(path, export_panels_text(session))
    except OSError as exc:
        raise SessionError(f"{Path(path).name}: cannot be written ({exc.strerror or exc})") from None
