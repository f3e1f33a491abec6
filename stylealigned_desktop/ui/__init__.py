"""The desktop window (PySide6). Importing this package applies :mod:`.pyside_compat`."""

from . import pyside_compat as _pyside_compat

_pyside_compat.apply()
