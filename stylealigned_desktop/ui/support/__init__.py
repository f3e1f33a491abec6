"""What every part of the window uses: the theme and its icons, commands (QActions and buttons
that run a handler), small shared widgets, pictures brought in by drop or paste, PIL <-> QImage,
drops taken as copies, the wheel and text-field drop rules, undo, the exception hook and the desktop config.

Imports no other ``ui`` subpackage."""

from .actions import Command, add_menu_command, connect_command, make_actions
from .config import DesktopConfig
from .drops import accept_as_copy, accept_pictures
from .errors import install_exception_hook
from .fitting import VerticalScroller, fit_to_screen
from .picture_input import PICTURE_FILTER, import_error, local_paths, png_bytes
from .qimage import pil_to_qimage
from .text_drops import files_pass_through
from .theme import ACCENT, CHARACTER_COLOURS, apply_theme, follow_system, icon
from .undo import SessionUndo
from .wheel import wheel_edits_only_when_focused
from .widgets import (
    THUMB_BUTTON_ROOM,
    ElidedLabel,
    set_style_flag,
    size_key,
    size_label,
    small_combo,
)

__all__ = [
    "ACCENT",
    "CHARACTER_COLOURS",
    "PICTURE_FILTER",
    "Command",
    "DesktopConfig",
    "ElidedLabel",
    "SessionUndo",
    "THUMB_BUTTON_ROOM",
    "VerticalScroller",
    "accept_as_copy",
    "accept_pictures",
    "add_menu_command",
    "apply_theme",
    "connect_command",
    "files_pass_through",
    "fit_to_screen",
    "follow_system",
    "icon",
    "import_error",
    "install_exception_hook",
    "local_paths",
    "make_actions",
    "pil_to_qimage",
    "png_bytes",
    "set_style_flag",
    "size_key",
    "size_label",
    "small_combo",
    "wheel_edits_only_when_focused",
]
