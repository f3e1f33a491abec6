"""File operations inside a session folder: picture copies, run folders, clean-up.

The session document (``model.py``) keeps only its folder's path and asks this module for
everything that touches files in it; ``store.py`` does the same for session.json.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from . import folders
from .pictures import PreparedPicture, store_picture


def session_path(folder: Path, relative: str) -> Path:
    """The absolute path of a session-relative file (``references/ab12.png``)."""
    return folder.joinpath(*relative.split("/"))


def store_copy(folder: Path, sub: str, prepared: PreparedPicture) -> str:
    """Copy a prepared picture into ``folder/sub`` (kept if already there); its relative path."""
    store_picture(prepared.data, folder / sub, prepared.stored_name)
    return f"{sub}/{prepared.stored_name}"


def run_folder_names(folder: Path) -> set[str]:
    """The names under ``outputs/`` (a new run id must not reuse one)."""
    outputs = folder / folders.OUTPUTS
    return {p.name for p in outputs.iterdir()} if outputs.is_dir() else set()


def remove_empty_run_folder(run_folder: Path) -> None:
    """Remove a run folder the engine left empty (a run that failed before any picture)."""
    if run_folder.is_dir() and not any(run_folder.iterdir()):
        run_folder.rmdir()


def adopt_run_folder(folder: Path, run_id: str, source: Path, move: bool) -> Path:
    """The run's folder inside ``folder`` (``outputs/<run_id>``): a run that was still writing
    into another folder when the session was saved under a new name is copied over, and with
    ``move`` its old folder is removed afterwards."""
    target = folder / folders.OUTPUTS / run_id
    if source.absolute() == target.absolute() or not source.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, dirs_exist_ok=True)
    if move:
        shutil.rmtree(source, ignore_errors=True)
    return target


def retire_untitled_folder(old: Path, cache: Path) -> None:
    """Delete an untitled session's old autosave folder once nothing writes there any more,
    first copying inversion trajectories a run left in it into ``cache`` (an inversion costs
    about as much as generating a picture; a copy that fails means it is recomputed later)."""
    if not folders.is_in_autosave_root(old):
        return
    if (old / folders.CACHE).is_dir():
        with contextlib.suppress(OSError):
            shutil.copytree(old / folders.CACHE, cache, dirs_exist_ok=True,
                            ignore=folders.ignore_temporaries)
    shutil.rmtree(old, ignore_errors=True)


def remove_run_files(folder: Path, run_folder: str) -> None:
    """Delete a run's folder (session-relative ``outputs/<id>``)."""
    path = session_path(folder, run_folder)
    if path.is_dir() and path.resolve().is_relative_to(folder.resolve()):
        shutil.rmtree(path, ignore_errors=True)


def collect_garbage(folder: Path, used: set[str]) -> list[str]:
    """Delete copies in references/ and controls/ that are not in ``used`` (session-relative
    paths); returns the session-relative paths removed."""
    removed = []
    for sub in (folders.REFERENCES, folders.CONTROLS):
        where = folder / sub
        if not where.is_dir():
            continue
        for file in where.iterdir():
            rel = f"{sub}/{file.name}"
            if file.is_file() and rel not in used:
                file.unlink(missing_ok=True)
                removed.append(rel)
    return sorted(removed)
