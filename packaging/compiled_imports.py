"""Which modules do compiled modules import? PyInstaller's analysis reads the imports of Python
source only; a Cython or pyo3 module that imports another module at its initialisation (as
cuda-bindings' do: cuda.bindings._internal.utils, cuda.pathfinder) leaves that module out of the
build unless a hook or bundle.py names it. This imports the app's modules and the library
classes it loads at run time, and prints each such import as ``IMPORTER IMPORTED``.

    python packaging/compiled_imports.py        (tests/test_packaging.py checks its output)
"""

import importlib
import pkgutil
import sys
from importlib.machinery import ExtensionFileLoader


class CompiledImports:
    """A meta path finder that finds nothing: it notes imports made while an extension module
    initialises (no Python frame between the import machinery and that module's loader)."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str]] = set()

    def find_spec(self, name, path=None, target=None):
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            loader = frame.f_locals.get("self")
            if frame.f_code.co_name in ("exec_module", "create_module") \
                    and isinstance(loader, ExtensionFileLoader):
                self.pairs.add((loader.name, name))
                break
            frame = frame.f_back
        return None


def import_what_the_app_loads() -> None:
    """The app's modules (the server's aside: Ray is not in the build) and what the engine,
    the evaluation and the exports import inside functions."""
    import stylealigned_desktop

    for module in pkgutil.walk_packages(stylealigned_desktop.__path__, "stylealigned_desktop."):
        if ".server" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    from stylealigned_desktop.engine.control import _canny_detector_class

    _canny_detector_class()
    for name in ("diffusers.StableDiffusionXLPipeline", "diffusers.StableDiffusionXLControlNetPipeline",
                 "diffusers.ControlNetModel", "transformers.CLIPModel",
                 "transformers.DPTForDepthEstimation", "transformers.ViTModel",
                 "torchvision.models.inception_v3", "accelerate.hooks.CpuOffload",
                 "safetensors.torch.load_file", "peft.LoraConfig", "fpdf.FPDF",
                 "opentimelineio.adapters", "av.open"):
        module, _, attribute = name.rpartition(".")
        getattr(importlib.import_module(module), attribute)


if __name__ == "__main__":
    watch = CompiledImports()
    sys.meta_path.insert(0, watch)
    import_what_the_app_loads()
    for importer, imported in sorted(watch.pairs):
        print(importer, imported)
