"""A workaround for a reference-count bug of PySide6 6.12 on Python 3.11.

PySide6 6.12's bindings do not add a reference when they return ``None`` from a C++ ``void``
method (``label.setText(...)``, ``painter.drawImage(...)``, ``app.processEvents()``) or ``True``
/ ``False`` from ``Signal.emit``: Python 3.12 made these objects immortal, Python 3.11 did not.
Each such call therefore takes one reference away from ``None`` (or ``True``), and after a few
thousand calls Python aborts with "Fatal Python error: none_dealloc: deallocating None". A
window makes thousands of such calls a minute.

On CPython before 3.12 this module gives those singletons a reference count so large that it
can never reach zero, which is what 3.12 does by design. Nothing else changes. The real fix is
Python >= 3.12 or a PySide6 release without the bug; then :func:`apply` does nothing.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40
"""References added to each singleton: more than a program can ever take away."""
_applied = False


def affected() -> bool:
    """Whether this interpreter and PySide6 have the bug."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    try:
        import PySide6
    except ImportError:
        return False
    version = tuple(getattr(PySide6, "__version_info__", (0, 0))[:2])
    return version >= (6, 12)


def apply() -> bool:
    """Make None, True and False unkillable when :func:`affected`; returns whether it did."""
    global _applied
    if _applied or not affected():
        return _applied
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object (Py_ssize_t).
        ctypes.c_ssize_t.from_address(id(singleton)).value += _HEADROOM
    _applied = True
    return True
