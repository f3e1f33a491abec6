"""The immutable description of one generation: what the CLI, the GUI and scripts hand the engine.

Every number and text of a request is checked when the dataclass is made, with the rules of
``limits.py`` that the CLI, the session (``session/values.py``, ``session/generation.py``) and the
engine share: a value one of them accepts, all of them accept. A bad value raises ``ValueError``
with a message for the user.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .characters import check_name, check_words, named_characters
from .limits import (
    MAX_GUIDANCE,
    MAX_MICRO_BATCH,
    MAX_PANELS,
    MAX_PANORAMA_ABOVE,
    MAX_STEPS,
    MAX_WINDOW_STRIDE,
    check_control,
    check_number,
    check_panel_size,
    check_prompt,
    check_seed,
    check_size,
    check_steps,
    check_weight,
    check_whole,
)
from .settings import StyleAlignedSettings

SCHEDULERS = ("ddim", "euler", "dpmpp-2m")
CONTROL_MODES = ("canny", "depth", "map")
CONTROLNET_KINDS = ("canny", "depth")
DEVICES = ("auto", "cuda", "mps", "cpu")
"""The device names; ``cuda:N`` (a GPU by its index) is accepted too (:func:`check_device`)."""
DTYPES = ("auto", "float16", "bfloat16", "float32")
PREVIEW_KINDS = ("auto", "factors", "tiny", "vae", "off")
"""Live preview decoders (engine.preview_decoders): ``auto`` is the tiny autoencoder when it
is on disk and the latent factors otherwise; ``off`` sends no previews."""
MEMORY_MODES = ("auto", "fast", "balanced", "low")
"""fast: all models on the GPU; balanced: model CPU offload; low: sequential offload + VAE tiling;
auto: the fastest that fits (engine/memory.py)."""
DEFAULT_INVERSION_OFFSET_50 = 5  # the authors' offset for 50 steps


def check_device(device: str) -> str:
    """``device`` if it is one of :data:`DEVICES` or ``cuda:N``; ValueError otherwise."""
    if device in DEVICES or (isinstance(device, str) and re.fullmatch(r"cuda:\d+", device)):
        return device
    raise ValueError(f"device must be one of {', '.join(DEVICES)} or cuda:N (a GPU's index), got {device!r}")


@dataclass(frozen=True)
class GeneratedReference:
    """A reference generated from a style prompt (prompts-only sets).

    ``weight``: its share of the style when the set has several references (spec section 11).
    """

    prompt: str
    seed: int = 0
    weight: float = 1.0

    def __post_init__(self) -> None:
        check_prompt(self.prompt, "reference prompt")
        check_seed(self.seed, "reference seed")
        object.__setattr__(self, "weight", check_weight(self.weight))


@dataclass(frozen=True)
class ReferencePicture:
    """The reference is a picture, DDIM-inverted (spec section 7).

    ``inversion_offset`` None means the authors' 5 of 50 steps scaled to the step count:
    ``round(5 * steps / 50)``, at least 0 and at most steps - 1.
    """

    path: str
    caption: str = ""
    inversion_guidance: float = 2.0
    inversion_offset: int | None = None
    weight: float = 1.0
    """Its share of the style when the set has several references (spec section 11)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", check_weight(self.weight))
        if not isinstance(self.path, str):  # as the OS gives it (surrogate escapes allowed)
            raise ValueError(f"reference picture path must be text, got {self.path!r}")
        check_prompt(self.caption, "reference caption")
        object.__setattr__(self, "inversion_guidance",
                           check_number(self.inversion_guidance, "inversion guidance", 0.0, MAX_GUIDANCE))
        if self.inversion_offset is not None:
            check_whole(self.inversion_offset, "inversion offset", 0, MAX_STEPS - 1)

    def offset_for(self, steps: int) -> int:
        if self.inversion_offset is not None:
            return self.inversion_offset
        return max(0, min(steps - 1, round(DEFAULT_INVERSION_OFFSET_50 * steps / 50)))


StyleSource = GeneratedReference | ReferencePicture


