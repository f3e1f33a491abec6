"""The layering rules: session/ imports neither Qt nor torch; engine/ never imports Qt; neither
imports Ray or the server's HTTP code; the server's client side needs neither Ray nor torch.

Each package's modules are found by globbing its folder, so new modules are covered, and
imported in a fresh interpreter, so nothing imported by other tests hides a violation.
"""

from __future__ import annotations

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
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "PySide6", "shiboken6", "ray",
                                                              "fastapi", "starlette", "uvicorn", "httpx2"))
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
