"""In server mode the Settings panel names the server and its model, never the local model's
look (issue 30, item 9)."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QDialog

from stylealigned_desktop.ui.dialogs import SERVER, WhereDialog
from stylealigned_desktop.ui.support import DesktopConfig

from ..fake_server import StreamingHandler, serving


class AnsweringHandler(StreamingHandler):
    """A server that answers Test connection: one model, "sdxl-turbo", on one GPU."""

    def do_GET(self):  # noqa: N802 (http.server)
        body = {"/v1/models": {"models": ["sdxl-turbo"], "default": "sdxl-turbo",
                               "gpus": ["NVIDIA L4"]},
                "/v1/health": {"replicas": 1}}.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)



def test_choosing_a_server_shows_it_and_its_model_instead_of_tiny(qtbot, make_window, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    window, _ = make_window()  # tiny, on this computer
    panel = window.settings_panel
    assert panel.model_label.text() == "tiny" and panel.tiny_badge.isVisibleTo(panel)
    with serving(AnsweringHandler) as url:
        def answer(dialog):
            dialog.server_button.click()
            dialog.url_edit.setText(url)
            dialog.token_edit.setText("a-token")
            dialog.test_button.click()
            qtbot.waitUntil(lambda: dialog.status.text().startswith("Connected"), timeout=30000)
            dialog.accept()
            return QDialog.DialogCode.Accepted

        monkeypatch.setattr(WhereDialog, "exec", answer)
        window.where_action.trigger()
    assert window.config.picture_maker == SERVER
    assert panel.model_label.text() == f"sdxl-turbo on the server {url}"
    assert not panel.tiny_badge.isVisibleTo(panel)


def test_a_window_started_in_server_mode_names_the_server(qtbot, make_window):
    config = DesktopConfig(model="sdxl-turbo", picture_maker=SERVER,
                           server_url="http://gpu-box.local:8765")
    window, _ = make_window(config=config)
    assert window.settings_panel.model_label.text() == \
        "sdxl-turbo on the server http://gpu-box.local:8765"
