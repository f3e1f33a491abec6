"""What the window's controllers may ask of the window: messages, questions, remembered choices.

Each controller owns one job (runs, the session, the grid's pictures, exports, scores, control
maps) and the widgets of that job; everything else it needs comes through this small interface
or through the callables and signals :class:`~.main_window.MainWindow` wires between them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ...session.model import Session
    from ..support import DesktopConfig

APP_TITLE = "StyleAligned Desktop"


class Host(Protocol):
    """The main window (a QWidget: dialogs use it as their parent)."""

    config: DesktopConfig

    @property
    def session(self) -> Session | None:
        """The window's document (None only while one is being replaced)."""

    def show_message(self, text: str, problem: bool = False, topic: str = "") -> None:
        """Status bar text; problems also go into the banner above the pictures. A problem's
        ``topic`` ("run", "save", "autosave", "export") lets a later success take it away."""

    def clear_problem(self, topic: str) -> None:
        """A ``topic`` went well now: its banner, if shown, goes."""

    def hide_problem(self) -> None:
        """Take the banner away (a new attempt starts)."""

    def ask(self, title: str, text: str, buttons: list[str], default: str | None = None,
            detail: str = "") -> str:
        """A modal question; returns the label of the chosen button."""

    def save_config(self) -> None:
        """Write the remembered choices (a failure is logged, never raised)."""

    def setWindowTitle(self, title: str) -> None:  # noqa: N802 (Qt)
        ...
