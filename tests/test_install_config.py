"""The install configuration: setuptools sees every resource folder as declared, so a fresh
``make setup`` prints no "absent from the `packages` configuration" warnings, and every shipped
resource file lands in the built package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_build_ships_every_resource_file_without_setuptools_warnings(tmp_path):
    pytest.importorskip("setuptools")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "stylealigned_desktop", project / "stylealigned_desktop",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "lib"
    done = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()",
                           "build_py", "--build-lib", str(out)],
                          cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "absent from the `packages` configuration" not in done.stderr + done.stdout
    assert "Warning" not in done.stderr, done.stderr
    shipped = _files(out / "stylealigned_desktop" / "resources")
    assert shipped == _files(ROOT / "stylealigned_desktop" / "resources")
    assert not (out / "tests").exists() and not (out / "benchmarks").exists()
