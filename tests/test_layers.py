"""The layering rules: session/ and export/ import neither Qt nor torch; engine/ never imports Qt and
holds no command-line code (argument parsing, printing, exiting); neither imports Ray or the
server's HTTP code; the server's client side needs neither Ray nor torch; no module imports,
even indirectly, a module that imports it back.

Each package's modules are found by walking its folder (subpackages too), so new modules are
covered, and imported in a fresh interpreter, so nothing imported by other tests hides a violation. Import
cycles are found by reading every module's import statements (``ast``, including imports
inside functions, where a cycle usually hides) and looking for strongly connected components
of the import graph.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx

import stylealigned_desktop

PACKAGE_DIR = Path(stylealigned_desktop.__file__).parent

PROBE = """
import importlib, json, sys
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "PySide6", "shiboken6", "ray",
                                                              "fastapi", "starlette", "uvicorn", "httpx2"))
print(json.dumps({"failed": failed, "loaded": loaded}))
"""


def modules_of(package: str) -> list[str]:
    """Every module of ``stylealigned_desktop.<package>``, its subpackages' included."""
    prefix = f"stylealigned_desktop.{package}"
    return [name for name in module_files(PACKAGE_DIR.parent, PACKAGE_DIR.name)
            if name == prefix or name.startswith(f"{prefix}.")]


