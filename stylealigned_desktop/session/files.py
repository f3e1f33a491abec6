"""Every file operation inside a session folder, each held to one containment rule.

The rule (docs/architecture.md, "Files the app touches"): a session-relative path is followed
one component at a time from the session folder's real path, and no component may be a
symbolic link (or junction), so whatever is read, written, copied or deleted lies inside the
session's real folder. A run folder is a direct child of ``outputs/``; removing a run deletes
only the files its record lists; clean-up deletes only regular files found in the session's
own real folders; copies take regular files only. A path that breaks the rule raises
:class:`ContainmentError` (a :class:`SessionError` naming the path) and nothing is touched.

The session document (``document.py`` / ``model.py``) keeps only its folder's path and asks
this module for everything that touches files in it; ``store.py`` does the same.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from . import folders
from .errors import SessionError
from .pictures import PreparedPicture, store_picture

RUN_FOLDER_FILES = ("run.json", "contact-sheet.png")
"""What every run folder holds besides the pictures its record lists (engine/runfolder.py)."""


class ContainmentError(SessionError):
    """A path that would leave the session folder or pass through a link."""


def _is_link(path: Path) -> bool:
    isjunction = getattr(os.path, "isjunction", None)  # Windows junctions (Python 3.12+)
    return path.is_symlink() or bool(isjunction and isjunction(path))


def session_path(folder: Path, relative: str) -> Path:
    """The absolute path of a session-relative file (``references/ab12.png``), to show it;
    anything that touches the file goes through :func:`contained`."""
    return folder.joinpath(*relative.split("/"))


def contained(folder: Path, relative: str) -> Path:
    """The real path of session-relative ``relative`` (which need not exist yet).

    Raises :class:`ContainmentError` when a component is empty, ``.`` or ``..``, or an existing
    component is a link.
    """
    parts = relative.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise ContainmentError(f"{relative!r} is not a path inside the session folder")
    path = Path(os.path.realpath(folder))
    for part in parts:
        path = path / part
        if _is_link(path):
            raise ContainmentError(
                f"{relative} in the session folder {folder} is a link to somewhere else; the app "
                "never follows links out of a session (replace the link by the file itself)"
            )
    return path


def regular_file(folder: Path, relative: str) -> Path | None:
    """The real path of a session file that exists as a regular file inside the session
    folder; None when it is missing, not a regular file, or reached through a link."""
    try:
        path = contained(folder, relative)
        return path if stat.S_ISREG(path.lstat().st_mode) else None
    except (ContainmentError, OSError):
        return None


def folder_inside(folder: Path, sub: str, create: bool = False) -> Path | None:
    """The real path of the session's sub-folder ``sub`` (``outputs``, ``cache``...), created
    with ``create``; None when it does not exist. A link or a file in its place raises."""
    path = contained(folder, sub)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return None
    if not path.is_dir():
        raise ContainmentError(f"{sub} in the session folder {folder} is not a folder")
    return path


def store_copy(folder: Path, sub: str, prepared: PreparedPicture) -> str:
    """Copy a prepared picture into ``folder/sub`` (kept if already there); its relative path."""
    relative = f"{sub}/{prepared.stored_name}"
    target = contained(folder, relative)
    store_picture(prepared.data, target.parent, target.name)
    return relative


def run_folder_names(folder: Path) -> set[str]:
    """The names under ``outputs/`` (a new run id must not reuse one)."""
    outputs = folder_inside(folder, folders.OUTPUTS)
    return {p.name for p in outputs.iterdir()} if outputs is not None else set()


def outputs_folder(folder: Path) -> Path:
    """``outputs/`` (created), where the engine writes run folders."""
    return folder_inside(folder, folders.OUTPUTS, create=True)


def cache_folder(folder: Path) -> Path:
    """``cache/`` (not created here), where the engine keeps inversion trajectories."""
    folder_inside(folder, folders.CACHE)  # raises when it is a link or a file
    return contained(folder, folders.CACHE)


def run_folder(folder: Path, relative: str) -> Path:
    """The real path of a run folder ``outputs/<name>`` (a direct child of ``outputs/``)."""
    parts = relative.split("/")
    if len(parts) != 2 or parts[0] != folders.OUTPUTS:
        raise ContainmentError(f"{relative!r} is not a run folder (outputs/<run>)")
    return contained(folder, relative)


def remove_empty_run_folder(run: Path) -> None:
    """Remove a run folder the engine left empty (a run that failed before any picture)."""
    if run.is_dir() and not _is_link(run) and not any(run.iterdir()):
        run.rmdir()


def copy_regular_files(source: Path, target: Path) -> None:
    """Copy the regular files under ``source`` into ``target`` (created), keeping the layout.

    Links (to files or folders) and files still being written (``*.tmp``, ``.tmp-*``) are
    left out: a copy never brings in anything from outside ``source``.
    """
    if _is_link(source) or not source.is_dir():
        return
    target.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(source):
        if entry.is_symlink() or folders.ignore_temporaries(str(source), [entry.name]):
            continue
        if entry.is_dir(follow_symlinks=False):
            copy_regular_files(Path(entry.path), target / entry.name)
        elif entry.is_file(follow_symlinks=False):
            shutil.copy2(entry.path, target / entry.name, follow_symlinks=False)


def adopt_run_folder(folder: Path, run_id: str, source: Path, move: bool) -> Path:
    """The run's folder inside ``folder`` (``outputs/<run_id>``): a run that was still writing
    into another folder when the session was saved under a new name is copied over, and with
    ``move`` its old folder is removed afterwards."""
    target = run_folder(folder, f"{folders.OUTPUTS}/{run_id}")
    if source.absolute() == target or _is_link(source) or not source.is_dir():
        return target
    if os.path.realpath(source) == str(target):
        return target
    copy_regular_files(source, target)
    if move:
        shutil.rmtree(source, ignore_errors=True)  # never follows links inside
    return target


def retire_untitled_folder(old: Path, cache: Path) -> None:
    """Delete an untitled session's old autosave folder once nothing writes there any more,
    first copying inversion trajectories a run left in it into ``cache`` (an inversion costs
    about as much as generating a picture; a copy that fails means it is recomputed later)."""
    if _is_link(old) or not folders.is_in_autosave_root(old):
        return
    with contextlib.suppress(OSError):
        copy_regular_files(old / folders.CACHE, cache)
    shutil.rmtree(old, ignore_errors=True)


def remove_run_files(folder: Path, relative: str, pictures: Iterable[str]) -> list[str]:
    """Delete a run: the ``pictures`` its record lists and the run folder's own files
    (:data:`RUN_FOLDER_FILES`), each only if it is a regular file directly in the run folder;
    then the folder itself if nothing else is left in it. Returns the names removed."""
    try:
        run = run_folder(folder, relative)
    except ContainmentError:  # the run folder (or outputs/) is a link: nothing of it is ours
        return []
    if not run.is_dir():
        return []
    removed = []
    for name in dict.fromkeys([*pictures, *RUN_FOLDER_FILES]):
        if "/" in name or name in ("", ".", ".."):
            continue
        path = run / name
        with contextlib.suppress(OSError):
            if stat.S_ISREG(path.lstat().st_mode):
                path.unlink()
                removed.append(name)
    with contextlib.suppress(OSError):
        run.rmdir()  # only when empty
    return removed


def collect_garbage(folder: Path, used: set[str]) -> list[str]:
    """Delete regular files in references/, controls/ and characters/ that are not in ``used``
    (session-relative paths); returns the session-relative paths removed. A sub-folder that is
    a link is left alone, and so is every link inside one."""
    removed = []
    for sub in folders.PICTURE_FOLDERS:
        try:
            where = folder_inside(folder, sub)
        except ContainmentError:
            continue
        if where is None:
            continue
        for entry in os.scandir(where):
            rel = f"{sub}/{entry.name}"
            if entry.is_file(follow_symlinks=False) and rel not in used:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed.append(rel)
    return sorted(removed)