@dataclass(frozen=True)
class PanelControl:
    """A panel's ControlNet conditioning (spec section 8).

    ``mode``: ``canny`` (edges detected in the picture), ``depth`` (depth estimated from the
    picture) or ``map`` (the picture already is a control map; ``map_kind`` says whether it is a
    depth map or an edge map, i.e. which ControlNet it feeds). ``scale`` is the ControlNet
    conditioning scale; the control acts from ``guidance_start`` to ``guidance_end`` (fractions
    of the denoising).
    """

    image: str
    mode: str = "canny"
    scale: float = 0.8
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    canny_low: int = 100
    canny_high: int = 200
    map_kind: str = "depth"

    @property
    def kind(self) -> str:
        """Which ControlNet this control feeds: ``canny`` or ``depth``."""
        return self.map_kind if self.mode == "map" else self.mode

    def __post_init__(self) -> None:
        if self.mode not in CONTROL_MODES:
            raise ValueError(f"control mode must be one of {', '.join(CONTROL_MODES)}, got {self.mode!r}")
        if self.map_kind not in CONTROLNET_KINDS:
            raise ValueError(f"a ready-made map is one of {', '.join(CONTROLNET_KINDS)}, got {self.map_kind!r}")
        if not isinstance(self.image, str):  # as the OS gives it (surrogate escapes allowed)
            raise ValueError(f"control picture path must be text, got {self.image!r}")
        scale, start, end = check_control(self.scale, self.guidance_start, self.guidance_end,
                                          self.canny_low, self.canny_high)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "guidance_start", start)
        object.__setattr__(self, "guidance_end", end)


@dataclass(frozen=True)
class Panel:
    """One image of the set besides the references. ``prompt`` is final (style text included).

    ``size``: the panel's own (width, height), multiples of 64 (spec section 12); None: the
    set's size (``Sampling.width``, ``Sampling.height``).
    """

    prompt: str
    seed: int
    control: PanelControl | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_prompt(self.prompt, "panel prompt")
        check_seed(self.seed, "panel seed")
        object.__setattr__(self, "size", check_panel_size(self.size))


