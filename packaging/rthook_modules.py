"""Runtime hook of the frozen build (PyInstaller runs it before either entry script) for
packaging/smoke.sh's module check. It does nothing unless one of its variables is set:

STYLEALIGNED_RECORD_MODULES=FILE   when the program exits, append to FILE the modules it
                                   imported (one name a line, in import order; what was loaded
                                   before this hook ran is left out)
STYLEALIGNED_IMPORT_MODULES=FILE   when the program exits, import each module FILE names, print
                                   those that fail with their error, exit 1 if one did (at exit,
                                   not here: some libraries cannot be imported before the program
                                   has started, e.g. transformers.processing_utils in a frozen build)

packaging/unfrozen.py runs this same hook before an entry script from source, so the smoke
records what the unfrozen app imports in the same runs and checks that all of it imports here.
"""

import os


def _record_modules(path: str) -> None:
    import atexit
    import sys

    loaded_before = set(sys.modules)

    def write() -> None:  # registered first, so it runs after every other exit handler
        names = [name for name, module in list(sys.modules.items())
                 if module is not None and name not in loaded_before]
        with open(path, "a", encoding="utf-8") as file:
            file.writelines(f"{name}\n" for name in names)

    atexit.register(write)


def _import_modules(path: str) -> None:
    import atexit

    # The list is imported at exit, after threading has shut down and refuses new exit handlers;
    # concurrent.futures' thread pool registers one when first imported (torch, diffusers and
    # others import it), so it would fail there, unfrozen as in the frozen folder.
    import concurrent.futures.thread  # noqa: F401

    def check() -> None:  # registered first, so it runs after every other exit handler
        import importlib

        with open(path, encoding="utf-8") as file:
            names = [line.strip() for line in file if line.strip()]
        failed = []
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException as error:  # noqa: BLE001  a module calling sys.exit fails too
                failed.append(f"{name}: {type(error).__name__}: {error}")
        for line in failed:
            print(f"not importable: {line}", flush=True)
        print(f"{len(names) - len(failed)} of {len(names)} modules imported", flush=True)
        os._exit(1 if failed else 0)  # the program's own exit code is not what is checked

    atexit.register(check)


if os.environ.get("STYLEALIGNED_RECORD_MODULES"):
    _record_modules(os.environ["STYLEALIGNED_RECORD_MODULES"])
if os.environ.get("STYLEALIGNED_IMPORT_MODULES"):
    _import_modules(os.environ["STYLEALIGNED_IMPORT_MODULES"])
