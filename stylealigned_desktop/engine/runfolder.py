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
from .request import ReferencePicture, SetRequest, reference_dict

RUN_FORMAT = "stylealigned-run"
RUN_VERSION = 1
REFERENCE_FILE = "reference.png"
CONTACT_SHEET_FILE = "contact-sheet.png"


def panel_file(number: int) -> str:
    """File name of panel ``number`` (1-based)."""
    return f"panel-{number:02d}.png"


def reference_file(position: int) -> str:
    """File name of the reference at ``position`` (0-based in ``SetRequest.references``):
    ``reference.png`` for the first (as in sets of one reference), ``reference-02.png`` ..."""
    return REFERENCE_FILE if position == 0 else f"reference-{position + 1:02d}.png"


def reference_entries(request: SetRequest, style_text: str = "") -> list[dict[str, Any]]:
    """run.json's entry of every reference: its file (None for a weight-0 reference, which is
    not run), prompt or caption, subject, seed, kind and normalised weight."""
    entries = []
    for position, (reference, weight) in enumerate(zip(request.references, request.weights)):
        picture = isinstance(reference, ReferencePicture)
        prompt = reference.caption if picture else reference.prompt
        entry = {
            "file": reference_file(position) if weight > 0 else None,
            "kind": "picture" if picture else "generated",
            "prompt": prompt,
            "subject": subject_of(prompt or "", style_text),
            "seed": None if picture else reference.seed,
            "weight": weight,
        }
        if picture:
            entry["picture"] = reference.path
        entries.append(entry)
    return entries


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
    references = reference_entries(request, style_text)
    for position, image in sorted(result.references.items()):
        entry = references[position]
        save_png(image, folder / entry["file"],
                 dict(common, role="reference", reference_index=position + 1, prompt=entry["prompt"],
                      seed=entry["seed"], weight=entry["weight"],
                      style_source=reference_dict(request.references[position])))

    panels = {entry["index"]: entry for entry in (old or {}).get("panels", [])} if old else {}
    for index, image in sorted(result.panels.items()):
        panel = request.panels[index]
        number = index + 1
        control = None
        if panel.control is not None:
            control = {k: v for k, v in request.to_dict()["panels"][index]["control"].items()}
        width, height = request.panel_size(index)
        entry = {
            "index": number,
            "file": panel_file(number),
            "prompt": panel.prompt,
            "subject": subject_of(panel.prompt, style_text),
            "seed": panel.seed,
            "control": control,
            "width": width,
            "height": height,
        }
        panels[number] = entry
        save_png(image, folder / entry["file"],
                 dict(common, role="panel", index=number, prompt=panel.prompt, seed=panel.seed, control=control,
                      width=width, height=height))

    meta = result.metadata
    run = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "created": (old or {}).get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": request.model,
        "style": request.to_dict()["style"],
        "style_text": style_text,
        "reference": references[0],
        "references": references,
        "panels": [panels[k] for k in sorted(panels)],
        "sampling": request.to_dict()["sampling"],
        "settings": request.settings.to_dict(),
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
    references = run.get("references") or [run["reference"]]  # run folders before several references
    files = [("reference" if len(references) == 1 else f"reference {k + 1}", entry)
             for k, entry in enumerate(references)]
    files += [(f"{p['index']}", p) for p in run["panels"]]
    for label, entry in files:
        path = folder / entry["file"] if entry.get("file") else None
        if path is not None and path.is_file():
            with Image.open(path) as image:
                tiles.append((f"{label}: {entry.get('subject') or ''}".strip(": "), image.copy()))
    sheet = contact_sheet(tiles)
    target = folder / CONTACT_SHEET_FILE
    _atomic_write(target, lambda tmp: sheet.save(tmp, format="PNG"))
    return target
