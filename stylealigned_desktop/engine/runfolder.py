"""Run folders: the pictures of one set with their parameters, a contact sheet and run.json.

The layout and the run.json format are described in docs/architecture.md. Writing a re-roll
(a request with ``only``) into an existing folder replaces those panels and keeps the others.

Pictures and record are committed together, so a reader never sees them disagree: the new
pictures (and contact sheet) are written under temporary names, then a journal
(``.run.json.pending``: the new run.json and the renames) is written atomically, then the
pictures are renamed into place and run.json is replaced last. A kill before the journal leaves
the old run (and temporaries the next write removes); a kill after it is finished by the next
reader or writer (:func:`finish_commit`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps, PngImagePlugin
from PIL.PngImagePlugin import PngInfo

from .. import __version__, temporaries, userfiles
from .anchor_files import panel_masks, stage_anchors
from .events import RunResult
from .infotext import a1111_parameters, with_file_hashes
from .request import ReferencePicture, SetRequest, reference_dict

RUN_FORMAT = "stylealigned-run"
RUN_VERSION = 1
REFERENCE_FILE = "reference.png"
CONTACT_SHEET_FILE = "contact-sheet.png"
RUN_FILE = "run.json"
PENDING_FILE = ".run.json.pending"
MAX_RUN_JSON_BYTES = 16 * 1024 * 1024


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
    """The app's version and its main libraries'. The app's own is the package's __version__,
    not its installed metadata: a frozen build and a source tree run without it."""
    versions = {"stylealigned-desktop": __version__}
    for name in ("torch", "diffusers", "transformers", "accelerate", "pillow"):
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[name] = importlib_metadata.version(name)
    return versions


def subject_of(prompt: str, style_text: str) -> str:
    """The prompt without the appended style text: what the picture shows."""
    suffix = f", {style_text}" if style_text else ""
    return prompt[: -len(suffix)] if suffix and prompt.endswith(suffix) else prompt


PARAMETERS_CHUNK = "parameters"
"""A1111's text chunk: what Civitai, image browsers and other SD tools read."""
SETTINGS_CHUNK = "stylealigned"
"""Our own text chunk: the full parameters as JSON, what the app reads back."""


def save_png(image: Image.Image, path: Path, parameters: dict[str, Any]) -> None:
    """Save a PNG, atomically, with its parameters twice: A1111's text form in ``parameters``
    (read by image browsers and SD tools) and the full JSON in ``stylealigned`` (read by us)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / _stage_png(image, path, parameters)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(data: Any, **options: Any) -> str:
    """JSON text that UTF-8 can always store: a path the OS gave as non-UTF-8 bytes holds
    surrogate escapes, written as ``\\udcXX`` (which reads back as the same path)."""
    text = json.dumps(data, ensure_ascii=False, **options)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def read_parameters(path: str | Path) -> dict[str, Any]:
    """The full parameters a PNG written by :func:`save_png` carries (its ``stylealigned``
    JSON; pictures of earlier versions had the JSON in ``parameters``). Raises ValueError
    naming the file if it carries none."""
    chunks = png_text(path)
    text = chunks.get(SETTINGS_CHUNK)
    if text is None and chunks.get(PARAMETERS_CHUNK, "").lstrip().startswith("{"):
        text = chunks[PARAMETERS_CHUNK]
    if text is None:
        raise ValueError(f"{path}: the picture carries no StyleAligned settings")
    try:
        data = userfiles.parse_json(text)
    except userfiles.UnreadableFile as error:
        raise ValueError(f"{path}: its StyleAligned settings are damaged ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: its StyleAligned settings are damaged")
    return data


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
MAX_PNG_BYTES = 16 * 1024 * userfiles.MIB  # only its text is read; the pixels are skipped


def png_text(path: str | Path) -> dict[str, str]:
    """A PNG's text chunks (before or after its pixels) without decoding a pixel: Pillow's own
    chunk reader, called for the text chunks only, so its limits on compressed text stand (a
    zTXt bomb is refused) and a picture of any size is read in a moment. ValueError naming
    the file for anything that is not a readable PNG."""
    try:
        with userfiles.open_regular(path, MAX_PNG_BYTES) as handle:
            if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise ValueError("not a PNG file")
            png = PngImagePlugin.PngStream(handle)
            while True:
                cid, pos, length = png.read()
                if cid == b"IEND":
                    break
                if cid in TEXT_CHUNKS:
                    png.call(cid, pos, length)
                    handle.seek(4, os.SEEK_CUR)  # its CRC
                else:
                    handle.seek(pos + length + 4)  # the pixels and every other chunk: skipped
            return {key: str(value) for key, value in png.im_text.items()}
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as error:
        raise ValueError(f"{path}: not a picture that can be read ({error})") from None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Temporaries a killed write left in a run folder: this process's, or older than a minute."""
    return temporaries.remove_stale_temporaries(folder, ".*.tmp",
                                                own_prefix=temporaries.temporary_prefix("."))


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json_text(data, indent=2))
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())

    temporaries.atomic_write(path, write)


