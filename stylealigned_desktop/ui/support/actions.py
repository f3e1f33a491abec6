"""The window's commands as one table, and the one way to connect a Qt signal to a command.

Qt's ``triggered(bool)`` and ``clicked(bool)`` carry a ``checked`` flag, and PySide passes it to
any slot that can take an argument: a handler with an optional parameter (``save_as(folder=None)``)
would get ``False`` as its folder. Every command is therefore a handler *taking no arguments*,
connected through :func:`connect_command`, which drops whatever the signal carries.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence

from .theme import icon

Shortcut = str | QKeySequence.StandardKey | tuple[str, ...] | None


@dataclass(frozen=True)
class Command:
    """One row of the action table; ``handler`` is called with no arguments."""

    name: str
    """The QAction becomes the window's ``<name>_action`` attribute."""
    text: str
    handler: Callable[[], object]
    shortcut: Shortcut = None
    icon: str | None = None
    tip: str = ""


def connect_command(signal, handler: Callable[[], object]) -> None:
    """Connect ``signal`` so that ``handler()`` runs with no arguments, whatever the signal sends."""
    try:
        inspect.signature(handler).bind()
    except TypeError as exc:
        raise TypeError(f"{handler!r} must be callable with no arguments") from exc
    except ValueError:
        pass  # a builtin without a signature: nothing to check

    def run(*_signal_args) -> None:
        handler()

    signal.connect(run)


def add_menu_command(menu, text: str, handler: Callable[[], object],
                     icon_name: str | None = None) -> QAction:
    """A menu entry (e.g. of a context menu) that runs ``handler()``."""
    action = menu.addAction(icon(icon_name), text) if icon_name else menu.addAction(text)
    connect_command(action.triggered, handler)
    return action


def make_action(parent, command: Command) -> QAction:
    """A QAction for ``command`` owned by ``parent`` (shortcuts work while it is visible)."""
    action = QAction(command.text, parent)
    if command.icon:
        action.setIcon(icon(command.icon))
    if isinstance(command.shortcut, tuple):
        action.setShortcuts([QKeySequence(s) for s in command.shortcut])
    elif command.shortcut is not None:
        action.setShortcut(QKeySequence(command.shortcut))
    if command.tip:
        action.setStatusTip(command.tip)
    connect_command(action.triggered, command.handler)
    parent.addAction(action)
    return action


def make_actions(parent, commands: Sequence[Command]) -> dict[str, QAction]:
    """One QAction per row, by name (also set as ``parent.<name>_action``)."""
    actions = {}
    for command in commands:
        action = make_action(parent, command)
        setattr(parent, f"{command.name}_action", action)
        actions[command.name] = action
    return actions
