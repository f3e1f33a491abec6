"""Packaging files parse and point at what exists."""

import configparser
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_desktop_entry_and_appstream_metadata():
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(ROOT / "packaging" / "stylealigned-desktop.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Exec"].split()[0] == "stylealigned-desktop"
    meta = ET.parse(ROOT / "packaging" / "io.github.stylealigned.Desktop.metainfo.xml").getroot()
    assert meta.findtext("id") == desktop["Icon"]
    assert meta.find("launchable").text == "stylealigned-desktop.desktop"


def test_entry_points_exist():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    import importlib

    for script in list(project["scripts"].values()) + list(project["gui-scripts"].values()):
        module, func = script.split(":")
        assert callable(getattr(importlib.import_module(module), func))
    for requirement in project["dependencies"]:
        assert "==" not in requirement, f"exact pin in dependencies: {requirement}"
