"""Which library failed to load, told so that an artist can act on it or report it.

diffusers and transformers import their parts lazily and wrap a failure as ``RuntimeError("Failed
to import diffusers.pipelines... because of the following error (look up to see its traceback):
...")``, which names neither the package at fault nor what to do. The package at fault is the one
whose code raised the first error of the chain: a missing module's package, or the module that
was being imported when it failed (kernels reading a data file a frozen build left out, a
compiled library that will not load).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from types import TracebackType

from . import __version__

REPORT_URL = "https://github.com/stylealigned/stylealigned-desktop/issues"


@dataclass(frozen=True)
class LibraryFailure:
    package: str
    """The import name of the package at fault, e.g. ``kernels``."""
    distribution: str
    """What pip calls it (``opencv-python-headless`` for ``cv2``); the import name if unknown."""
    error: str
    """The first error of the chain, ``FileNotFoundError: Cannot load dependency data, ...``."""


def library_failure(exc: BaseException) -> LibraryFailure | None:
    """The library that failed to load if ``exc`` comes from a failed import, else None."""
    chain = _chain(exc)
    if not any(isinstance(e, ImportError) or _raised_while_importing(e) for e in chain):
        return None
    first = chain[-1]
    package = _package_at_fault(first) or _package_at_fault(exc)
    if package is None:
        return None
    text = str(first).strip().splitlines()
    return LibraryFailure(package, _distribution(package),
                          f"{type(first).__name__}: {text[0]}" if text else type(first).__name__)


def describe_library_failure(failure: LibraryFailure, frozen: bool | None = None) -> str:
    """One message: which library, the error, and what to do (report it for an installed app,
    whose build left the library out; reinstall it for a pip installation)."""
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    said = (f"The library '{failure.distribution}' could not be loaded "
            f"({failure.error}).")
    if frozen:
        return (f"{said} This copy of StyleAligned Desktop {__version__} was built without part of "
                f"'{failure.package}': please report it at {REPORT_URL} with this message and "
                f"your system.")
    return (f"{said} Its installation may be damaged or incomplete: pip install --force-reinstall "
            f"{failure.distribution}; if that does not help, please report it at {REPORT_URL}.")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _frames(tb: TracebackType | None) -> list[str]:
    """The module names of a traceback's frames, outermost first."""
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return names


def _raised_while_importing(exc: BaseException) -> bool:
    """Whether a module's top-level code was running when ``exc`` was raised (its traceback
    passes through a ``<module>`` frame: the frame that caught it is above any entry script)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "<module>":
            return True
        tb = tb.tb_next
    return False


def _package_at_fault(exc: BaseException) -> str | None:
    name = None
    if isinstance(exc, ImportError):  # the import system sets name; a hand-raised one may not
        named = re.search(r"No module named '([\w.]+)'", str(exc))
        name = exc.name or (named.group(1) if named else None)
    if name and _not_stdlib(name):
        return name.partition(".")[0]  # the missing module's (or failing extension's) package
    for module in reversed(_frames(exc.__traceback__)):  # innermost first
        if module and _not_stdlib(module):
            return module.partition(".")[0]
    return None


def _not_stdlib(module: str) -> bool:
    top = module.partition(".")[0]
    return top not in sys.stdlib_module_names and top not in ("__main__", "_frozen_importlib")


def _distribution(package: str) -> str:
    from importlib.metadata import packages_distributions

    try:
        names = packages_distributions().get(package)
    except Exception:  # noqa: BLE001  broken metadata must not hide the first error
        names = None
    return names[0] if names else package
