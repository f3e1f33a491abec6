"""A problem message goes when its cause is fixed, the setting changes or the session changes
(issue 30, item 5)."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QDialog, QFileDialog

from stylealigned_desktop.ui.dialogs import WhereDialog

from .uifakes import FakeEngine, run_and_wait, storyboard


def _banner(window) -> str:
    return window.banner_text.text() if window.banner.isVisible() else ""


def test_a_failed_prompts_import_is_forgotten_after_a_good_one(qtbot, make_window, tmp_path,
                                                              monkeypatch):
    window, _ = make_window(engine=FakeEngine())
    storyboard(window, prompts=("a fox",))
    bad = tmp_path / "scan.txt"
    bad.write_bytes(b"\xff\xfe\x00\x81 not text at all \x00")
    good = tmp_path / "story.txt"
    good.write_text("a crow on a fence\na bear in the rain\n", encoding="utf-8")
    chosen = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(chosen[-1]), ""))
    chosen.append(bad)
    window.import_prompts_action.trigger()
    assert "scan.txt" in _banner(window)
    chosen.append(good)
    window.import_prompts_action.trigger()
    assert [p.prompt for p in window.session.panels][-2:] == ["a crow on a fence",
                                                              "a bear in the rain"]
    assert _banner(window) == ""
    assert "Added 2 panel(s)" in window.statusBar().currentMessage()


def _failed_run(qtbot, window):
    storyboard(window, prompts=("a fox", "a crow"))
    run_and_wait(qtbot, window)
    assert window.run_bar.progress.format() == "Generate: failed"
    assert "lost the connection" in _banner(window)


def test_a_failed_run_is_not_carried_into_another_session(qtbot, make_window):
    window, _ = make_window(engine=FakeEngine(fail_with=ConnectionError(
        "lost the connection to the server")))
    _failed_run(qtbot, window)
    window.new_action.trigger()
    assert window.run_bar.progress.format() == "Ready"
    assert _banner(window) == ""
    assert "failed" not in window.statusBar().currentMessage()


def test_a_lost_server_is_forgotten_after_switching_to_this_computer(qtbot, make_window,
                                                                     monkeypatch):
    window, _ = make_window(engine=FakeEngine(fail_with=ConnectionError(
        "lost the connection to the server")))
    _failed_run(qtbot, window)

    def this_computer(dialog):
        dialog.local_button.click()
        dialog.accept()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(WhereDialog, "exec", this_computer)
    window.where_action.trigger()
    assert window.run_bar.progress.format() == "Ready"
    assert _banner(window) == ""


@pytest.mark.parametrize("fix", ["correct the name", "add the character"])
def test_a_refused_generate_is_forgotten_once_its_cause_is_fixed(qtbot, make_window, fix):
    """A panel names [Bob], who is no character: Generate is refused in the banner. Correcting
    the name in the card, or adding Bob in the Characters tab, takes the banner away."""
    from PySide6.QtCore import Qt

    from .test_characters_window import type_into

    window, _ = make_window(engine=FakeEngine())
    storyboard(window, prompts=("[Bob] at the pier", "rain"))
    window.generate_action.trigger()
    assert window.banner.isVisible() and "[Bob]" in window.banner_text.text()
    if fix == "correct the name":
        card = window.storyboard.card_at(0)
        card.prompt.setFocus()
        card.prompt.selectAll()
        qtbot.keyClicks(card.prompt, "a man at the pier")
    else:
        window.characters_dock.raise_()
        qtbot.mouseClick(window.characters.add_button, Qt.MouseButton.LeftButton)
        type_into(qtbot, window.characters.name, "Bob")
        # still refused, for the reason that is left
        assert window.banner.isVisible() and "Bob has no description" in window.banner_text.text()
        type_into(qtbot, window.characters.description, "an old man in a blue hat")
    assert not window.banner.isVisible()
