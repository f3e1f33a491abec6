"""The frozen build's inputs (packaging/): entry scripts, the spec's module lists, the desktop
integration files. The build itself takes minutes (packaging/smoke.sh); these checks keep its
inputs from rotting in between."""

from __future__ import annotations

import configparser
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import stylealigned_desktop

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _locate(name: str):
    """``name``'s module spec, found without running its parents' ``__init__`` (the way
    ``importlib.util.find_spec`` would: controlnet_aux's loads every detector, for minutes)."""
    first, *rest = name.split(".")
    spec = importlib.util.find_spec(first)  # a top-level name: nothing is imported
    for part in rest:
        if spec is None or not spec.submodule_search_locations:
            return None
        # str(): a package imported lazily (transformers' _LazyModule) may list Path objects,
        # which PathFinder silently skips.
        spec = importlib.machinery.PathFinder.find_spec(
            f"{spec.name}.{part}", [str(p) for p in spec.submodule_search_locations])
    return spec


@pytest.fixture(scope="module")
def bundle():
    return _load(PACKAGING / "bundle.py", "_packaging_bundle")


def _desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "io.github.stylealigned.Desktop.desktop")
    return entry["Desktop Entry"]


def test_each_frozen_entry_script_imports_the_packaged_main_absolutely(bundle):
    entry_points = importlib.metadata.distribution("stylealigned-desktop").entry_points
    targets = {ep.name: ep.value for ep in entry_points
               if ep.group in ("console_scripts", "gui_scripts")}
    assert {name for name, _, _ in bundle.EXECUTABLES} == set(targets)
    for name, script, _ in bundle.EXECUTABLES:
        # PyInstaller runs the script as a top-level module, with no parent package.
        module = _load(PACKAGING / "entry" / script, f"_frozen_entry_{Path(script).stem}")
        module_name, function = targets[name].split(":")
        expected = getattr(importlib.import_module(module_name), function)
        assert module.main is expected, f"{script} does not start {targets[name]}"


def test_window_has_no_console_and_the_command_line_has_one(bundle):
    console = {name: flag for name, _, flag in bundle.EXECUTABLES}
    assert console == {"stylealigned-desktop": False, "stylealigned": True}


def test_every_module_the_spec_names_resolves(bundle):
    from transformers import CLIPModel  # noqa: F401  as earlier tests of a whole run have done
    named = bundle.HIDDEN_IMPORTS + bundle.COLLECT_SUBMODULES + bundle.COLLECT_DATA + bundle.KEEP_SOURCE
    missing = [name for name in named if _locate(name) is None]
    assert not missing, f"the spec names modules that do not exist: {missing}"
    packages = [name for name in bundle.COLLECT_SUBMODULES
                if not _locate(name).submodule_search_locations]
    assert not packages, f"collect_submodules needs packages, not modules: {packages}"
    for dist in bundle.app_requirements(ROOT / "pyproject.toml"):
        importlib.metadata.distribution(dist)  # raises PackageNotFoundError
    for package in bundle.COLLECT_LIBRARIES:
        folder = Path(_locate(package).origin).parent
        libraries = [p for pattern in bundle.LIBRARY_PATTERNS for p in folder.glob(pattern)]
        assert libraries, f"{package} has no compiled libraries to collect any more"


def test_spec_reads_its_lists_from_bundle(bundle):
    spec = (PACKAGING / "stylealigned-desktop.spec").read_text()
    for name in ("EXECUTABLES", "HIDDEN_IMPORTS", "COLLECT_SUBMODULES", "COLLECT_DATA",
                 "COLLECT_LIBRARIES", "LIBRARY_PATTERNS",
                 "app_requirements", "EXCLUDES", "KEEP_SOURCE", "APP_ID"):
        assert f"bundle.{name}" in spec, f"the spec does not use bundle.{name}"