@dataclass(frozen=True)
class Character:
    """One character of a set (spec section 13), named ``[name]`` in panel prompts.

    ``words``: the subject words that locate it (each a word of ``description``); empty: the
    description's words less the stop words. ``anchor_seeds``: one seed per anchor (at least
    ``anchors_per_character``; keyword-only, it has no default). ``anchor_pictures``: per
    anchor, a picture (the artist's design, DDIM-inverted with the description as caption) or
    None (generated); missing entries are None. ``anchor_text`` follows the description in a
    generated anchor's prompt and carries the style text, as a panel prompt does.
    """

    name: str
    description: str
    words: tuple[str, ...] = ()
    anchor_seeds: tuple[int, ...] = field(kw_only=True)
    anchor_pictures: tuple[str | None, ...] = ()
    anchor_text: str = ""

    def __post_init__(self) -> None:
        check_name(self.name)
        check_prompt(self.description, f"description of [{self.name}]")
        check_prompt(self.anchor_text, f"anchor text of [{self.name}]")
        for name in ("words", "anchor_seeds", "anchor_pictures"):
            if isinstance(getattr(self, name), str):
                raise ValueError(f"{name} of [{self.name}] is a sequence, got the text {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_words(self.name, self.description, self.words)
        if not self.anchor_seeds:
            raise ValueError(f"[{self.name}] needs a seed for each of its anchors")
        for seed in self.anchor_seeds:
            check_seed(seed, f"anchor seed of [{self.name}]")
        for path in self.anchor_pictures:
            if path is not None and (not isinstance(path, str) or not path):
                raise ValueError(f"an anchor picture of [{self.name}] is a path or None, got {path!r}")


@dataclass(frozen=True)
class Lora:
    """An SDXL LoRA file (``.safetensors``, kohya or diffusers format) and its weight.

    ``weight`` scales the LoRA's change to the model: 1 as trained, 0 off, negative inverts it.
    """

    path: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.path or not str(self.path).strip():
            raise ValueError("a LoRA needs a file")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not math.isfinite(self.weight):
            raise ValueError(f"LoRA weight must be a number, got {self.weight!r}")
        object.__setattr__(self, "weight", float(self.weight))

    @property
    def name(self) -> str:
        return Path(self.path).name

    @classmethod
    def parse(cls, text: str) -> Lora:
        """``FILE`` or ``FILE:WEIGHT`` (a Windows drive's colon is part of the file, and so is
        the colon of a file that exists as given)."""
        head, sep, tail = text.rpartition(":")
        if sep and head and not Path(text).expanduser().is_file():
            try:
                weight = float(tail)
            except ValueError:  # not a weight: part of the file name
                return cls(text)
            return cls(head, weight)  # a weight that is no finite number is refused
        return cls(text)


@dataclass(frozen=True)
class Sampling:
    steps: int = 50
    guidance: float = 5.0
    width: int = 1024
    height: int = 1024
    scheduler: str = "ddim"
    negative_prompt: str | None = None
    """None behaves as diffusers' ``negative_prompt=None`` (SDXL zeroes the unconditional text)."""
    window_stride: int = 8
    """A wide panel's MultiDiffusion windows start this many latent pixels apart (spec section 14;
    8 is the authors' value); the last window on each axis is aligned to the edge."""
    panorama_above: float = 2.0
    """A panel at least this many times the model's native width or height is drawn as
    MultiDiffusion windows of the native size (spec section 14), not in one piece; 1 windows every
    panel of the native size or larger."""

    def __post_init__(self) -> None:
        check_steps(self.steps)
        check_whole(self.window_stride, "window stride", 1, MAX_WINDOW_STRIDE)
        object.__setattr__(self, "panorama_above",
                           check_number(self.panorama_above, "panorama above", 1.0, MAX_PANORAMA_ABOVE))
        object.__setattr__(self, "guidance", check_number(self.guidance, "guidance", 0.0, MAX_GUIDANCE))
        check_size(self.width, self.height)
        if self.negative_prompt is not None:
            check_prompt(self.negative_prompt, "negative prompt")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")

    @property
    def uses_cfg(self) -> bool:
        return self.guidance > 1.0


@dataclass(frozen=True)
class SetRequest:
    """Everything one generation depends on.

    ``style`` is the style source: one reference, or several (a sequence) whose ``weight``
    fields say how much each contributes (spec section 11; generated and picture references
    may mix). One reference is always stored bare, several as a tuple; read them as
    :attr:`references` with :attr:`weights` (normalised to sum 1).
    ``only`` names the panels (0-based indices into ``panels``) to generate; None means all.
    Each panel's result depends only on its own prompt, seed and control, the style source,
    the sampling and the settings: never on the other panels or on ``micro_batch``.
    ``full_attention_share`` is the exception: it couples all images by definition.
    """

    model: str
    style: StyleSource | tuple[StyleSource, ...]
    panels: tuple[Panel, ...]
    sampling: Sampling = field(default_factory=Sampling)
    settings: StyleAlignedSettings = field(default_factory=StyleAlignedSettings)
    micro_batch: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    only: tuple[int, ...] | None = None
    cache_dir: str | None = None
    """Where inversion trajectories are cached (a session's cache/); None: the user cache folder."""
    controlnet_canny: str | None = None
    """ControlNet for canny edges (hub id or folder); None: the default for the model."""
    controlnet_depth: str | None = None
    depth_model: str | None = None
    """Monocular depth estimator (hub id or folder); None: the default for the model."""
    memory: str = "auto"
    """Memory mode: one of MEMORY_MODES."""
    loras: tuple[Lora, ...] = ()
    vae: str | None = None
    """A VAE to decode (and encode) with: hub id, folder or .safetensors file; None: the model's."""
    previews: str = "auto"
    """The live preview decoder: one of PREVIEW_KINDS. Never changes a picture."""
    characters: tuple[Character, ...] = ()
    """The set's characters (spec section 13), named ``[Name]`` in panel prompts."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "panels", tuple(self.panels))
        self._check_characters()
        style = self.style
        if not isinstance(style, (GeneratedReference, ReferencePicture)):
            style = tuple(style)
            if not style:
                raise ValueError("a set needs at least one reference")
            bad = [r for r in style if not isinstance(r, (GeneratedReference, ReferencePicture))]
            if bad:
                raise ValueError(f"a reference is a GeneratedReference or a ReferencePicture, got {bad[0]!r}")
            if len(style) == 1:
                style = style[0]
            object.__setattr__(self, "style", style)
        if not sum(r.weight for r in self.references) > 0:
            raise ValueError("at least one reference needs a weight above 0")
        if len(self.panels) > MAX_PANELS:
            raise ValueError(f"a set has at most {MAX_PANELS} panels, got {len(self.panels)}")
        if self.only is not None:
            object.__setattr__(self, "only", tuple(sorted(set(self.only))))
            bad = [i for i in self.only if not 0 <= i < len(self.panels)]
            if bad:
                raise ValueError(f"panel index out of range: {bad} (the set has {len(self.panels)} panels)")
        if self.micro_batch is not None:
            check_whole(self.micro_batch, "micro-batch", 1, MAX_MICRO_BATCH)
        check_device(self.device)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"memory mode must be one of {', '.join(MEMORY_MODES)}, got {self.memory!r}")
        if self.previews not in PREVIEW_KINDS:
            raise ValueError(f"previews must be one of {', '.join(PREVIEW_KINDS)}, got {self.previews!r}")
        object.__setattr__(self, "loras", tuple(self.loras))

    def _check_characters(self) -> None:
        """Characters with unique names, enough anchor seeds, and panels naming only them."""
        object.__setattr__(self, "characters", tuple(self.characters))
        names = [c.name for c in self.characters if isinstance(c, Character)]
        if len(names) != len(self.characters):
            raise ValueError("each character is a Character")
        if len(set(names)) != len(names):
            raise ValueError(f"character names must be unique, [{next(n for n in names if names.count(n) > 1)}] is twice")
        wanted = self.settings.anchors_per_character
        for character in self.characters:
            if len(character.anchor_seeds) < wanted:
                raise ValueError(f"[{character.name}] has {len(character.anchor_seeds)} anchor seed(s) but each "
                                 f"character has {wanted} anchors (anchors_per_character)")
        for number, panel in enumerate(self.panels, start=1):
            try:
                named_characters(panel.prompt, self.characters)
            except ValueError as error:
                raise ValueError(f"panel {number}: {error}") from None

    @property
    def selected(self) -> tuple[int, ...]:
        return self.only if self.only is not None else tuple(range(len(self.panels)))

    @property
    def references(self) -> tuple[StyleSource, ...]:
        """The references, in order (one or more)."""
        return self.style if isinstance(self.style, tuple) else (self.style,)

    @property
    def weights(self) -> tuple[float, ...]:
        """The references' weights normalised to sum 1 (spec section 11); 0 stays 0."""
        raw = [r.weight for r in self.references]
        total = sum(raw)
        return tuple(w / total for w in raw)

    @property
    def used_references(self) -> tuple[int, ...]:
        """Positions of the references that run (weight above 0); a weight-0 one is not seen."""
        return tuple(r for r, w in enumerate(self.weights) if w > 0)

    def panel_size(self, index: int) -> tuple[int, int]:
        """(width, height) of panel ``index``: its own size, or the set's."""
        size = self.panels[index].size
        return size if size is not None else (self.sampling.width, self.sampling.height)

    def picture_parameters(self) -> dict[str, Any]:
        """What every picture of this set shares, as its PNG ``parameters`` record it."""
        sampling = self.sampling
        return {
            "model": self.model,
            "negative_prompt": sampling.negative_prompt,
            "steps": sampling.steps,
            "guidance": sampling.guidance,
            "width": sampling.width,
            "height": sampling.height,
            "scheduler": sampling.scheduler,
            "window_stride": sampling.window_stride,
            "panorama_above": sampling.panorama_above,
            "stylealigned": self.settings.to_dict(),
            # the file's name (what other tools show) and where it was (what the app restores)
            "loras": [{"file": lora.name, "path": os.path.abspath(os.path.expanduser(lora.path)),
                       "weight": lora.weight} for lora in self.loras],
            "vae": self.vae if self.vae is None or not Path(self.vae).expanduser().exists()
            else os.path.abspath(os.path.expanduser(self.vae)),  # a hub id as it is
            "memory": self.memory,
            # every reference of the set with its normalised weight (spec section 11)
            "references": [dict(reference_dict(r), weight=w) for r, w in zip(self.references, self.weights)],
        } | ({"characters": [character_dict(c) for c in self.characters]} if self.characters else {})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data. ``style`` is one object for one reference (as before several were
        possible) and a list for several; each carries ``kind`` and ``weight``."""
        data = asdict(self)
        sources = [reference_dict(r) for r in self.references]
        data["style"] = sources[0] if len(sources) == 1 else sources
        for panel in data["panels"]:
            panel["size"] = None if panel["size"] is None else list(panel["size"])
        data["characters"] = [character_dict(c) for c in self.characters]
        return data


def reference_dict(reference: StyleSource) -> dict[str, Any]:
    """One reference as JSON-ready data, with its ``kind`` (``generated`` or ``picture``)."""
    data = asdict(reference)
    data["kind"] = "picture" if isinstance(reference, ReferencePicture) else "generated"
    return data


def character_dict(character: Character) -> dict[str, Any]:
    """One character as JSON-ready data (lists for its sequences)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(character).items()}


def character_from_dict(data: dict[str, Any]) -> Character:
    """The character :func:`character_dict` describes; ValueError for anything else."""
    if not isinstance(data, dict):
        raise ValueError("a character must be an object")
    unknown = sorted(set(data) - {f for f in Character.__dataclass_fields__})
    if unknown:
        raise ValueError(f"unknown character field(s): {', '.join(unknown)}")
    return Character(**data)  # which makes its lists tuples
