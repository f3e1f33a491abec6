"""Reading and checking the fields of session.json: a JSON object reader that names the offending
field, and the checks the value types share (text, numbers, seeds, paths inside the session).

The engine request's checks (``engine/limits.py``, shared with the CLI) raise ValueError; these
raise :class:`SessionError`, which the session's callers expect.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..engine import limits
from .errors import SessionError

MAX_SEED = 2**31 - 1
"""Seeds the app draws lie in [0, MAX_SEED], so they fit a Qt spin box (int32)."""
SEED_LIMIT = limits.SEED_LIMIT
"""The largest seed accepted (torch.Generator.manual_seed's limit)."""


@contextmanager
def as_session_error() -> Iterator[None]:
    """The engine's checks raise ValueError; turn it into a :class:`SessionError`."""
    try:
        yield
    except SessionError:
        raise
    except ValueError as exc:
        raise SessionError(str(exc)) from None


class Reader:
    """Reads fields of one JSON object, raising a :class:`SessionError` that names the field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise SessionError(f"{where} must be an object, got {type(data).__name__}")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, default: Any, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise SessionError(f"{self.where}.{key} is missing")
            return default
        return self.data[key]

    def _bad(self, key: str, expected: str, value: Any) -> SessionError:
        return SessionError(f"{self.where}.{key} must be {expected}, got {value!r}")

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as stored (the caller checks it)."""
        return self._get(key, default, False)

    def text(self, key: str, default: str = "", required: bool = False) -> str:
        value = self._get(key, default, required)
        if not isinstance(value, str):
            raise self._bad(key, "text", value)
        return check_text(value, f"{self.where}.{key}")

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, None, False)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "text or null", value)
        return value if value is None else check_text(value, f"{self.where}.{key}")

    def integer(self, key: str, default: int = 0, required: bool = False) -> int:
        value = self._get(key, default, required)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "a whole number", value)
        return value

    def opt_integer(self, key: str) -> int | None:
        value = self._get(key, None, False)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._bad(key, "a whole number or null", value)
        return value

    def number(self, key: str, default: float = 0.0, required: bool = False) -> float:
        value = self._get(key, default, required)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._bad(key, "a number", value)
        return float(value)

    def opt_number(self, key: str) -> float | None:
        value = self._get(key, None, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._bad(key, "a number or null", value)
        return float(value)

    def flag(self, key: str, default: bool = False, required: bool = False) -> bool:
        value = self._get(key, default, required)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def items(self, key: str) -> list[Any]:
        value = self._get(key, [], False)
        if not isinstance(value, list):
            raise self._bad(key, "a list", value)
        return value

    def obj(self, key: str, default: Any = None) -> Any:
        value = self._get(key, default, False)
        if value is not None and not isinstance(value, Mapping):
            raise self._bad(key, "an object", value)
        return value

    def done(self) -> None:
        """Refuse keys this version does not know (a typo in a hand-edited file, say)."""
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise SessionError(f"{self.where} has unknown field(s): {', '.join(unknown)}")


def check_relative_path(value: str, where: str) -> str:
    """A path stored in session.json: relative, '/'-separated, inside the session folder."""
    parts = value.split("/")
    if not value or value.startswith("/") or "\\" in value or ":" in parts[0] or ".." in parts:
        raise SessionError(f"{where} must be a path inside the session folder, got {value!r}")
    return value


def check_text(value: Any, where: str, limit: int | None = None) -> str:
    """Text that can be saved (no lone surrogates), at most ``limit`` characters."""
    with as_session_error():
        return limits.check_text(value, where, limit)


def check_number(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite int or float (not a bool) from ``low`` to ``high``, as float."""
    with as_session_error():
        return limits.check_number(value, where, low, high)


def check_seed(seed: Any, where: str = "seed") -> int:
    with as_session_error():
        return limits.check_seed(seed, where)


def opt_size(r: Reader, key: str) -> tuple[int, int] | None:
    value = r.raw(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise SessionError(f"{r.where}.{key} must be [width, height] or null, got {value!r}")
    try:
        return limits.check_panel_size(value)
    except ValueError as exc:
        raise SessionError(f"{r.where}.{key}: {exc}") from None



def opt_path(r: Reader, key: str) -> str | None:
    value = r.opt_text(key)
    return None if value is None else check_relative_path(value, f"{r.where}.{key}")

