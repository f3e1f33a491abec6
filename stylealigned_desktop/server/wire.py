"""The JSON forms of a ``SetRequest`` and of engine events, as they travel between machines.

A request names its pictures (reference picture, control pictures) and its LoRA files by the
SHA-256 of their file bytes, never by a path: the client uploads them first
(``PUT /v1/pictures/{sha256}``, ``PUT /v1/loras/{sha256}``) and the server resolves each name to
its own copy. A LoRA also carries its file name, the name the artist knows it by (records and
messages use it). Events are one JSON object each (one line of the
NDJSON stream); finished pictures travel as base64 PNG, which is lossless, so a decoded picture
has the engine's pixels exactly. Live previews travel as base64 JPEG (``PREVIEW_QUALITY``) at
the size the server's preview decoder made them (the picture's full size with the tiny
autoencoder): a 1024² preview is about 0.2 MB and 10 ms to encode where a PNG is 1.5 MB and
most of a second, every row, every step.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..engine import events as ev
from ..engine.anchor_files import mask_rows
from ..engine.request import (
    Character,
    GeneratedReference,
    Lora,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
    character_from_dict,
)
from ..engine.settings import StyleAlignedSettings

WIRE_VERSION = 1
"""Version of the request JSON; a server refuses versions it does not know."""

SHA256 = re.compile(r"^[0-9a-f]{64}$")

HEARTBEAT = "Heartbeat"
"""A line the server sends when it has had nothing to say for ``HEARTBEAT_S`` seconds (a model
loading, a slow step), so that a client can tell a quiet server from a lost connection."""
HEARTBEAT_S = 15.0

# Fields a request may carry besides the pictures. cache_dir is not among them: the server keeps
# its own caches, and a request never names a folder on the server.
_REQUEST_FIELDS = ("version", "model", "style", "panels", "sampling", "settings", "micro_batch",
                   "device", "dtype", "only", "controlnet_canny", "controlnet_depth", "depth_model",
                   "memory", "vae", "loras", "previews", "characters")


class WireError(ValueError):
    """A request or event that is not in the wire format; the message is one line for the user."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def picture_paths(request: SetRequest) -> list[str]:
    """The picture files a request reads (reference pictures, control pictures), each once."""
    paths = [r.path for r in request.references if isinstance(r, ReferencePicture)]
    paths += [panel.control.image for panel in request.panels if panel.control is not None]
    paths += [path for c in request.characters for path in c.anchor_pictures if path is not None]
    return list(dict.fromkeys(paths))


# -- requests --------------------------------------------------------------------------------------
def request_to_wire(request: SetRequest, upload_ids: dict[str, str]) -> dict[str, Any]:
    """The JSON form of ``request``; ``upload_ids`` maps each picture's and LoRA's path to the
    SHA-256 of its bytes (its upload's name)."""
    data = request.to_dict()
    data.pop("cache_dir")
    data["loras"] = [{"lora": upload_ids[lora.path], "file": lora.name, "weight": lora.weight}
                     for lora in request.loras]
    data["panels"] = list(data["panels"])
    for reference in data["style"] if isinstance(data["style"], list) else [data["style"]]:
        if reference["kind"] == "picture":
            reference["picture"] = upload_ids[reference.pop("path")]
    for panel in data["panels"]:
        if panel["control"] is not None:
            panel["control"]["picture"] = upload_ids[panel["control"].pop("image")]
    data["only"] = None if request.only is None else list(request.only)
    for character in data["characters"]:  # anchor pictures by upload, as reference pictures
        character["anchor_pictures"] = [None if p is None else upload_ids[p] for p in character["anchor_pictures"]]
    return {"version": WIRE_VERSION, **data}


LoraPath = Callable[[str, str], str]
"""``lora_path(sha256, file_name)``: a local ``.safetensors`` file with that upload's bytes."""


