"""What the frozen build (stylealigned-desktop.spec) collects, as plain data.

The spec reads these lists; tests/test_packaging.py checks that every name resolves in the
development environment, so a renamed module or a dropped dependency fails CI instead of
producing a build that crashes on first use.
"""

APP_ID = "io.github.stylealigned.Desktop"  # desktop file, AppStream id, icon name, bundle id
BUNDLE_NAME = "StyleAlignedDesktop"  # the dist/ folder and the macOS .app

# (executable name, entry script under packaging/entry/, console window?)
EXECUTABLES = [
    ("stylealigned-desktop", "stylealigned_desktop_window.py", False),
    ("stylealigned", "stylealigned_cli.py", True),
]

# Packages whose every submodule is collected: they import their parts lazily (diffusers and
# transformers resolve classes by name from model_index.json / config.json at load time), so
# static analysis of the app's imports misses them.
COLLECT_SUBMODULES = [
    "stylealigned_desktop",
    "diffusers",
    "transformers.models.auto",
    "transformers.models.clip",  # SDXL text encoders and tokenizers, CLIP score
    "transformers.models.dpt",  # depth estimator (Intel/dpt-hybrid-midas)
    "transformers.models.vit",  # DINO set consistency (facebook/dino-vitb8), DPT's hybrid backbone
    # CUDA Python: torch imports cuda.bindings (torch.cuda.gds); its compiled modules import
    # cuda.bindings._internal.* and cuda.pathfinder, which PyInstaller cannot see in a .so.
    "cuda.bindings",
    "cuda.pathfinder",
]

# Single modules imported by name at run time (importlib), or by code PyInstaller never sees.
HIDDEN_IMPORTS = [
    "qasync",
    "controlnet_aux.canny",  # loaded under a private package name (engine/control.py)
    "controlnet_aux.util",
    "PySide6.QtSvg",  # the SVG icon engine and image format plugins need it
]

# Packages whose compiled modules import other modules as they load (packaging/compiled_imports.py
# lists those imports; PyInstaller reads only Python source, so it sees none of them), and the
# PyInstaller hook that names what they import. tests/test_packaging.py fails on a module a
# compiled module imports that neither COLLECT_SUBMODULES, HIDDEN_IMPORTS nor this covers.
COMPILED_IMPORTS_LEFT_TO_HOOKS = {
    "PySide6": "PyInstaller's PySide6 hooks name each Qt module's Qt dependencies",
    "torch": "hooks-contrib's torch hook collects every torch submodule",
    "numpy": "PyInstaller's numpy hook names what numpy._core's compiled module imports; "
             "numpy.random's Cython modules import modules its __init__ imports",
    "scipy": "PyInstaller's scipy hooks (hook-scipy.*.py) name what its Cython modules import",
    "av": "hooks-contrib's av hook collects every PyAV submodule",
    "charset_normalizer": "its Python modules import these too (charset_normalizer.api); "
                          "hooks-contrib's hook adds its mypyc runtime",
    "_cffi_backend": "hooks-contrib's cryptography hook names it",
}

# Packages whose compiled operator libraries are loaded by path (torch.ops.load_library), which
# PyInstaller does not follow: torchvision's _C_stable (nms and the other ops; transformers' image
# processors need them registered).
COLLECT_LIBRARIES = ["torchvision"]
LIBRARY_PATTERNS = ["*.so", "*.pyd", "*.dylib"]

# Packages whose files other than code are read at run time, collected with their data:
# transformers and diffusers (configs, templates), controlnet_aux (ZoeDepth configs), kernels
# (transformers imports it; kernels/_internals/python_depends.json is read at import: without it
# every model load fails), fpdf2 (its sRGB colour profile), opentimelineio (its adapters'
# plugin manifest, read when a timeline is written), the app's own resources.
COLLECT_DATA = ["stylealigned_desktop", "diffusers", "transformers", "controlnet_aux", "kernels",
                "fpdf", "opentimelineio"]