def test_excluded_modules_are_never_imported_by_the_app(bundle):
    sources = "\n".join(p.read_text() for p in (ROOT / "stylealigned_desktop").rglob("*.py"))
    for name in bundle.EXCLUDES:
        assert f"import {name}\n" not in sources and f"from {name} import" not in sources, name


def test_desktop_entry_opens_session_folders_and_matches_the_running_app(qapp):
    from stylealigned_desktop.ui.app import APP_ID, identify

    desktop = _desktop_entry()
    assert (PACKAGING / f"{APP_ID}.desktop").is_file()
    assert desktop["Type"] == "Application"
    assert desktop["Exec"].split() == ["stylealigned-desktop", "%f"]  # one session folder
    assert desktop["Icon"] == APP_ID
    assert [m for m in desktop["MimeType"].split(";") if m] == ["application/x-stylealigned-session"]
    identify(qapp)
    assert qapp.desktopFileName() == desktop["StartupWMClass"] == APP_ID
    assert not qapp.windowIcon().isNull()


def test_session_mime_type_is_registered_for_stylealigned_folders():
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    root = ET.parse(PACKAGING / "io.github.stylealigned.Desktop.mime.xml").getroot()
    kinds = root.findall("m:mime-type", ns)
    assert [k.get("type") for k in kinds] == [_desktop_entry()["MimeType"].strip(";")]
    assert [g.get("pattern") for g in kinds[0].findall("m:glob", ns)] == ["*.stylealigned"]
    assert kinds[0].find("m:sub-class-of", ns).get("type") == "inode/directory"


def test_appstream_metadata_names_the_app_its_screenshots_and_this_release(bundle):
    meta = ET.parse(PACKAGING / f"{bundle.APP_ID}.metainfo.xml").getroot()
    assert meta.findtext("id") == bundle.APP_ID
    assert meta.findtext("launchable") == f"{bundle.APP_ID}.desktop"
    images = [e.text.rsplit("/", 1)[1] for e in meta.iter("image")]
    assert images and all((ROOT / "docs" / "images" / name).is_file() for name in images)
    assert {u.get("type") for u in meta.iter("url")} >= {"homepage", "bugtracker"}
    releases = [r.get("version") for r in meta.find("releases")]
    assert releases[0] == stylealigned_desktop.__version__
    assert meta.find("releases/release/description") is not None


