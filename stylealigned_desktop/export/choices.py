"""An export's options as the window remembers them (JSON-ready), and back.

Reading is forgiving: a stored value that is missing, of the wrong type or out of range (a file
edited by hand, an option of an older version) falls back to its default, one field at a time,
so a remembered choice never stops an export dialog from opening.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

from .board import ExportError

Options = TypeVar("Options")
NOT_REMEMBERED = frozenset({"fonts"})  # found on each computer, never stored


def choices(options: Any) -> dict[str, Any]:
    """The options' fields as JSON-ready data (tuples as lists)."""
    out = {}
    for f in fields(options):
        if f.name not in NOT_REMEMBERED:
            value = getattr(options, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def from_choices(cls: type[Options], data: Any) -> Options:
    """``cls``'s options with every remembered field that is still valid."""
    options = cls()
    if not isinstance(data, Mapping):
        return options
    for f in fields(cls):
        if f.name in NOT_REMEMBERED or f.name not in data:
            continue
        value, default = data[f.name], getattr(options, f.name)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(default) or (
                isinstance(value, tuple) and not all(type(x) is type(y) for x, y in zip(value, default))):
            continue
        try:
            options = replace(options, **{f.name: value})
        except (ExportError, TypeError, ValueError):
            continue
    return options
