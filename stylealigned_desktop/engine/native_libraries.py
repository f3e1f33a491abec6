"""Loading torch's native libraries without holding Python's GIL, before ``import torch``.

``import torch`` loads libtorch_cpu (and, in a CUDA build, libtorch_cuda with the CUDA
libraries) through Python's import of ``torch._C``, which holds the GIL while the dynamic
linker maps them and runs their static initialisers: a few hundred ms in which no other Python
thread runs. A window that warms the engine up in a worker thread felt that as a stall (issue
30, item 12). A call through ``ctypes.CDLL`` releases the GIL, so calling the C library's own
``dlopen`` that way does the same work while the window's thread keeps running; the later
``import torch`` finds the libraries loaded and only initialises its Python module.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

TORCH_LIBRARIES = ("libc10.so", "libtorch_cpu.so", "libtorch.so")
"""In dependency order; libtorch.so brings libtorch_cuda.so in a CUDA build."""


def library_files() -> list[Path]:
    """torch's shared libraries that exist in this installation (none off Linux)."""
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return []
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return []
    folder = Path(spec.origin).parent / "lib"
    return [folder / name for name in TORCH_LIBRARIES if (folder / name).is_file()]


def load_without_the_gil() -> list[Path]:
    """dlopen torch's libraries through ctypes (the GIL released); returns those loaded.

    Local binding, as torch's own import does; a library that fails to load is left to
    ``import torch``, which then reports it as it always does.
    """
    files = library_files()
    if not files:
        return []
    try:
        dlopen = ctypes.CDLL(None).dlopen
    except (OSError, AttributeError):
        return []
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    loaded = []
    for file in files:
        if not dlopen(os.fsencode(file), os.RTLD_NOW | os.RTLD_LOCAL):
            log.info("could not preload %s; import torch loads it", file.name)
            break
        loaded.append(file)
    return loaded