def _plain_name(value: Any, where: str) -> str:
    """A file directly in the run folder: a plain name, nothing that leads elsewhere."""
    if not isinstance(value, str) or not value or value in (".", "..") or any(c in value for c in "/\\:\0"):
        raise ValueError(f"{where} must be a file name inside the run folder, got {value!r}")
    return value


def check_run(data: Any, path: Path) -> dict[str, Any]:
    """``data`` (a parsed run.json) if it has the shape this module writes; every file it
    names is a plain name inside the run folder (``panel-NN.png`` for panel NN)."""
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: not a StyleAligned run (format {found!r})")
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path}: malformed (version {version!r})")
    if version > RUN_VERSION:
        raise ValueError(f"{path}: written by a newer version of StyleAligned Desktop")
    reference = data.get("reference", {})
    references = data.get("references", [reference])
    panels = data.get("panels", [])
    if not isinstance(references, list) or not all(isinstance(r, dict) for r in [reference, *references]) \
            or not isinstance(panels, list):
        raise ValueError(f"{path}: malformed (references must be objects, panels a list)")
    for k, entry in enumerate(references):
        if entry.get("file") is not None and \
                _plain_name(entry["file"], f"{path}: references[{k}].file") != reference_file(k):
            raise ValueError(f"{path}: references[{k}].file must be {reference_file(k)}")
    if reference.get("file") is not None and \
            _plain_name(reference["file"], f"{path}: reference.file") != REFERENCE_FILE:
        raise ValueError(f"{path}: reference.file must be {REFERENCE_FILE}")
    for k, panel in enumerate(panels):
        index = panel.get("index") if isinstance(panel, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= 100_000:
            raise ValueError(f"{path}: malformed (panels[{k}].index {index!r})")
        if _plain_name(panel.get("file"), f"{path}: panels[{k}].file") != panel_file(index):
            raise ValueError(f"{path}: panels[{k}].file must be {panel_file(index)}")
    return data


def _read_json_file(path: Path) -> Any:
    """A JSON file that is a regular file (never a link, a FIFO or a device), of sane size."""
    if path.is_symlink():
        raise ValueError(f"{path}: not a regular file (a link)")
    try:
        text = userfiles.read_text(path, MAX_RUN_JSON_BYTES, within=path.parent)
    except userfiles.UnreadableFile as error:
        if error.missing:
            raise FileNotFoundError(path) from None
        raise ValueError(f"{path}: {error}") from None
    try:
        return userfiles.parse_json(text)
    except userfiles.UnreadableFile as error:
        raise ValueError(f"{path}: broken JSON ({error})") from None


def read_run(folder: str | Path) -> dict[str, Any]:
    """run.json of a run folder, checked for its format and shape (a commit a kill
    interrupted is finished first)."""
    folder = Path(folder)
    finish_commit(folder)
    path = folder / RUN_FILE
    try:
        data = _read_json_file(path)
    except FileNotFoundError:
        raise ValueError(f"{folder}: not a run folder (no run.json)") from None
    return check_run(data, path)


def finish_commit(folder: Path) -> bool:
    """Finish a commit that a kill interrupted after its journal was written (renames the
    staged pictures into place, then writes run.json). Returns whether there was one."""
    journal = folder / PENDING_FILE
    if not journal.is_file() or journal.is_symlink():
        return False
    try:
        pending = _read_json_file(journal)
        run = check_run(pending["run"], journal)
        renames = [(_plain_name(tmp, f"{journal}: staged"), _plain_name(final, f"{journal}: final"))
                   for tmp, final in pending["renames"]]
    except (KeyError, TypeError, ValueError):
        journal.unlink()  # not ours, or broken: the run stays as its run.json says
        return False
    for tmp, final in renames:
        if (folder / tmp).is_file() and not (folder / tmp).is_symlink():
            os.replace(folder / tmp, folder / final)
    write_json(folder / RUN_FILE, run)
    journal.unlink()
    return True


def write_run_folder(folder: str | Path, request: SetRequest, result: RunResult, style_text: str = "") -> Path:
    """Write (or update, for a re-roll) a run folder and return it (see the module's note on
    how pictures and run.json are committed together)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    finish_commit(folder)
    remove_stale_temporaries(folder)
    old = _previous_run(folder)
    staged: dict[str, str] = {}  # final name -> temporary name, in the folder
    common = with_file_hashes(request.picture_parameters())
    references = reference_entries(request, style_text)
    _stage_references(folder, request, result, references, common, staged)
    panels = _stage_panels(folder, request, result, style_text, common, old, staged)
    run = _run_record(request, result, style_text, references, panels, common, old)
    if request.characters:  # spec section 13
        run["characters"] = request.to_dict()["characters"]
        run["anchors"] = stage_anchors(folder, request, result, common, staged, _stage_png)
    sheet = contact_sheet_of(folder, run, staged)
    staged[CONTACT_SHEET_FILE] = Path(temporaries.new_temporary(folder / CONTACT_SHEET_FILE)).name
    sheet.save(folder / staged[CONTACT_SHEET_FILE], format="PNG")
    write_json(folder / PENDING_FILE, {"run": run, "renames": [[tmp, final] for final, tmp in staged.items()]})
    finish_commit(folder)
    return folder


def _previous_run(folder: Path) -> dict[str, Any] | None:
    """The run record already in ``folder`` (a re-roll updates it), or None when there is none
    or it is not one of ours (then this run's record replaces it)."""
    if not (folder / RUN_FILE).is_file():
        return None
    try:
        return read_run(folder)
    except ValueError:
        return None


def _stage_references(folder: Path, request: SetRequest, result: RunResult,
                      references: list[dict[str, Any]], common: dict[str, Any],
                      staged: dict[str, str]) -> None:
    """Stage the reference pictures the run made, each with its parameters, into ``staged``."""
    for position, image in sorted(result.references.items()):
        entry = references[position]
        staged[entry["file"]] = _stage_png(
            image, folder / entry["file"],
            dict(common, role="reference", reference_index=position + 1, prompt=entry["prompt"],
                 seed=entry["seed"], weight=entry["weight"],
                 style_source=reference_dict(request.references[position])))


def _stage_panels(folder: Path, request: SetRequest, result: RunResult, style_text: str,
                  common: dict[str, Any], old: dict[str, Any] | None,
                  staged: dict[str, str]) -> dict[int, dict[str, Any]]:
    """Stage the panel pictures the run made into ``staged``; every panel entry of the run
    record by 1-based number: the new ones, and a re-roll's others as the old record has them."""
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
            **result.metadata.get("windows", {}).get(str(number), {}),  # a panorama's windows
        }
        if result.masks.get(index):
            entry["masks"] = panel_masks(result, index)
        panels[number] = entry
        staged[entry["file"]] = _stage_png(
            image, folder / entry["file"],
            dict(common, role="panel", index=number, prompt=panel.prompt, seed=panel.seed, control=control,
                 width=width, height=height, **result.metadata.get("windows", {}).get(str(number), {})))
    return panels


def _run_record(request: SetRequest, result: RunResult, style_text: str,
                references: list[dict[str, Any]], panels: dict[int, dict[str, Any]],
                common: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """The run.json record: the request, every reference and panel, how the run went."""
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
        "loras": common["loras"],
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
    if meta.get("server"):  # made on a server: where, and which panels each shard made
        run["server"] = {"url": meta["server"], "shards": meta.get("shards") or []}
    return run


def _stage_png(image: Image.Image, path: Path, parameters: dict[str, Any]) -> str:
    """Save a picture as :func:`save_png` does, under a temporary name beside ``path``; the name."""
    info = PngInfo()
    # A1111's text (PIL writes iTXt if it is not Latin-1); a lone surrogate cannot be stored there
    info.add_text(PARAMETERS_CHUNK, _LONE_SURROGATE.sub("\ufffd", a1111_parameters(parameters)))
    info.add_itxt(SETTINGS_CHUNK, json_text(parameters, sort_keys=True))
    tmp = temporaries.new_temporary(path)
    try:
        image.save(tmp, format="PNG", pnginfo=info)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp).name


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
        text = label[:200]  # a tile shows a few dozen characters; longer labels only cost time
        while text and draw.textlength(text, font=font) > tile_size:
            text = text[:-2] + "…"
        draw.text((x, y + tile_size + 2), text, fill="black", font=font)
    return sheet


def contact_sheet_of(folder: Path, run: dict[str, Any], staged: dict[str, str] | None = None) -> Image.Image:
    """The contact sheet of a run record: its pictures, read from ``staged`` temporaries
    (final name -> temporary name) where given, else from the folder."""
    staged = staged or {}
    tiles = []
    references = run.get("references") or [run["reference"]]  # run folders before several references
    files = [("reference" if len(references) == 1 else f"reference {k + 1}", entry)
             for k, entry in enumerate(references)]
    files += [(f"{p['index']}", p) for p in run["panels"]]
    for label, entry in files:
        if not entry.get("file"):
            continue  # a weight-0 reference: not run
        path = folder / staged.get(entry["file"], entry["file"])
        if path.is_file() and not path.is_symlink():
            with Image.open(path) as image:
                tiles.append((f"{label}: {entry.get('subject') or ''}".strip(": "), image.copy()))
    return contact_sheet(tiles)