def request_from_wire(data: Any, picture_path: Callable[[str], str], lora_path: LoraPath | None = None) -> SetRequest:
    """The ``SetRequest`` a JSON request describes; ``picture_path(sha256)`` gives a local file
    for a picture name and ``lora_path`` one for a LoRA (each raises WireError for an unknown
    one; without ``lora_path`` a request with LoRAs is refused). Raises WireError."""
    if not isinstance(data, dict):
        raise WireError("the request must be a JSON object")
    if data.get("version") != WIRE_VERSION:
        raise WireError(f"unsupported request version {data.get('version')!r} (this server speaks {WIRE_VERSION})")
    unknown = sorted(set(data) - set(_REQUEST_FIELDS))
    if unknown:
        hint = " (requests cannot name folders on the server)" if "cache_dir" in unknown else ""
        raise WireError(f"unknown request field(s): {', '.join(unknown)}{hint}")
    try:
        return SetRequest(
            model=_text(data, "model"),
            style=_style(data.get("style"), picture_path),
            panels=tuple(_panel(p, picture_path) for p in _list(data, "panels")),
            sampling=Sampling(**_object(data, "sampling")),
            settings=StyleAlignedSettings.from_dict(_object(data, "settings")),
            micro_batch=data.get("micro_batch"),
            device=data.get("device", "auto"),
            dtype=data.get("dtype", "auto"),
            only=None if data.get("only") is None else tuple(_list(data, "only")),
            controlnet_canny=data.get("controlnet_canny"),
            controlnet_depth=data.get("controlnet_depth"),
            depth_model=data.get("depth_model"),
            memory=data.get("memory", "auto"),
            previews=data.get("previews", "auto"),
            vae=data.get("vae"),
            loras=tuple(_lora(item, lora_path) for item in data.get("loras") or ()),
            characters=tuple(_character(item, picture_path) for item in data.get("characters") or ()),
        )
    except WireError:
        raise
    except (TypeError, ValueError, KeyError) as error:
        raise WireError(f"bad request: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _object(data: dict, key: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise WireError(f"bad request: {key!r} must be a JSON object")
    return value


def _list(data: dict, key: str) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise WireError(f"bad request: {key!r} must be a JSON list")
    return value


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise WireError(f"bad request: {key!r} must be a string")
    return value


def _picture(data: dict, picture_path: Callable[[str], str]) -> str:
    name = data.pop("picture", None)
    if not isinstance(name, str) or not SHA256.match(name):
        raise WireError("bad request: pictures are named by the SHA-256 of an upload (64 hex digits)")
    return picture_path(name)


def lora_file_name(name: Any) -> str:
    """A LoRA's file name as a request gives it: a plain ``.safetensors`` name, no folder."""
    if (not isinstance(name, str) or not name.lower().endswith(".safetensors") or name.startswith(".")
            or len(name) > 255 or any(c in name for c in "/\\:") or not name.isprintable()):
        raise WireError("bad request: a LoRA's 'file' must be a plain .safetensors file name (no folder)")
    return name


def _lora(data: Any, lora_path: LoraPath | None) -> Lora:
    if lora_path is None:
        raise WireError("this server takes no LoRAs")
    if not isinstance(data, dict) or set(data) != {"lora", "file", "weight"}:
        raise WireError("bad request: each LoRA is a JSON object with 'lora', 'file' and 'weight'")
    sha = data["lora"]
    if not isinstance(sha, str) or not SHA256.match(sha):
        raise WireError("bad request: LoRAs are named by the SHA-256 of an upload (64 hex digits)")
    return Lora(lora_path(sha, lora_file_name(data["file"])), data["weight"])


def _style(data: Any, picture_path: Callable[[str], str]):
    """One reference (a JSON object) or several (a list of them, spec section 11)."""
    if isinstance(data, list):
        return tuple(_reference(item, picture_path) for item in data)
    return _reference(data, picture_path)


def _reference(data: Any, picture_path: Callable[[str], str]):
    if not isinstance(data, dict):
        raise WireError("bad request: 'style' must be a JSON object or a list of them")
    data = dict(data)
    kind = data.pop("kind", None)
    if kind == "generated":
        return GeneratedReference(**data)
    if kind == "picture":
        return ReferencePicture(path=_picture(data, picture_path), **data)
    raise WireError(f"bad request: style kind must be 'generated' or 'picture', got {kind!r}")


def _character(data: Any, picture_path: Callable[[str], str]) -> Character:
    if not isinstance(data, dict) or not isinstance(data.get("anchor_pictures", []), list):
        raise WireError("bad request: each character is a JSON object, its anchor_pictures a list")
    data = dict(data)
    data["anchor_pictures"] = [None if name is None else _picture({"picture": name}, picture_path)
                               for name in data.get("anchor_pictures", [])]
    return character_from_dict(data)


def _panel(data: Any, picture_path: Callable[[str], str]) -> Panel:
    if not isinstance(data, dict):
        raise WireError("bad request: each panel must be a JSON object")
    data = dict(data)
    control = data.pop("control", None)
    if control is not None:
        if not isinstance(control, dict):
            raise WireError("bad request: a panel's control must be a JSON object")
        control = dict(control)
        control = PanelControl(image=_picture(control, picture_path), **control)
    return Panel(control=control, **data)


# -- events ------------------------------------------------------------------------------------------
PREVIEW_QUALITY = 85
"""JPEG quality of the live previews on the wire (they are replaced by the lossless pictures)."""


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def jpeg_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_from_base64(text: str) -> Image.Image:
    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        image.load()
        return image.copy()


def event_to_wire(event: ev.Event) -> dict[str, Any]:
    """One event as a JSON object. ``Finished`` carries the run's metadata only: its pictures
    travelled in the ``PanelDone`` events before it, and the latents stay on the server."""
    name = type(event).__name__
    if isinstance(event, ev.Preview):
        return {"event": name, "index": event.index, "step": event.step, "jpeg": jpeg_base64(event.image),
                "reference": event.reference}
    if isinstance(event, ev.PanelDone):
        return {"event": name, "index": event.index, "png": png_base64(event.image),
                "metadata": event.metadata, "reference": event.reference,
                "masks": {k: mask_rows(mask) for k, mask in event.masks.items()}}
    if isinstance(event, ev.AnchorPreview):
        return {"event": name, "character": event.character, "number": event.number, "step": event.step,
                "png": png_base64(event.image)}
    if isinstance(event, ev.AnchorDone):
        return {"event": name, "character": event.character, "number": event.number, "png": png_base64(event.image),
                "metadata": event.metadata, "mask": None if event.mask is None else mask_rows(event.mask)}
    if isinstance(event, ev.Finished):
        return {"event": name, "metadata": event.run.metadata}
    return {"event": name, **{f.name: getattr(event, f.name) for f in fields(event)}}


_SIMPLE_EVENTS = {cls.__name__: cls for cls in (ev.Loading, ev.Inverting, ev.Step, ev.Decoding, ev.Notice,
                                                 ev.Cancelled, ev.Failed)}


def done_key(event: ev.PanelDone | ev.AnchorDone) -> int | tuple:
    """Where ``event_from_wire``'s ``done`` keeps a finished picture: a panel by its index, a
    reference as ``("reference", position)``, an anchor by ``events.anchor_key``."""
    if isinstance(event, ev.AnchorDone):
        return ev.anchor_key(event.character, event.number)
    return event.index if event.index is not None else ("reference", event.reference)


def _mask(rows: Any) -> np.ndarray:
    """A mask from its rows of 0 and 1 (``anchor_files.mask_rows``)."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, str) and set(r) <= {"0", "1"} for r in rows) \
            or len({len(r) for r in rows}) != 1:
        raise ValueError("a mask is equal rows of 0 and 1")
    return np.array([[c == "1" for c in row] for row in rows], dtype=np.uint8)


def event_from_wire(data: dict[str, Any], done: dict[Any, Image.Image] | None = None) -> ev.Event:
    """The event a JSON object describes. ``Finished`` is rebuilt from ``done`` (the pictures of
    the ``PanelDone`` events received before it, by :func:`done_key`)."""
    data = dict(data)
    name = data.pop("event", None)
    try:
        if name == "Preview":
            return ev.Preview(data["index"], data["step"], image_from_base64(data["jpeg"]),
                              int(data.get("reference") or 0))
        if name == "PanelDone":
            return ev.PanelDone(data["index"], image_from_base64(data["png"]), data.get("metadata") or {},
                                int(data.get("reference") or 0),
                                {k: _mask(rows) for k, rows in (data.get("masks") or {}).items()})
        if name == "AnchorPreview":
            return ev.AnchorPreview(data["character"], int(data["number"]), data["step"],
                                    image_from_base64(data["png"]))
        if name == "AnchorDone":
            return ev.AnchorDone(data["character"], int(data["number"]), image_from_base64(data["png"]),
                                 data.get("metadata") or {}, None if data.get("mask") is None else _mask(data["mask"]))
        if name == "Finished":
            done = done or {}
            panels = {k: image for k, image in done.items() if isinstance(k, int)}
            references = {k[1]: image for k, image in done.items() if isinstance(k, tuple) and k[0] == "reference"}
            anchors = {k: image for k, image in done.items() if isinstance(k, tuple) and k[0] == "anchor"}
            return ev.Finished(ev.RunResult(reference=references.get(0), panels=panels,
                                            metadata=data.get("metadata") or {}, references=references,
                                            anchors=anchors))
        if name in _SIMPLE_EVENTS:
            return _SIMPLE_EVENTS[name](**data)
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise WireError(f"a damaged {name} event from the server ({_one_line(error)})") from None
    raise WireError(f"an unknown event from the server: {name!r}")


def ndjson_line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def iter_events(lines: Iterable[str]) -> Iterable[ev.Event]:
    """Engine events from NDJSON lines, ``Finished`` rebuilt from the ``PanelDone`` before it."""
    done: dict[Any, Image.Image] = {}
    for line in lines:
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            raise WireError("the server sent a line that is not JSON") from None
        if isinstance(data, dict) and data.get("event") == HEARTBEAT:
            continue
        event = event_from_wire(data, done)
        if isinstance(event, (ev.PanelDone, ev.AnchorDone)):
            done[done_key(event)] = event.image
        yield event
