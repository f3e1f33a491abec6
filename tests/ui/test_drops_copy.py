"""Every file drop is taken as a Copy, never the Move a file manager proposes (issue 30, item 4):
a file manager that honours Move would delete the artist's original once the drop is accepted."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, Qt, QUrl

from tests.ui.uifakes import drop_files, drop_mime, picture, storyboard


def _over_the_grid(window, paths):
    """Dropped on the window's QWindow over the picture grid: the window itself takes it."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    spot = window.grid.mapTo(window, window.grid.rect().center())
    return drop_mime(window.windowHandle(), mime, (spot.x(), spot.y()), propose_move=True)


def _lora_file(path):
    path.write_bytes(b"{}")  # the drop is taken before the file is read
    return path


TARGETS = {
    "window": lambda window, tmp: _over_the_grid(window, [picture(tmp / "mood.png")]),
    "gallery": lambda window, tmp: drop_files(window.gallery.list.viewport(),
                                              [picture(tmp / "mood.png")], propose_move=True),
    "panel card": lambda window, tmp: drop_files(window.storyboard.card_at(1),
                                                 [picture(tmp / "pose.png")], propose_move=True),
    "settings": lambda window, tmp: drop_files(window.settings_panel,
                                               [picture(tmp / "made.png")], propose_move=True),
    "lora list": lambda window, tmp: drop_files(
        window.settings_panel.loras, [_lora_file(tmp / "ink.safetensors")], propose_move=True),
}


@pytest.mark.parametrize("target", list(TARGETS))
def test_a_drop_proposed_as_move_is_taken_as_copy(qtbot, make_window, tmp_path, target):
    window, _ = make_window(startup=True)
    storyboard(window, prompts=("a fox", "a crow"))
    enter, drop = TARGETS[target](window, tmp_path)
    # read out first: pytest's report would repr the events, which can outlive their data
    proposed, accepted = drop.proposedAction(), (enter.isAccepted(), drop.isAccepted())
    taken_as = (enter.dropAction(), drop.dropAction())
    assert proposed == Qt.DropAction.MoveAction  # what the source asked for
    assert accepted == (True, True)
    assert taken_as == (Qt.DropAction.CopyAction, Qt.DropAction.CopyAction)


def test_no_widget_takes_a_drop_with_the_action_the_source_proposes():
    """One way to take a drop (support/drops.py). The storyboard's own panel drag is the only
    exception: a panel moved within the list is a move, and it never carries files."""
    from pathlib import Path

    import stylealigned_desktop.ui as ui

    root = Path(ui.__file__).parent
    proposing = sorted(str(path.relative_to(root)) for path in root.rglob("*.py")
                       if "acceptProposedAction" in path.read_text(encoding="utf-8"))
    assert proposing == ["storyboard/panel_list.py"]
