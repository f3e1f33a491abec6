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
]

# Single modules imported by name at run time (importlib), or by code PyInstaller never sees.
HIDDEN_IMPORTS = [
    "qasync",
    "controlnet_aux.canny",  # loaded under a private package name (engine/control.py)
    "controlnet_aux.util",
    "PySide6.QtSvg",  # the SVG icon engine and image format plugins need it
]

# Packages whose compiled operator libraries are loaded by path (torch.ops.load_library), which
# PyInstaller does not follow: torchvision's _C_stable (nms and the other ops; transformers' image
# processors need them registered).
COLLECT_LIBRARIES = ["torchvision"]
LIBRARY_PATTERNS = ["*.so", "*.pyd", "*.dylib"]

# Data files (JSON configs, tokenizer files, templates) shipped inside these packages.
COLLECT_DATA = ["stylealigned_desktop", "diffusers", "transformers", "controlnet_aux",
                "fpdf"]  # fpdf2's sRGB colour profile

# Distributions whose metadata is read at run time (importlib.metadata version checks in
# diffusers/transformers/huggingface_hub), with their requirements.
COPY_METADATA = [
    "diffusers", "transformers", "accelerate", "huggingface_hub", "safetensors", "tokenizers",
    "torch", "torchvision", "controlnet_aux", "pillow", "numpy", "tqdm", "platformdirs", "qasync",
]

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
