"""A picture's settings taken into a session ("use this picture's settings"): what a PNG the app
wrote records (its ``stylealigned`` chunk, ``engine.runfolder.read_parameters``) becomes the
session's generation settings, with the files it names looked up on this computer.

Taken: steps, guidance, size, sampler, negative prompt, the StyleAligned settings, the inversion
settings of a reference-picture run, the memory mode, the VAE and the LoRAs with their weights,
and the set's characters with their settings (spec section 13; an anchor picture that is not
here is named in :attr:`PictureSettings.missing`, the anchor is drawn from its seed).
The model, micro-batch and control models stay: they name things chosen on this computer. A
LoRA or VAE file the picture names that is not here is left out (the rest is taken) and named
in :attr:`PictureSettings.missing`, for the user to find. A picture may come from anyone: each
LoRA and VAE it names that is here is checked as the command line checks them (a
``.safetensors`` SDXL LoRA, a weight within limits, a VAE ``.safetensors`` file or diffusers
folder); one that fails is left out and named in :attr:`PictureSettings.refused`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..engine import limits
from ..engine.lora import check_lora_file
from ..engine.models import HUB_ID, ModelSourceError, check_vae_source, looks_like_path
from ..engine.request import Character, Lora, character_from_dict
from ..engine.settings import StyleAlignedSettings
from .characters import CharacterSettings
from .errors import SessionError
from .generation import GenerationSettings

_SAMPLING = ("steps", "guidance", "width", "height", "scheduler")


@dataclass(frozen=True)
class PictureSettings:
    """The settings a picture gives, and the files it names that this computer lacks (each
    described for the user: what it is, its name, its weight, where it was)."""

    settings: GenerationSettings
    missing: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    """Files it names that are here but cannot be used (each with the reason)."""
    characters: tuple[Character, ...] = ()
    """The set's characters as the engine had them; an anchor picture not here is None."""
    character_settings: CharacterSettings | None = None

    def notice(self, picture: str) -> str | None:
        """What to tell the user about the missing and refused files, or None."""
        if not self.missing and not self.refused:
            return None
        parts = []
        if self.missing:
            parts.append(f"except what is not on this computer: {'; '.join(self.missing)}. Add it in "
                         "Settings (LoRAs and VAE) if you have it elsewhere.")
        if self.refused:
            parts.append(f"{'Also l' if self.missing else 'except what cannot be used, l'}eft out: "
                         f"{'; '.join(self.refused)}.")
        return f"Took the settings of {Path(picture).name}, " + " ".join(parts)


def settings_from_picture(settings: GenerationSettings, parameters: Any) -> PictureSettings:
    """``settings`` with those ``parameters`` (a picture's) record (see the module's note).
    Raises SessionError for what the session refuses (then nothing is taken)."""
    if not isinstance(parameters, dict):
        raise SessionError("the picture's settings are not a JSON object")
    changes: dict[str, Any] = {k: parameters[k] for k in _SAMPLING if k in parameters}
    missing: list[str] = []
    refused: list[str] = []
    try:
        if "negative_prompt" in parameters:
            changes["negative_prompt"] = parameters["negative_prompt"] or ""
        if "inversion_guidance" in parameters:
            changes["inversion_guidance"] = parameters["inversion_guidance"]
            changes["inversion_offset"] = parameters.get("inversion_offset")
        if "stylealigned" in parameters:
            changes["style_aligned"] = StyleAlignedSettings.from_dict(dict(parameters["stylealigned"]))
        if "memory" in parameters:
            changes["memory"] = parameters["memory"]
        if "vae" in parameters:
            try:
                vae = _vae_here(parameters["vae"])
            except ModelSourceError as exc:
                refused.append(str(exc))
            else:
                if vae is None:
                    missing.append(f"the VAE {parameters['vae']}")
                else:
                    changes["vae"] = vae
        if "loras" in parameters:
            changes["loras"] = _loras_here(parameters["loras"], settings.loras, missing, refused)
        characters, character_settings = _characters_of(parameters, missing)
        return PictureSettings(replace(settings, **changes), tuple(missing), tuple(refused),
                               characters, character_settings)
    except SessionError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OSError) as exc:  # OSError: a path too long
        raise SessionError(f"the picture's settings cannot be used: {exc}") from None


def _vae_here(vae: Any) -> str | None:
    """The VAE source to use ("" for the model's own), or None if it is a file or folder that
    is not on this computer. A hub id is taken as it is (downloaded or found in the cache)."""
    if vae is None or vae == "":
        return ""
    if not isinstance(vae, str):
        raise TypeError(f"the VAE must be text, got {vae!r}")
    path = Path(vae).expanduser()
    if path.exists():
        check_vae_source(vae)
        return vae
    if HUB_ID.match(vae) and not looks_like_path(vae) and not vae.lower().endswith(".safetensors"):
        return vae
    return None


def _loras_here(entries: Any, current: tuple[Lora, ...], missing: list[str],
                refused: list[str]) -> tuple[Lora, ...]:
    """The picture's LoRAs found on this computer, with their weights: at the place the picture
    recorded, else the session's LoRA of the same file name (pictures that recorded names only);
    the others are described in ``missing``, and those here that fail the command line's checks
    in ``refused``."""
    if not isinstance(entries, list):
        raise TypeError(f"the LoRAs must be a list, got {entries!r}")
    mine = {Path(lora.path).name: lora.path for lora in current if Path(lora.path).expanduser().is_file()}
    found = []
    for entry in entries:
        name, path, weight = entry["file"], entry.get("path"), entry["weight"]
        here = path if path and Path(path).expanduser().exists() else mine.get(name)
        if here is not None:
            try:
                lora = Lora(here, limits.check_lora_weight(weight))
                check_lora_file(lora)
            except ValueError as exc:  # LoraError too
                refused.append(f"the LoRA {Path(here).name}: {exc}")
            else:
                found.append(lora)
        else:
            where = f", was {path}" if path else ""
            missing.append(f"the LoRA {name} (weight {weight:g}{where})")
    return tuple(found)


def _characters_of(parameters: dict, missing: list[str]) -> tuple[tuple[Character, ...], CharacterSettings | None]:
    """The picture's characters (the engine's checks) and their settings (from its StyleAligned
    settings); anchor pictures not on this computer become None and are named in ``missing``."""
    entries = parameters.get("characters")
    if entries is None:
        return (), None
    if not isinstance(entries, list):
        raise TypeError(f"the characters must be a list, got {entries!r}"[:200])
    characters = []
    for entry in entries:
        character = character_from_dict(entry)
        pictures = []
        for number, picture in enumerate(character.anchor_pictures, start=1):
            if picture is not None and not Path(picture).expanduser().is_file():
                missing.append(f"the picture of [{character.name}]'s anchor {number} (was {picture})")
                picture = None
            pictures.append(picture)
        characters.append(replace(character, anchor_pictures=tuple(pictures)))
    names = [c.name for c in characters]
    if len(set(names)) != len(names):
        raise ValueError(f"the picture names a character twice: {sorted(n for n in names if names.count(n) > 1)[0]}")
    knobs = dict(parameters.get("stylealigned") or {})
    defaults = CharacterSettings()
    settings = CharacterSettings(**{f: knobs.get(f, getattr(defaults, f)) for f in defaults.to_dict()})
    return tuple(characters), settings
