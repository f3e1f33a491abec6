"""Libraries that fail to load the way they do in a frozen build that left part of one out, for
tests: a package imported lazily through diffusers' own ``_LazyModule`` (as diffusers imports its
pipelines) whose module imports a second package, which reads a data file next to its modules at
import and does not find it (as kernels' ``_internals/python_deps.py`` does under transformers 5).
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

LAZY_INIT = """
import sys
from diffusers.utils.import_utils import _LazyModule

sys.modules[__name__] = _LazyModule(__name__, globals()["__file__"], {"pipeline": ["Pipeline"]},
                                    module_spec=__spec__)
"""

READS_ITS_DATA = """
import json
from pathlib import Path

try:
    with open(Path(__file__).parent / "depends.json") as f:
        DEPENDS = json.load(f)
except FileNotFoundError:
    raise FileNotFoundError("Cannot load dependency data, is `{dep}` correctly installed?")
"""


READS_ITS_DATA_UNGUARDED = """
import json
from pathlib import Path

DEPENDS = json.loads((Path(__file__).parent / "depends.json").read_text())
"""


def write_broken_libraries(folder: Path, lazy: str, dep: str, data_missing: bool = True,
                           guarded: bool = True) -> None:
    """``lazy`` (a diffusers-style lazy package whose ``Pipeline`` lives in ``lazy.pipeline``,
    which imports ``dep``) and ``dep`` (whose ``_internals.deps`` reads ``depends.json`` at
    import). ``data_missing=False`` leaves ``dep`` out altogether instead (a module not found);
    ``guarded=False``: ``dep`` does not catch the error, which passes through the lazy package."""
    (folder / lazy).mkdir(parents=True)
    (folder / lazy / "__init__.py").write_text(textwrap.dedent(LAZY_INIT))
    (folder / lazy / "pipeline.py").write_text(f"import {dep}._internals.deps\n\nclass Pipeline:\n    pass\n")
    if data_missing:
        (folder / dep / "_internals").mkdir(parents=True)
        (folder / dep / "__init__.py").write_text("")
        (folder / dep / "_internals" / "__init__.py").write_text("")
        (folder / dep / "_internals" / "deps.py").write_text(
            READS_ITS_DATA.format(dep=dep) if guarded else READS_ITS_DATA_UNGUARDED)


def load_pipeline_class(lazy: str):
    """What the engine does when it loads a model: take the pipeline class from the lazy package
    (raises diffusers' RuntimeError "Failed to import ... (look up to see its traceback)")."""
    return importlib.import_module(lazy).Pipeline


def forget(*packages: str) -> None:
    for name in list(sys.modules):
        if name.partition(".")[0] in packages:
            del sys.modules[name]
