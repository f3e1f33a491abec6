"""What the control modules share: their error, the ``tiny`` test models' name and seed, and
where a control model comes from (a hub id or a local folder) with what to say when it cannot
be loaded. Used by ``control.py`` (maps), ``depth.py`` (depth estimators) and ``controlnets.py``."""

from __future__ import annotations

import pickle
from pathlib import Path

from .hub import download_command, has_only_pickle_weights, pickle_note
from .models import hub_or_folder

TINY = "tiny"
TINY_SEED = 0


class ControlError(ValueError):
    """A control cannot be used (bad settings, a missing or mismatched model)."""


def resolve_source(source: str, what: str) -> str:
    """A local folder's path, or the hub id as given; clear errors for neither."""
    return hub_or_folder(source, what, ControlError)


def not_available_message(source: str, what: str, exc: BaseException) -> str:
    """What to tell the user when the ``what`` at ``source`` could not be loaded."""
    if has_only_pickle_weights(source):
        return f"{what}{pickle_note(source)}"
    if isinstance(exc, pickle.UnpicklingError):
        return (f"{what} {source!r}: its weights are a pickle file that would run code when "
                "loaded; it was refused (use a model with .safetensors weights)")
    if Path(source).expanduser().is_dir():
        return f"{what} folder {source!r} cannot be loaded: {exc}"
    return (
        f"{what} {source!r} could not be loaded ({exc}). It is not in the local Hugging Face "
        "cache and could not be downloaded (offline, or no network). Download it once while "
        f"online (`{download_command(source)}`, the app's model dialog, or run once with network access), "
        "or give the path of a local folder holding the model."
    )