def import_in_fresh_interpreter(modules: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_session_imports_neither_qt_nor_torch():
    modules = modules_of("session")
    assert "stylealigned_desktop.session.model" in modules
    report = import_in_fresh_interpreter(modules)
    assert report["failed"] == {}
    assert report["loaded"] == [], f"the session layer pulled in {report['loaded'][:5]}"


def test_export_imports_neither_qt_nor_torch():
    """The deliverables (PDF, animatic, timeline) are made by the CLI without Qt, and neither
    needs torch."""
    modules = modules_of("export")
    assert "stylealigned_desktop.export.pdf" in modules
    report = import_in_fresh_interpreter(modules + ["stylealigned_desktop.cli.export"])
    assert report["failed"] == {}
    assert report["loaded"] == [], f"the export package pulled in {report['loaded'][:5]}"


SERVER_SIDE = ("ray", "fastapi", "starlette", "uvicorn")


def test_the_engine_imports_no_server_code():
    report = import_in_fresh_interpreter(modules_of("engine"))
    assert report["failed"] == {}
    server = [m for m in report["loaded"] if m.split(".")[0] in SERVER_SIDE]
    assert server == [], f"the engine pulled in {server[:5]}"


def test_the_server_client_needs_neither_ray_nor_torch():
    """The desktop app and the CLI talk to a server without Ray (and without torch)."""
    modules = [f"stylealigned_desktop.server.{name}" for name in ("wire", "auth", "sharding", "client")]
    report = import_in_fresh_interpreter(modules)
    assert report["failed"] == {}
    heavy = [m for m in report["loaded"] if m.split(".")[0] in SERVER_SIDE + ("torch",)]
    assert heavy == [], f"the client side pulled in {heavy[:5]}"


def test_the_command_line_and_the_desktop_app_need_no_ray():
    """Only ``stylealigned serve`` imports Ray (when it runs): every other command, ``--help`` and
    the window work without the ``[server]`` extra."""
    modules = [m for m in modules_of("cli") + modules_of("ui") if not m.endswith("__main__")]
    assert "stylealigned_desktop.cli.serve" in modules
    report = import_in_fresh_interpreter(modules)
    assert report["failed"] == {}
    server = [m for m in report["loaded"] if m.split(".")[0] in SERVER_SIDE]
    assert server == [], f"the command line or the app pulled in {server[:5]}"


def test_engine_never_imports_qt():
    modules = modules_of("engine")
    assert "stylealigned_desktop.engine.request" in modules
    report = import_in_fresh_interpreter(modules)
    assert report["failed"] == {}
    qt = [m for m in report["loaded"] if m.split(".")[0] in ("PySide6", "shiboken6")]
    assert qt == [], f"the engine pulled in {qt[:5]}"


def test_engine_data_types_stay_light():
    """The modules the session layer uses must not pull in torch either."""
    report = import_in_fresh_interpreter([
        "stylealigned_desktop.engine",
        "stylealigned_desktop.engine.request",
        "stylealigned_desktop.engine.settings",
        "stylealigned_desktop.engine.images",
    ])
    assert report["failed"] == {}
    assert report["loaded"] == []


COMMAND_LINE_MODULES = {"argparse", "optparse", "getopt", "click", "typer", "tqdm"}
"""Modules only a command line (or a terminal) needs: they belong in cli/."""


def command_line_code(source: str) -> list[str]:
    """Argument parsing, printing, terminal output and exiting in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [f"line {line}: imports {name}" for name in names
                  if name.split(".")[0] in COMMAND_LINE_MODULES]
        if isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            if called in ("print", "exit", "quit", "sys.exit", "os._exit", "pprint.pprint",
                          "sys.stdout.write", "sys.stderr.write"):
                found.append(f"line {line}: calls {called}")
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if ast.unparse(raised) == "SystemExit":
                found.append(f"line {line}: raises SystemExit")
        if isinstance(node, ast.Compare) and ast.unparse(node) in (
                "__name__ == '__main__'", "__name__ == \"__main__\""):
            found.append(f"line {line}: runs as a script")
    return found


def test_command_line_code_is_recognised():
    """The check itself: each kind of command-line code is caught, ordinary code is not."""
    source = """
import argparse
from tqdm import tqdm
def main(argv):
    print("hello")
    sys.exit(2)
    raise SystemExit(main())
if __name__ == "__main__":
    main()
def fine(x):
    message = f"print({x})"
    return x.exit_code
"""
    assert sorted(command_line_code(source)) == [
        "line 2: imports argparse", "line 3: imports tqdm", "line 5: calls print",
        "line 6: calls sys.exit", "line 7: raises SystemExit", "line 8: runs as a script"]


def test_engine_holds_no_command_line_code():
    """Parsing arguments, printing and exiting belong to cli/; the engine reports events."""
    engine = PACKAGE_DIR / "engine"
    found = {f"engine/{path.name}": entries
             for path in sorted(engine.glob("*.py"))
             if (entries := command_line_code(path.read_text(encoding="utf-8")))}
    assert found == {}


# --- import cycles ----------------------------------------------------------------------------


def module_files(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """``{dotted module name: (file, is a package __init__)}`` for every module of ``package``
    (a folder directly under ``root``)."""
    found = {}
    for file in sorted((root / package).rglob("*.py")):
        parts = list(file.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (file, is_package)
    return found


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for annotations only."""
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_statements(tree: ast.AST, annotations: bool = False):
    """Every import statement, at any depth (functions too), except those only type
    checkers run (unless ``annotations``)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif _is_type_checking(child) and not annotations:
            for other in child.orelse:
                yield from import_statements(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from import_statements(child, annotations)


def imported_modules(file: Path, name: str, is_package: bool, known: set[str],
                     annotations: bool = False) -> set[str]:
    """The modules of ``known`` that the module ``name`` (in ``file``) imports when it runs
    (and, with ``annotations``, for type checkers only)."""
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    for node in import_statements(tree, annotations):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                if f"{module}.{alias.name}" in known:  # from package import submodule
                    found.add(f"{module}.{alias.name}")
                elif module in known:
                    found.add(module)
    found.discard(name)
    return found


def import_graph(root: Path, package: str, annotations: bool = False) -> nx.DiGraph:
    modules = module_files(root, package)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, (file, is_package) in modules.items():
        graph.add_edges_from((name, other) for other in
                             imported_modules(file, name, is_package, set(modules), annotations))
    return graph


def import_cycles(root: Path, package: str, annotations: bool = False) -> list[list[str]]:
    """Groups of modules that import each other (directly or through others), sorted."""
    components = nx.strongly_connected_components(import_graph(root, package, annotations))
    return sorted(sorted(c) for c in components if len(c) > 1)


def test_no_module_imports_itself_back():
    assert import_cycles(PACKAGE_DIR.parent, PACKAGE_DIR.name) == []


def test_no_module_imports_itself_back_even_for_annotations():
    """The storyboard's panel card imported the view for its annotations while the view imported
    the card; now the view owns its cards and they signal upward."""
    assert import_cycles(PACKAGE_DIR.parent, PACKAGE_DIR.name, annotations=True) == []


def write_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    """The old session model <-> store cycle: the store built the model at the top, the model
    imported the store inside ``save()``."""
    write_package(tmp_path, {
        "app/__init__.py": "",
        "app/session/__init__.py": "",
        "app/session/store.py": "from .model import Session\n",
        "app/session/model.py": "from . import folders\n\nclass Session:\n    def save(self):\n"
                                "        from .store import save_session\n",
        "app/session/folders.py": "import os\n",
        "app/session/autosave.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from .store import Session\n",  # for annotations only
    })
    assert import_cycles(tmp_path, "app") == [["app.session.model", "app.session.store"]]
    write_package(tmp_path, {"app/session/model.py": "from . import autosave\n"})
    assert import_cycles(tmp_path, "app") == []
    assert import_cycles(tmp_path, "app", annotations=True) == [  # autosave's annotations
        ["app.session.autosave", "app.session.model", "app.session.store"]]


def test_the_cycle_finder_follows_every_import_form_across_packages(tmp_path):
    write_package(tmp_path, {
        "app/__init__.py": "",
        "app/paths.py": "from .session import folders\n",          # from package import module
        "app/session/__init__.py": "",
        "app/session/folders.py": "from .. import autosave_root\n",  # a name of a package
        "app/autosave_root/__init__.py": "import app.ui.window\n",    # absolute import
        "app/ui/__init__.py": "",
        "app/ui/window.py": "from app.paths import data_dir\n",       # a name of a module
        "app/ui/other.py": "from app.ui import window\n",             # imports in, not back
    })
    assert import_cycles(tmp_path, "app") == [
        ["app.autosave_root", "app.paths", "app.session.folders", "app.ui.window"]
    ]


# --- the window's parts -----------------------------------------------------------------------

UI_PARTS_MAY_IMPORT = {
    "support": set(),
    "threads": {"support"},
    "gallery": {"support", "threads"},
    "storyboard": {"support", "threads"},
    "settings": {"support", "threads"},
    "grid": {"support", "threads"},
    "dialogs": {"support", "threads"},
    "window": {"support", "threads", "gallery", "storyboard", "settings", "grid", "dialogs"},
}
"""Which ``ui`` subpackages each one may import (docs/architecture.md, "The window's parts").
Modules at ``ui``'s top (``app``) may import any."""


def ui_part_imports(root: Path, package: str, ui: str) -> list[tuple[str, str, str | None, str]]:
    """(importer, its part, imported module, the part it belongs to) for every import from a
    module of the package ``ui`` (dotted, inside ``package``) of a module of one of its
    subpackages (a "part"). A module at ``ui``'s top has the part None."""
    modules = module_files(root, package)
    parts = {name.rsplit(".", 1)[1] for name, (_, is_package) in modules.items()
             if is_package and name.rsplit(".", 1)[0] == ui}

    def part_of(name: str) -> str | None:
        inside = name[len(ui) + 1:].split(".")[0] if name.startswith(f"{ui}.") else None
        return inside if inside in parts else None

    return [(importer, part_of(importer), imported, part_of(imported))
            for importer, imported in sorted(import_graph(root, package).edges)
            if importer.startswith(f"{ui}.") and part_of(imported) is not None]


def reaches_into_other_parts(root: Path, package: str, ui: str) -> list[str]:
    """Imports of a module inside another part: only a part's ``__init__`` (its public names)
    is for the others."""
    return [f"{importer} imports {imported}"
            for importer, own, imported, part in ui_part_imports(root, package, ui)
            if part != own and imported != f"{ui}.{part}"]


def imports_against_the_parts_order(root: Path, package: str, ui: str,
                                    may_import: dict[str, set[str]]) -> list[str]:
    return sorted({f"{own} imports {part}"
                   for _, own, _, part in ui_part_imports(root, package, ui)
                   if own is not None and part != own and part not in may_import.get(own, ())})


def test_ui_parts_use_each_other_only_through_their_init():
    ui = f"{PACKAGE_DIR.name}.ui"
    assert "stylealigned_desktop.ui.storyboard.card" in modules_of("ui")  # subpackages are seen
    assert reaches_into_other_parts(PACKAGE_DIR.parent, PACKAGE_DIR.name, ui) == []


def test_ui_parts_import_only_the_parts_below_them():
    ui = f"{PACKAGE_DIR.name}.ui"
    found = {name.split(".")[2] for name in modules_of("ui") if name.count(".") >= 3}
    assert found == set(UI_PARTS_MAY_IMPORT), "a ui subpackage is missing from UI_PARTS_MAY_IMPORT"
    assert imports_against_the_parts_order(PACKAGE_DIR.parent, PACKAGE_DIR.name, ui,
                                           UI_PARTS_MAY_IMPORT) == []


def test_the_parts_check_finds_imports_of_another_parts_insides(tmp_path):
    write_package(tmp_path, {
        "app/__init__.py": "",
        "app/ui/__init__.py": "",
        "app/ui/main.py": "from .board import Board\nfrom .board.card import Card\n",  # top: any face
        "app/ui/support/__init__.py": "from .theme import icon\n",
        "app/ui/support/theme.py": "icon = None\n",
        "app/ui/board/__init__.py": "from .view import Board\nfrom .card import Card\n",
        "app/ui/board/card.py": "from ..support import icon\n\nclass Card: ...\n",  # a face
        "app/ui/board/view.py": "from .card import Card\nfrom ..support.theme import icon\n"
                                "class Board: ...\n",
        "app/ui/gallery/__init__.py": "",
        "app/ui/gallery/strip.py": "def strip():\n    from app.ui.board import card\n"
                                   "    from app.ui import support\n",
    })
    assert reaches_into_other_parts(tmp_path, "app", "app.ui") == [
        "app.ui.board.view imports app.ui.support.theme",
        "app.ui.gallery.strip imports app.ui.board.card",
        "app.ui.main imports app.ui.board.card",
    ]
    order = {"support": set(), "board": {"support"}, "gallery": {"support"}}
    assert imports_against_the_parts_order(tmp_path, "app", "app.ui", order) == [
        "gallery imports board"]