# Every other package of the app's dependencies that ships files other than code next to its
# modules, and why the build does not collect them here. tests/test_packaging.py fails on a
# package that is in neither list, so a dependency that starts shipping data (as kernels did
# with transformers 5) is decided on before a build leaves its files out.
DATA_LEFT_OUT = {
    "torch": "PyInstaller's torch hook collects what torch reads; the rest are C++ headers",
    "torchgen": "torch's code generator (headers, YAML): never imported by the app",
    "PySide6": "PySide6's hooks collect the Qt plugins, translations and resources",
    "shiboken6": "C++ headers and CMake files for building bindings",
    "numpy": "numpy's hook collects what numpy needs; these are C headers, f2py sources, tests",
    "scipy": "PyInstaller's scipy hooks collect what scipy needs; these are tests and Cython sources",
    "skimage": "hooks-contrib's skimage hook collects the .pyi stubs lazy_loader reads; the "
               "sample pictures are never used",
    "cv2": "PyInstaller's cv2 hook collects its config files; these are licence texts",
    "certifi": "PyInstaller's certifi hook collects cacert.pem",
    "nvidia": "CUDA headers and licences next to the CUDA libraries (the libraries are collected)",
    "cuda": "CUDA Python's Cython declarations (.pxd) and a README",
    "triton": "excluded from the build (see EXCLUDES)",
    "huggingface_hub": "model and dataset card templates: only used to write cards",
    "fontTools": "the C sources of its compiled modules, a README and py.typed: nothing it reads when "
                 "fpdf2 subsets a font",
    "peft": "BOFT's CUDA sources, compiled only for BOFT adapters (the app loads LoRAs)",
    "timm": "ImageNet class names (timm.data.ImageNetInfo): never asked for by the app",
    "tokenizers": "the notebook visualiser's CSS",
    "tqdm": "shell completion and man page",
    "urllib3": "a JavaScript worker for Pyodide",
    "markdown_it": "port notes (a YAML file no code reads)",
    "typer": "typer's licence and agent notes (a CLI library huggingface_hub's commands use)",
    "networkx": "test data",
    "sympy": "parser grammars (LaTeX, Autolev) and test examples: torch uses sympy for "
             "symbolic shapes, never its parsers",
    "markupsafe": "the C source of its compiled speed-ups",
    "av": "PyAV's Cython declarations (.pxd); its compiled modules and FFmpeg libraries are "
          "collected as binaries",
    "setuptools": "setuptools' own launchers and templates: a build tool, not run by the app",
}

# Packages collected as source too (`pyz+py`): they read their own source at run time (inspect).
KEEP_SOURCE = ["diffusers", "transformers"]

# What the app never imports: test runners and libraries' test helpers, notebooks, plotting,
# other GUI toolkits, and triton (torch.compile's GPU code generator, ~0.9 GB: the app runs
# eager; CUDA inference does not need it). torch.testing._internal stays: torch's own modules
# import it at run time.
EXCLUDES = [
    "pytest", "_pytest", "pytestqt", "ruff", "IPython", "jupyter", "notebook", "matplotlib",
    "tkinter", "_tkinter", "PyQt5", "PyQt6", "PySide2",
    "torch.utils.tensorboard", "tensorboard", "triton",
    "transformers.testing_utils", "diffusers.utils.testing_utils",
    "tests",
]

# Qt plugins the window needs on Linux: a desktop session (xcb, wayland) and headless (offscreen).
QT_PLATFORMS = ["xcb", "wayland", "offscreen"]


def app_requirements(pyproject) -> list[str]:
    """The distributions pyproject.toml's ``dependencies`` name that apply to this Python and
    platform (markers evaluated, extras left out).

    The spec copies their metadata and their requirements' (recursively): libraries read it at
    run time (transformers asks importlib.metadata whether torch, accelerate, kernels... are
    installed, and treats a missing record as "not installed"; kernels reads its own version;
    entry points live there too). Derived, not listed, so a new dependency is covered."""
    from pathlib import Path

    import tomllib
    from packaging.requirements import Requirement

    with Path(pyproject).open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    requirements = [Requirement(text) for text in dependencies]
    return [r.name for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
