"""Packaging files parse and point at what exists."""

import configparser
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


def test_entry_points_exist_and_dependencies_are_ranges():
    from importlib.metadata import distribution

    dist = distribution("stylealigned-desktop")
    scripts = {ep.name: ep for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}
    assert {"stylealigned", "stylealigned-desktop"} <= set(scripts)
    for entry in scripts.values():
        assert callable(entry.load())
    for requirement in dist.requires or []:
        version = requirement.split(";")[0]  # the marker (extra == "dev") is not a pin
        assert "==" not in version, f"exact pin in dependencies: {requirement}"
