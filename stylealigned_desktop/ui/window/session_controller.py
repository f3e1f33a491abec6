"""The window's document: new, open, save, save as, recover after a crash, autosave.

The controller holds the current :class:`~...session.model.Session` and its autosaver, and says
when the document is replaced (``replaced``) or edited (``changed``); the window hands the new
session to its views. It holds no widgets: questions and messages go through the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog

from ...session import folders, observer, store
from ...session.errors import MissingFilesError, SessionError, SessionLoadError
from ...session.model import Session
from ..support import SessionUndo
from .host import APP_TITLE, Host

log = logging.getLogger(__name__)


class SessionController(QObject):
    """See the module docstring. ``stop_jobs(what)`` asks to stop running jobs first."""

    replaced = Signal(object)
    """The new Session (None while the old one is closed and no new one is set yet)."""
    changed = Signal(object)
    """An ``observer.Change`` of the current session."""
    moved = Signal()
    """Save as gave the session a new folder (files shown from the old one are gone)."""

    def __init__(self, host: Host, stop_jobs: Callable[[str], bool], parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self.stop_jobs = stop_jobs
        self.session: Session | None = None
        self.autosaver = None
        self._unsubscribe = None
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setSingleShot(True)
        self.autosave_timer.timeout.connect(self._autosave_due)
        self.undo = SessionUndo(self)
        """Undo / redo of the session's edits; lives until the session closes."""

    @property
    def config(self):
        return self.host.config

    # ----- start-up -------------------------------------------------------------------------
    def restore_or_reopen(self) -> None:
        """Offer to restore work after a crash, else reopen the last session, else a new one."""
        restored = False
        try:
            recoverable = store.list_recoverable()
        except OSError:
            recoverable = []
        if recoverable:
            entry = recoverable[0]
            others = (f"\n\n({len(recoverable) - 1} older unsaved session(s) are kept for later.)"
                      if len(recoverable) > 1 else "")
            choice = self.host.ask(
                "Restore unsaved work?",
                "StyleAligned Desktop did not close properly last time. Restore the unsaved "
                "session?",
                ["Restore", "Discard", "Not now"], default="Restore",
                detail=entry.summary + others)
            if choice == "Restore" and entry.error is None:
                try:
                    self.set_session(store.recover_session(entry))
                    restored = True
                    self.host.show_message("Restored the unsaved session. Use Save As to keep it "
                                           "under a name.")
                except SessionError as exc:
                    self.host.show_message(str(exc), True)
            elif choice == "Discard":
                store.discard_recoverable(entry)
        if not restored and self.config.last_session:
            last = Path(self.config.last_session)
            if (last / "session.json").is_file():
                self.open_session(last, quiet_missing=False)
        if self.session is None:
            self.set_session(Session())

    def open_or_new(self, folder: Path) -> None:
        """Start with the session at ``folder`` (from the command line), else a new one."""
        self.open_session(Path(folder))
        if self.session is None:
            self.set_session(Session())

    # ----- the current document ---------------------------------------------------------------
    def set_session(self, session: Session) -> None:
        """Make ``session`` the window's document (the previous one is flushed and closed)."""
        self.close_session()
        self.session = session
        self._unsubscribe = session.subscribe(self._on_change)
        from ...session.autosave import Autosaver

        self.autosaver = Autosaver(
            session, delay=1.0, max_delay=10.0,
            schedule=lambda seconds: self.autosave_timer.start(max(0, round(seconds * 1000))),
            on_error=lambda exc: self.host.show_message(f"Autosave failed: {exc}", True,
                                                        "autosave"))
        self.undo.follow(session)
        self.replaced.emit(session)
        if not session.untitled and not session.read_only:  # a read-only one is another app's
            self.config.last_session = str(session.folder)
            self.host.save_config()
        self._update_title()

    def close_session(self) -> None:
        """Write the last changes and close the session (the views are told first)."""
        if self.session is None:
            return
        if self.autosaver is not None:
            try:
                self.autosaver.flush()
            except Exception as exc:  # never lose the window over a failed last write
                log.warning("last autosave failed: %s", exc)
            self.autosaver.close()
            self.autosaver = None
        self.autosave_timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.undo.follow(None)
        self.replaced.emit(None)
        self.session.close()
        self.session = None

    def _autosave_due(self) -> None:
        if self.autosaver is not None and self.autosaver.poll():
            self.host.clear_problem("autosave")

    def _saved(self, text: str) -> None:
        for topic in ("save", "autosave"):
            self.host.clear_problem(topic)
        self.host.show_message(text)

    def _on_change(self, change: observer.Change) -> None:
        self.changed.emit(change)
        self._update_title()

    def _update_title(self) -> None:
        if self.session is None:
            self.host.setWindowTitle(APP_TITLE)
            return
        where = "" if self.session.untitled else f" ({self.session.folder.parent})"
        read_only = " [read-only]" if self.session.read_only else ""
        self.host.setWindowTitle(f"{self.session.title}{read_only}{where} — {APP_TITLE}")

    def update_settings(self, settings) -> bool:
        """Apply the settings panel's ``GenerationSettings``; False (and a message) if refused."""
        if self.session is None:
            return False
        old = self.session.settings
        changes = {name: getattr(settings, name) for name in settings.__dataclass_fields__
                   if getattr(settings, name) != getattr(old, name)}
        try:
            self.session.update_settings(**changes)
        except SessionError as exc:
            self.host.show_message(str(exc), True)
            return False
        return True

    def take_picture(self, taken) -> bool:
        """A picture dropped on Settings (``session.picture_settings``): its settings and its
        characters, one undo step; False (and a message) if refused."""
        if not self.update_settings(taken.settings):
            return False
        if taken.characters:
            try:
                refused = self.session.take_characters(taken.characters, taken.character_settings)
            except SessionError as exc:
                self.host.show_message(str(exc), True)
                return False
            if refused:
                self.host.show_message("Took the characters except " + "; ".join(refused), True)
        return True

    # ----- leaving a session ----------------------------------------------------------------------
    def _untitled_has_work(self) -> bool:
        s = self.session
        return bool(s and s.untitled and (s.panels or s.references or s.history
                                          or s.style.text.strip()))

    def settle_untitled(self, closing: str) -> bool:
        """Before leaving an untitled session with work in it: save it, drop it, or stay.

        Returns False when the user chose to stay.
        """
        if not self._untitled_has_work():
            if self.session is not None and self.session.untitled:
                self._drop_autosaver()
                store.discard_untitled(self.session)
            return True
        choice = self.host.ask(
            "Keep this session?",
            f"The session is not saved under a name yet. Save it before {closing}?",
            ["Save…", "Don't save", "Cancel"], default="Save…")
        if choice == "Cancel":
            return False
        if choice == "Don't save":
            self._drop_autosaver()
            store.discard_untitled(self.session)
            return True
        return self.save_as()

    def _drop_autosaver(self) -> None:
        """Stop autosaving (the session is about to be thrown away)."""
        if self.autosaver is not None:
            self.autosaver.close()
            self.autosaver = None
        self.autosave_timer.stop()

    def settle_read_only(self, closing: str) -> bool:
        """Before leaving a read-only session with changes: save them as a copy, drop them, or
        stay. Its changes are written nowhere else (the folder is another app's).

        Returns False when the user chose to stay.
        """
        session = self.session
        if session is None or not session.read_only or not session.dirty:
            return True
        choice = self.host.ask(
            "Keep your changes?",
            f"This session is read-only (another window has it open), so your changes are not "
            f"saved. Save a copy before {closing}?",
            ["Save a copy…", "Discard", "Cancel"], default="Save a copy…")
        if choice == "Cancel":
            return False
        if choice == "Discard":
            return True
        return self.save_as()

    def may_leave(self, what: str, closing: str) -> bool:
        """Running jobs stopped, an untitled or read-only session's changes settled (False:
        the user stays)."""
        return (self.stop_jobs(what) and self.settle_untitled(closing)
                and self.settle_read_only(closing))

    # ----- commands -------------------------------------------------------------------------
    def new_session(self) -> None:
        if not self.may_leave("start a new session", "starting a new one"):
            return
        self.set_session(Session())
        self.host.show_message("New session")

    def open_session_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self.host, "Open a session folder (…​.stylealigned)", self.config.open_folder or "")
        if folder:
            self.open_session(Path(folder))

    def open_session(self, folder: Path, quiet_missing: bool = False) -> bool:
        """Open a session folder; a session that cannot be loaded is reported, never changed."""
        if self.session is not None and Path(folder).absolute() == self.session.folder:
            return True
        if not self.may_leave("open another session", "opening another"):
            return False
        try:
            session = store.load_session(folder)
        except folders.SessionLockedError as exc:
            return self._open_locked(Path(folder), exc)
        except MissingFilesError as exc:
            choice = "Open anyway" if quiet_missing else self.host.ask(
                "Pictures are missing", str(exc), ["Open anyway", "Cancel"], default="Cancel",
                detail="Opening it anyway keeps the session; the panels or references whose "
                       "pictures are gone need new ones.")
            if choice != "Open anyway":
                self.host.show_message(str(exc), True)
                return False
            try:
                session = store.load_session(folder, allow_missing=True)
            except SessionError as again:
                self._load_failed(folder, again)
                return False
        except SessionError as exc:
            self._load_failed(folder, exc)
            return False
        self.config.open_folder = str(Path(folder).parent)
        self.set_session(session)
        self.host.show_message(f"Opened {session.title}")
        return True

    def _open_locked(self, folder: Path, exc: folders.SessionLockedError) -> bool:
        """The session is open in another running app: open it read-only, or as a copy."""
        choice = self.host.ask(
            "The session is open in another window", str(exc),
            ["Open read-only", "Save a copy…", "Cancel"], default="Open read-only",
            detail="Two windows writing one session would overwrite each other's work. "
                   "Read-only: look and generate, then Save As to keep changes. "
                   "A copy: choose a new folder now.")
        if choice not in ("Open read-only", "Save a copy…"):
            self.host.show_message(str(exc), True)
            return False
        try:
            session = store.load_session(folder, allow_missing=True, read_only=True)
        except SessionError as again:
            self._load_failed(folder, again)
            return False
        self.config.open_folder = str(folder.parent)
        self.set_session(session)
        if choice == "Save a copy…":
            self.save_as()
        if self.session is session and session.read_only:
            self.host.show_message(f"Opened {session.title} read-only: use Save As to keep changes")
        return True

    def _load_failed(self, folder: Path, exc: Exception) -> None:
        message = str(exc)
        if not isinstance(exc, SessionLoadError):
            message = f"Cannot open the session {folder}: {exc}"
        if self.config.last_session == str(folder):
            self.config.last_session = ""
            self.host.save_config()
        if self.session is None:
            self.set_session(Session())
        # after the new session: a new session clears the messages of the one before
        self.host.show_message(message + " The folder was left untouched.", True)

    def save(self) -> bool:
        if self.session is None:
            return False
        if self.session.untitled:
            return self.save_as()
        try:
            store.save_session(self.session)
        except SessionError as exc:
            self.host.show_message(str(exc), True, "save")
            return False
        self._saved(f"Saved {self.session.folder}")
        return True

    def save_as(self, folder: str | Path | None = None) -> bool:
        if self.session is None:
            return False
        if folder is None:
            suggested = str(Path(self.config.open_folder or Path.home()) / (
                "My storyboard" if self.session.untitled else self.session.title + " copy"))
            folder, _ = QFileDialog.getSaveFileName(
                self.host, "Save the session as (a folder is made)", suggested,
                "StyleAligned session (*.stylealigned)")
            if not folder:
                return False
        try:
            store.save_session_as(self.session, folder)
        except SessionError as exc:
            self.host.show_message(str(exc), True, "save")
            return False
        self.config.last_session = str(self.session.folder)
        self.config.open_folder = str(self.session.folder.parent)
        self.host.save_config()
        self._update_title()
        self.moved.emit()
        self._saved(f"Saved as {self.session.folder}")
        return True

    def recent_sessions(self) -> list[Path]:
        return store.recent_sessions()

    def remember_on_quit(self) -> None:
        """The session to reopen next time: this one if it has a name, else none. The last
        session is only this app's to name when it owns it: a read-only session, or the last
        session still open in another running app (this one was refused it), is left to that
        app, which may crash and must then find its session reopened at the next start."""
        session = self.session
        if session is None or session.read_only:
            return
        if not session.untitled:
            self.config.last_session = str(session.folder)
            return
        self.config.refresh()  # what the other app wrote since this one started
        last = self.config.last_session
        if not last or folders.other_owner(Path(last)) is None:
            self.config.last_session = ""