def test_app_icon_renders_at_small_sizes(qapp, tmp_path, bundle):
    sys.path.insert(0, str(PACKAGING))
    try:
        make_icons = _load(PACKAGING / "make_icons.py", "_make_icons")
    finally:
        sys.path.remove(str(PACKAGING))
    written = make_icons.render_pngs(make_icons.SVG, (16, 48), tmp_path)
    from PySide6.QtGui import QImage

    for size, path in written.items():
        assert path == tmp_path / "hicolor" / f"{size}x{size}" / "apps" / f"{bundle.APP_ID}.png"
        image = QImage(str(path))
        assert (image.width(), image.height()) == (size, size)
        corners = [image.pixelColor(x, y).alpha() for x in (0, size - 1) for y in (0, size - 1)]
        centre = image.pixelColor(size // 2, size // 2)
        assert corners == [0, 0, 0, 0] and centre.alpha() == 255  # a shape, not a filled square


def test_pip_records_the_version_the_app_reports(tmp_path):
    """pyproject.toml takes its version from stylealigned_desktop.__version__: what pip
    records is what --version, run.json and the frozen build (which has no pip record) say."""
    hook = "import sys, setuptools.build_meta as b; print(b.prepare_metadata_for_build_wheel(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", hook, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metadata = (tmp_path / done.stdout.split()[-1] / "METADATA").read_text(encoding="utf-8")
    assert re.search(r"^Version: (.+)$", metadata, re.M).group(1) == stylealigned_desktop.__version__


def test_entry_points_exist_and_dependencies_are_ranges():
    dist = importlib.metadata.distribution("stylealigned-desktop")
    scripts = {ep.name: ep for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}
    assert {"stylealigned", "stylealigned-desktop"} <= set(scripts)
    for entry in scripts.values():
        assert callable(entry.load())
    for requirement in dist.requires or []:
        version = requirement.split(";")[0]  # the marker (extra == "dev") is not a pin
        assert "==" not in version, f"exact pin in dependencies: {requirement}"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _app_dependency_closure() -> dict[str, importlib.metadata.Distribution]:
    """Every installed distribution the app needs (its requirements, recursively; no extras)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = ["stylealigned-desktop"]
    while todo:
        name = _norm(todo.pop())
        if name in found:
            continue
        found[name] = dist = importlib.metadata.distribution(name)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    del found["stylealigned-desktop"]
    return found


def test_metadata_is_copied_for_every_dependency_that_applies_here(bundle):
    # the spec copies these (and their requirements, recursively)
    names = bundle.app_requirements(ROOT / "pyproject.toml")
    for text in _pyproject_dependencies():
        requirement = Requirement(text)
        applies = requirement.marker is None or requirement.marker.evaluate()
        assert (requirement.name in names) or not applies, f"{text} is left out"
    assert names.count("pyside6") == 1  # two lines in pyproject.toml, one per Python version


CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pyd", ".dylib", "py.typed")


def test_every_dependency_that_ships_data_is_collected_or_left_out_with_a_reason(bundle):
    """Packages that keep files other than code next to their modules may read them at run time
    (kernels did, and the frozen app could not load a model): each is decided on."""
    shipping_data = {}
    for name, dist in _app_dependency_closure().items():
        for file in dist.files or []:
            parts = file.parts
            if (len(parts) < 2 or parts[0] == ".." or parts[0].endswith((".dist-info", ".libs"))
                    or "__pycache__" in parts or file.name.endswith(CODE_SUFFIXES)
                    or ".so." in file.name):
                continue
            shipping_data.setdefault(parts[0], name)
    undecided = {package: dist for package, dist in shipping_data.items()
                 if package not in bundle.COLLECT_DATA and package not in bundle.DATA_LEFT_OUT}
    assert not undecided, (f"these packages ship data files: add each to bundle.COLLECT_DATA if it "
                           f"reads them at run time, else to bundle.DATA_LEFT_OUT: {undecided}")
    assert not set(bundle.COLLECT_DATA) & set(bundle.DATA_LEFT_OUT)


def test_every_module_a_compiled_module_imports_is_collected(bundle):
    """Compiled modules' imports are invisible to PyInstaller: cuda-bindings' import
    cuda.bindings._internal.utils and cuda.pathfinder, which the first fixed smoke found missing.
    Each module they import must be collected by the spec or named by a PyInstaller hook."""
    done = subprocess.run([sys.executable, str(PACKAGING / "compiled_imports.py")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-3000:]
    pairs = [line.split() for line in done.stdout.splitlines()]
    assert ["cuda.bindings._internal.driver", "cuda.pathfinder"] in pairs  # the watch still sees

    def collected(name: str) -> bool:
        return name in bundle.HIDDEN_IMPORTS or any(
            name == package or name.startswith(f"{package}.") for package in bundle.COLLECT_SUBMODULES)

    def top(name: str) -> str:
        return name.partition(".")[0]

    uncovered = [f"{importer} imports {imported}" for importer, imported in pairs
                 if top(importer) not in bundle.EXCLUDES  # not in the build
                 and top(imported) not in sys.stdlib_module_names
                 and top(imported) not in bundle.COMPILED_IMPORTS_LEFT_TO_HOOKS
                 and not collected(imported)]
    assert not uncovered, ("add these to bundle.COLLECT_SUBMODULES (or HIDDEN_IMPORTS), or their "
                           f"package to COMPILED_IMPORTS_LEFT_TO_HOOKS with the hook: {uncovered}")


LOCK = PACKAGING / "requirements-lock-linux.txt"


def _lock_pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of packaging/requirements-lock-linux.txt."""
    pins: dict[str, tuple[str, list[str]]] = {}
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        assert version, f"not an exact pin in the lock: {line}"
        pins[_norm(name)] = (version, [o.removeprefix("--hash=") for o in options])
    return pins


def test_the_lock_pins_the_apps_dependencies_and_pyinstaller_exactly_within_the_ranges(bundle):
    pins = _lock_pins()
    for name, (_version, hashes) in pins.items():
        assert hashes and all(h.startswith("sha256:") and len(h) == 71 for h in hashes), name
    build_tools = [Requirement(line) for line in (PACKAGING / "requirements-build.in").read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
    pyproject = [Requirement(name) for name in _pyproject_dependencies()]
    for requirement in pyproject + build_tools:
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        assert _norm(requirement.name) in pins, f"{requirement.name} is not in the lock: packaging/lock.sh"
        version = pins[_norm(requirement.name)][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"the lock's {requirement.name}=={version} is outside pyproject's {requirement}: "
            f"run packaging/lock.sh")
    # what the build installs from the lock is everything the app needs here, and no more than
    # PyInstaller's own needs besides
    needed = set(_app_dependency_closure())
    assert needed <= set(pins), f"missing from the lock: {sorted(needed - set(pins))}"


def _pyproject_dependencies() -> list[str]:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["dependencies"]


def _run_hook(tmp_path, **env) -> subprocess.CompletedProcess:
    """The runtime hook in a fresh interpreter, then a program that imports two modules."""
    program = (f"import runpy; runpy.run_path({str(PACKAGING / 'rthook_modules.py')!r}); "
               "import colorsys, stylealigned_desktop.paths")
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=120)


def test_the_runtime_hook_records_what_the_program_imports_after_it(tmp_path):
    record = tmp_path / "modules.txt"
    done = _run_hook(tmp_path, STYLEALIGNED_RECORD_MODULES=str(record))
    assert done.returncode == 0, done.stderr
    names = record.read_text().split()
    assert {"colorsys", "stylealigned_desktop", "stylealigned_desktop.paths"} <= set(names)
    assert "runpy" not in names and "sys" not in names  # loaded before the hook ran
    assert names.index("stylealigned_desktop") < names.index("stylealigned_desktop.paths")


def test_the_runtime_hook_imports_a_list_and_names_what_fails(tmp_path):
    wanted = tmp_path / "wanted.txt"
    wanted.write_text("json\nno_such_module_anywhere\nstylealigned_desktop.paths\n")
    done = _run_hook(tmp_path, STYLEALIGNED_IMPORT_MODULES=str(wanted))
    assert done.returncode == 1
    assert "not importable: no_such_module_anywhere: ModuleNotFoundError" in done.stdout
    assert "2 of 3 modules imported" in done.stdout
    wanted.write_text("json\nstylealigned_desktop.paths\n")
    assert _run_hook(tmp_path, STYLEALIGNED_IMPORT_MODULES=str(wanted)).returncode == 0


def test_the_runtime_hook_imports_a_module_that_registers_an_exit_handler(tmp_path):
    """The list is imported at exit, when threading refuses new exit handlers; concurrent.futures'
    thread pool registers one when first imported (torch imports it), so a module missing from
    the frozen folder that imports it failed unfrozen too and read as "made at run time"."""
    (tmp_path / "registers_at_exit.py").write_text("import concurrent.futures.thread\n")
    wanted = tmp_path / "wanted.txt"
    wanted.write_text("registers_at_exit\n")
    program = (f"import runpy; runpy.run_path({str(PACKAGING / 'rthook_modules.py')!r}); "
               "import threading")  # as every real program does: its shutdown comes first
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path),
                               "STYLEALIGNED_IMPORT_MODULES": str(wanted)}, timeout=120)
    assert done.returncode == 0, done.stdout
    assert "1 of 1 modules imported" in done.stdout
