"""The plain-text storyboard format: one panel per line.

    # comments and blank lines are ignored
    a toy train at dawn
    a toy boat | seed=42
    a train at dawn | control=depth:train.png | scale=0.7
    a lighthouse | control=canny:sketch.png | low=80 | high=160 | start=0 | end=0.8

Fields after the prompt are separated by ``|``: ``seed=N``; ``control=MODE:PATH`` with MODE
canny, depth or map (a relative PATH is relative to the file); ``scale=`` (ControlNet
conditioning scale, default 0.8); ``start=`` / ``end=`` (the part of the denoising, 0..1, during
which the control acts); ``low=`` / ``high=`` (canny thresholds); ``kind=depth|canny`` (for
``control=map:...``: which ControlNet the ready-made map feeds, default depth). A literal ``|``
in a prompt is written ``\\|``, and a prompt that begins with ``#`` is written ``\\#``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CONTROL_MODES = ("canny", "depth", "map")
_SPLIT = re.compile(r"(?<!\\)\|")


class PromptsFileError(ValueError):
    """A malformed line, with its file and line number."""


@dataclass(frozen=True)
class PanelLine:
    prompt: str
    seed: int | None = None
    control_mode: str | None = None
    control_image: str | None = None
    scale: float | None = None
    start: float | None = None
    end: float | None = None
    low: int | None = None
    high: int | None = None
    kind: str | None = None

    def control_values(self, defaults) -> dict:
        """The line's control settings under their ``PanelControl`` names, each falling back to
        the same-named attribute of ``defaults`` (a PanelControl, a session Control...)."""
        given = {"scale": self.scale, "guidance_start": self.start, "guidance_end": self.end,
                 "canny_low": self.low, "canny_high": self.high, "map_kind": self.kind}
        return {name: getattr(defaults, name) if value is None else value for name, value in given.items()}


def _number(value: str, kind, where: str, key: str):
    try:
        return kind(value)
    except ValueError:
        raise PromptsFileError(f"{where}: {key}= needs a {'whole ' if kind is int else ''}number, got {value!r}") from None


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
    values: dict = {}
    for field in fields:
        key, sep, value = field.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise PromptsFileError(f"{where}: expected key=value after '|', got {field!r}")
        if key in values or (key == "control" and "control_mode" in values):
            raise PromptsFileError(f"{where}: {key}= given twice")
        if key == "seed":
            values["seed"] = _number(value, int, where, key)
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
        elif key in ("scale", "start", "end"):
            values[key] = _number(value, float, where, key)
        elif key in ("low", "high"):
            values[key] = _number(value, int, where, key)
        elif key == "kind":
            if value.lower() not in ("depth", "canny"):
                raise PromptsFileError(f"{where}: kind= must be depth or canny, got {value!r}")
            values[key] = value.lower()
        else:
            raise PromptsFileError(f"{where}: unknown field {key!r} (known: seed, control, scale, start, end, low, high, kind)")
    control_only = [k for k in ("scale", "start", "end", "low", "high", "kind") if k in values]
    if control_only and "control_mode" not in values:
        raise PromptsFileError(f"{where}: {', '.join(control_only)} given without control=MODE:PATH")
    return PanelLine(prompt=prompt, **values)


def parse_text(text: str, source: str = "<text>", base: Path | None = None) -> list[PanelLine]:
    panels = []
    for number, line in enumerate(text.splitlines(), start=1):
        panel = parse_line(line, f"{source}:{number}", base)
        if panel is not None:
            panels.append(panel)
    return panels


def read_prompts_file(path: str | Path) -> list[PanelLine]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not part of the prompt
    except FileNotFoundError:
        raise PromptsFileError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise PromptsFileError(f"{path}: not a UTF-8 text file") from None
    except OSError as error:
        raise PromptsFileError(f"{path}: cannot read ({error.strerror or error})") from None
    return parse_text(text, str(path), path.parent)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def format_line(panel: PanelLine) -> str:
    """The inverse of :func:`parse_line` (control paths written as given)."""
    prompt = _escape(panel.prompt)
    parts = ["\\" + prompt if prompt.startswith("#") else prompt]
    if panel.seed is not None:
        parts.append(f"seed={panel.seed}")
    if panel.control_mode:
        parts.append(f"control={panel.control_mode}:{_escape(panel.control_image)}")
    for key in ("scale", "start", "end", "low", "high", "kind"):
        value = getattr(panel, key)
        if value is not None:
            parts.append(f"{key}={value}")
    return " | ".join(parts)
