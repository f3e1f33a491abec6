"""The layering rules: session/ imports neither Qt nor torch; engine/ never imports Qt and
holds no command-line code (argument parsing, printing, exiting).

Each package's modules are found by globbing its folder, so new modules are covered, and
imported in a fresh interpreter, so nothing imported by other tests hides a violation.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

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
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "PySide6", "shiboken6"))
print(json.dumps({"failed": failed, "loaded": loaded}))
"""


def modules_of(package: str) -> list[str]:
    folder = PACKAGE_DIR / package
    names = [f"stylealigned_desktop.{package}"]
    names += [f"stylealigned_desktop.{package}.{f.stem}" for f in sorted(folder.glob("*.py"))
              if f.stem != "__init__"]
    return names


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
