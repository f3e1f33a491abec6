"""Every signal the window's classes declare is connected somewhere (issue 30 item 2: the grid's
re-roll button did nothing because PreviewGrid.reroll_requested was connected to nothing), or
is listed here as deliberately unconnected, with the reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from PySide6.QtCore import SIGNAL, QMetaMethod, QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from .uifakes import FakeEngine, drop_files, picture, run_and_wait, storyboard

PACKAGE = Path(__file__).resolve().parents[2] / "stylealigned_desktop"

DELIBERATELY_UNCONNECTED: dict[tuple[str, str], str] = {
    ("ReferenceGallery", "import_finished"):
        "the moment a background picture import has ended; tests and scripts wait on it",
    ("StoryboardView", "control_picture_settled"):
        "the moment a card's control picture is read in the background; tests wait on it",
}


def declared_signals() -> set[tuple[str, str]]:
    """(class, signal) of every ``name = Signal(...)`` in a class of the ui package."""
    found = set()
    for path in (PACKAGE / "ui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    value = getattr(statement, "value", None)
                    if isinstance(statement, ast.Assign) and isinstance(value, ast.Call) \
                            and getattr(value.func, "id", None) == "Signal":
                        found.add((node.name, statement.targets[0].id))
    return found


def unconnected_in(window) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(checked, unconnected): the signals of our classes among the window's objects (the
    window, its children, its controllers) and those no instance has a receiver for."""
    objects = [window, *window.findChildren(QObject)]
    objects += [v for v in vars(window).values() if isinstance(v, QObject)]
    connected: dict[tuple[str, str], bool] = {}
    for obj in objects:
        ours = {c.__name__ for c in type(obj).__mro__ if c.__module__.startswith("stylealigned_desktop")}
        meta = obj.metaObject()
        while meta is not None:
            if meta.className() in ours:
                for i in range(meta.methodOffset(), meta.methodCount()):
                    method = meta.method(i)
                    if method.methodType() == QMetaMethod.MethodType.Signal:
                        key = (meta.className(), bytes(method.name()).decode())
                        connected[key] = connected.get(key, False) or obj.isSignalConnected(method)
            meta = meta.superClass()
    return set(connected), {key for key, yes in connected.items() if not yes}


def test_every_signal_the_ui_declares_is_connected_or_listed_with_a_reason(make_window):
    window, _answers = make_window()
    checked, unconnected = unconnected_in(window)
    assert unconnected == set(DELIBERATELY_UNCONNECTED), (
        f"connected to nothing: {sorted(unconnected - set(DELIBERATELY_UNCONNECTED))}; "
        f"listed but connected: {sorted(set(DELIBERATELY_UNCONNECTED) - unconnected)}")
    # classes the window does not make at start (dialogs): their signals connected by name somewhere
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    elsewhere = declared_signals() - checked - set(DELIBERATELY_UNCONNECTED)
    by_name = {key for key in elsewhere
               if not re.search(rf"\.{key[1]}\.connect\(|connect_command\([\w.]*\.{key[1]}\b", source)}
    assert not by_name, f"declared and connected nowhere: {sorted(by_name)}"
    assert all(reason.strip() for reason in DELIBERATELY_UNCONNECTED.values())


def own_receivers(action: QAction) -> int:
    """Slots an action's triggered(bool) and toggled(bool) reach, less the one each menu showing
    it connects for itself (a menu's action is never without that one)."""
    menus = sum(isinstance(o, QMenu) for o in action.associatedObjects())
    return (action.receivers(SIGNAL("triggered(bool)")) + action.receivers(SIGNAL("toggled(bool)"))
            - menus)

def test_the_check_sees_the_characters_widgets_live_and_every_action_is_connected(qtbot, make_window,
                                                                                   tmp_path):
    """The widgets made later than the window (a character's anchor slots, a card's character
    chips, anchor tiles in the grid, a shown History run) are checked on their live instances,
    not by name; every QAction of the window (View -> Show subject masks among them) reaches
    a slot."""
    window, _ = make_window(engine=FakeEngine())
    storyboard(window, prompts=("[Mira] on the pier", "rain"))
    window.characters_dock.raise_()
    qtbot.mouseClick(window.characters.add_button, Qt.MouseButton.LeftButton)
    window.characters.name.setText("Mira")
    window.characters.name.editingFinished.emit()
    window.characters.description.setText("a girl in a raincoat")
    window.characters.description.editingFinished.emit()
    drop_files(window.characters.slots[1], [picture(tmp_path / "mira.png")])
    qtbot.waitUntil(lambda: window.session.character("Mira").picture(1) is not None, timeout=60000)
    window.masks_action.trigger()
    run_and_wait(qtbot, window)
    window.history.list.setCurrentRow(0)
    assert window.storyboard.card_at(0).chips.chips and window.pictures.viewing_run
    checked, unconnected = unconnected_in(window)
    live = {("AnchorSlot", name) for name in ("seed_edited", "files_dropped", "image_dropped",
                                              "choose_requested", "clear_requested")}
    live |= {("CharactersPanel", "message"), ("PictureTile", "reroll_requested")}
    assert live <= checked
    assert unconnected == set(DELIBERATELY_UNCONNECTED)
    actions = [a for a in window.findChildren(QAction) if not a.isSeparator() and a.menu() is None]
    assert window.masks_action in actions
    assert [a.text() for a in actions if own_receivers(a) < 1] == []
