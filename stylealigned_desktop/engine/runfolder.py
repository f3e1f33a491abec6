"""Run folders: the pictures of one set with their parameters, a contact sheet and run.json.

The layout and the run.json format are described in docs/architecture.md. Writing a re-roll
(a request with ``only``) into an existing folder replaces those panels and keeps the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

from ..paths import with_default_mode
from .events import RunResult
from .request import SetRequest

RUN_FORMAT = "stylealigned-run"
RUN_VERSION = 1
REFERENCE_FILE = "reference.png"
CONTACT_SHEET_FILE = "contact-sheet.png"


def panel_file(number: int) -> str:
    """File name of panel ``number`` (1-based)."""
    return f"panel-{number:02d}.png"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("stylealigned-desktop", "torch", "diffusers", "transformers", "accelerate", "pillow"):
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[name] = importlib_metadata.version(name)
    return versions


def subject_of(prompt: str, style_text: str) -> str:
    """The prompt without the appended style text: what the picture shows."""
    suffix = f", {style_text}" if style_text else ""
    return prompt[: -len(suffix)] if suffix and prompt.endswith(suffix) else prompt


def save_png(image: Image.Image, path: Path, parameters: dict[str, Any]) -> None:
    """Save a PNG carrying its parameters as JSON in a ``parameters`` text chunk, atomically."""
    info = PngInfo()
    info.add_text("parameters", json.dumps(parameters, ensure_ascii=False, sort_keys=True))
    _atomic_write(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))


def read_parameters(path: str | Path) -> dict[str, Any]:
    """The parameters a PNG written by :func:`save_png` carries."""
    with Image.open(path) as image:
        return json.loads(image.text["parameters"])


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(with_default_mode(fd))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())

    _atomic_write(path, write)


def read_run(folder: str | Path) -> dict[str, Any]:
    """run.json of a run folder, checked for its format."""
    path = Path(folder) / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{folder}: not a run folder (no run.json)") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: broken JSON ({error})") from None
    if data.get("format") != RUN_FORMAT:
        raise ValueError(f"{path}: not a StyleAligned run (format {data.get('format')!r})")
    if data.get("version", 0) > RUN_VERSION:
        raise ValueError(f"{path}: written by a newer version of StyleAligned Desktop")
    return data


def write_run_folder(folder: str | Path, request: SetRequest, result: RunResult, style_text: str = "") -> Path:
    """Write (or update, for a re-roll) a run folder and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    old = None
    if (folder / "run.json").is_file():
        try:
            old = read_run(folder)
        except ValueError:
            old = None
    common = request.picture_parameters()
    style = request.style
    style_dict = request.to_dict()["style"]
    is_picture = style_dict["kind"] == "picture"
    reference_prompt = getattr(style, "prompt", None) if not is_picture else getattr(style, "caption", "")
    reference_entry = {
        "file": REFERENCE_FILE,
        "prompt": reference_prompt,
        "subject": subject_of(reference_prompt or "", style_text),
        "seed": getattr(style, "seed", None),
    }
    if result.reference is not None:
        save_png(result.reference, folder / REFERENCE_FILE,
                 dict(common, role="reference", prompt=reference_prompt, seed=reference_entry["seed"],
                      style_source=style_dict))

    panels = {entry["index"]: entry for entry in (old or {}).get("panels", [])} if old else {}
    for index, image in sorted(result.panels.items()):
        panel = request.panels[index]
        number = index + 1
        control = None
        if panel.control is not None:
            control = {k: v for k, v in request.to_dict()["panels"][index]["control"].items()}
        entry = {
            "index": number,
            "file": panel_file(number),
            "prompt": panel.prompt,
            "subject": subject_of(panel.prompt, style_text),
            "seed": panel.seed,
            "control": control,
        }
        panels[number] = entry
        save_png(image, folder / entry["file"],
                 dict(common, role="panel", index=number, prompt=panel.prompt, seed=panel.seed, control=control))

    meta = result.metadata
    run = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "created": (old or {}).get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": request.model,
        "style": style_dict,
        "style_text": style_text,
        "reference": reference_entry,
        "panels": [panels[k] for k in sorted(panels)],
        "sampling": request.to_dict()["sampling"],
        "settings": request.settings.to_dict(),
        "loras": request.picture_parameters()["loras"],
        "vae": request.vae,
        "memory_mode": meta.get("memory_mode"),
        "micro_batch": meta.get("micro_batch"),
        "device": meta.get("device"),
        "dtype": meta.get("dtype"),
        "versions": package_versions(),
        "timings": meta.get("timings", {}),
    }
    if request.only is not None:
        run["rerolled"] = [i + 1 for i in request.only]
    write_json(folder / "run.json", run)
    write_contact_sheet(folder, run)
    return folder


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def contact_sheet(tiles: list[tuple[str, Image.Image]], tile_size: int = 256, columns: int | None = None) -> Image.Image:
    """A labelled grid of pictures (label under each tile)."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one picture")
    columns = columns or min(4, len(tiles))
    rows = (len(tiles) + columns - 1) // columns
    label_h, pad = max(18, tile_size // 10), max(6, tile_size // 32)
    sheet = Image.new("RGB", (columns * (tile_size + pad) + pad, rows * (tile_size + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(max(10, label_h - 6))
    for k, (label, image) in enumerate(tiles):
        x = pad + (k % columns) * (tile_size + pad)
        y = pad + (k // columns) * (tile_size + label_h + pad)
        thumb = ImageOps.contain(image.convert("RGB"), (tile_size, tile_size), Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x + (tile_size - thumb.width) // 2, y + (tile_size - thumb.height) // 2))
        text = label
        while text and draw.textlength(text, font=font) > tile_size:
            text = text[:-2] + "…"
        draw.text((x, y + tile_size + 2), text, fill="black", font=font)
    return sheet


def write_contact_sheet(folder: Path, run: dict[str, Any]) -> Path:
    tiles = []
    files = [("reference", run["reference"])] + [(f"{p['index']}", p) for p in run["panels"]]
    for label, entry in files:
        path = folder / entry["file"]
        if path.is_file():
            with Image.open(path) as image:
                tiles.append((f"{label}: {entry.get('subject') or ''}".strip(": "), image.copy()))
    sheet = contact_sheet(tiles)
    target = folder / CONTACT_SHEET_FILE
    _atomic_write(target, lambda tmp: sheet.save(tmp, format="PNG"))
    return target
