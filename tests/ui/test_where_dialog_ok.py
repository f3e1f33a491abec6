"""The server dialog takes OK only for a server that answered Test connection (issue 30, item 9),
and shows a long connection error whole (item 11)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialogButtonBox

from stylealigned_desktop.ui.dialogs.where_dialog import WhereDialog
from stylealigned_desktop.ui.support import DesktopConfig

from .test_layout_small_screens import cut_text, look

# nothing listens on port 9 (discard) here: the connection is refused at once
UNREACHABLE = "http://127.0.0.1:9/a/long/path/to/a/picture/server/that/is/not/running/today"


def test_ok_for_an_untested_or_unreachable_server_is_refused_with_a_reason(qtbot, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # the token file goes nowhere real
    dialog = WhereDialog(DesktopConfig(model="tiny"))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.server_button.click()
    dialog.url_edit.setText(UNREACHABLE)
    dialog.token_edit.setText("a-token")
    ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)

    ok.click()  # untested
    assert dialog.isVisible() and dialog.result() != WhereDialog.DialogCode.Accepted
    assert "Test the connection first" in dialog.status.text()

    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=30000)
    error = dialog.status.text()
    assert error and "Test the connection first" not in error
    qtbot.wait(50)
    look(dialog, "where-failed")
    assert cut_text(dialog) == []  # the whole error shows, not its middle lines

    ok.click()  # tested, and it did not answer
    assert dialog.isVisible() and dialog.result() != WhereDialog.DialogCode.Accepted
    assert "Test the connection first" in dialog.status.text()

    dialog.local_button.click()  # this computer needs no test
    ok.click()
    assert dialog.result() == WhereDialog.DialogCode.Accepted
