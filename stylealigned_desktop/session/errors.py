"""Errors of the session layer: every one is a user-facing message that names the file or value."""

from __future__ import annotations

from pathlib import Path


class SessionError(ValueError):
    """A request the session refuses (bad value, unreadable picture, unloadable file).

    The message is written for the user: it names the file or value and says what to do.
    """


class PictureError(SessionError):
    """A dropped or pasted file is not a picture the app can read. Nothing was changed."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class SessionLoadError(SessionError):
    """A session folder could not be opened. The files on disk were left untouched."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot open the session {self.path}: {reason}")


class SchemaTooNewError(SessionLoadError):
    """The session was written by a newer version of the app."""

    def __init__(self, path: str | Path, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"it was saved by a newer version of StyleAligned Desktop (session format {found}; "
            f"this version reads up to {supported}). Update the app to open it.",
        )


class MissingFilesError(SessionLoadError):
    """Pictures the session refers to are gone from its folder."""

    def __init__(self, path: str | Path, missing: list[str]) -> None:
        self.missing = list(missing)
        shown = ", ".join(self.missing[:5]) + (" ..." if len(self.missing) > 5 else "")
        super().__init__(
            path, f"{len(self.missing)} file(s) it refers to are missing from its folder: {shown}"
        )


class SessionSaveError(SessionError):
    """Writing the session failed; the previous session.json on disk is still intact."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Could not save {self.path}: {reason} (the previous version is intact)")
