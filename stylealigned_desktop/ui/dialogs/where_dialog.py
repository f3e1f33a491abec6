"""Settings → Where pictures are made: *this computer* (the embedded engine) or *a server*.

A server is a URL and its token (docs/server.md). *Test connection* asks the server, in a
background thread, for its models and GPUs. The token is kept in the user config folder,
readable by the user only; the window's worker then makes pictures with a
:class:`~...server.client.ServerEngine` (no Ray, no torch on this computer).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ...engine.maker import PictureMakerFactory, this_computer
from ...paths import config_dir
from ...server.auth import default_token_path, read_token
from ..support import DesktopConfig, connect_command, fit_to_screen
from ..threads import ThreadBridge

THIS_COMPUTER = "this_computer"
SERVER = "server"
ACCESS_TOKEN_FILE = "server-access-token"


def access_token_path() -> Path:
    """Where the app keeps the token of the server it uses (0600)."""
    return config_dir() / ACCESS_TOKEN_FILE


def saved_token() -> str:
    """The token saved for the server, else the one of a server started on this computer."""
    for path in (access_token_path(), default_token_path()):
        try:
            return read_token(path)
        except ValueError:
            continue
    return ""


def save_token(token: str) -> None:
    path = access_token_path()
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token.strip() + "\n")
    os.replace(temporary, path)


def maker_factory(config: DesktopConfig) -> PictureMakerFactory:
    """What makes the pictures for this configuration (built in the worker thread)."""
    if config.picture_maker != SERVER or not config.server_url:
        return this_computer
    url, token = config.server_url, saved_token()

    def server():
        from ...server.client import ServerEngine

        return ServerEngine(url, token)

    return server


def describe_server(models: dict, health: dict) -> str:
    """One line about a server for the dialog: its models, GPUs and replicas."""
    gpus = models.get("gpus") or []
    where = ", ".join(gpus) if gpus else f"{len(models.get('devices') or [])} CPU replica(s), no GPU"
    return f"Connected. Models: {', '.join(models['models'])}. GPUs: {where}. Replicas: {health['replicas']}."


class WhereDialog(QDialog):
    """See the module docstring. After ``exec()``, :meth:`apply` stores the choice in the config."""

    def __init__(self, config: DesktopConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Where pictures are made")
        self.config = config
        self._bridge = ThreadBridge(self)
        self._answered: tuple[str, str] | None = None
        """The (URL, token) whose Test connection last succeeded: OK uses only such a server."""
        layout = QVBoxLayout(self)
        self.local_button = QRadioButton("This computer (the generator runs here)")
        self.server_button = QRadioButton("A server (stylealigned serve, see docs/server.md)")
        group = QButtonGroup(self)
        for button in (self.local_button, self.server_button):
            group.addButton(button)
            layout.addWidget(button)
        self.server_box = QWidget()
        form = QFormLayout(self.server_box)
        self.url_edit = QLineEdit(config.server_url or "http://127.0.0.1:8765")
        self.token_edit = QLineEdit(saved_token())
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.test_button = QPushButton("Test connection")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.model_box = QComboBox()
        self.model_box.setToolTip("The server's model these sets use (Test connection lists them)")
        form.addRow("URL", self.url_edit)
        form.addRow("Token", self.token_edit)
        form.addRow(self.test_button)
        form.addRow("Model", self.model_box)
        layout.addWidget(self.server_box)
        layout.addWidget(self.status)  # not in the form: a form row keeps a wrapped text one line high
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        connect_command(self.test_button.clicked, self.test_connection)
        self.server_button.toggled.connect(self.server_box.setEnabled)
        (self.server_button if config.picture_maker == SERVER else self.local_button).setChecked(True)
        self.server_box.setEnabled(self.server_button.isChecked())
        if config.picture_maker == SERVER and config.model:
            self.model_box.addItem(config.model)

    def test_connection(self) -> threading.Thread:
        """Ask the server for its models and GPUs (in a thread); the answer lands in ``status``."""
        from ...server.client import ServerEngine, ServerError

        url, token = self._server_typed()
        self.status.setText("Connecting…")
        self.test_button.setEnabled(False)
        self._bridge.wake()

        def ask() -> None:
            client = ServerEngine(url, token)
            try:
                models, health = client.models(), client.health()
            except ServerError as error:
                self._bridge.post(self._tested, None, str(error), (url, token))
            else:
                self._bridge.post(self._tested, models, describe_server(models, health),
                                  (url, token))
            finally:
                client.close()

        thread = threading.Thread(target=ask, name="stylealigned-test-connection", daemon=True)
        thread.start()
        return thread

    def _tested(self, models: dict | None, message: str, asked: tuple[str, str]) -> None:
        self.test_button.setEnabled(True)
        self.status.setText(message)
        fit_to_screen(self)  # taller for a long message: never cut, never squeezing the fields
        self._answered = asked if models is not None else None
        if models is not None:
            current = self.model_box.currentText()
            self.model_box.clear()
            self.model_box.addItems(models["models"])
            self.model_box.setCurrentText(current if current in models["models"] else models["default"])

    def accept(self) -> None:
        if self.server_button.isChecked() and not (self.url_edit.text().strip() and self.token_edit.text().strip()):
            self.status.setText("A server needs its URL and its token.")
            return
        if self.server_button.isChecked() and self._answered != self._server_typed():
            self.status.setText("Test the connection first: OK uses a server only after it "
                                "answered.")
            return
        super().accept()

    def _server_typed(self) -> tuple[str, str]:
        return self.url_edit.text().strip(), self.token_edit.text().strip()

    def apply(self) -> str | None:
        """Store the choice in the config (and the token in its own file); returns the model the
        app should use now: the server's chosen model, or the one used here before; None: keep."""
        config = self.config
        if self.server_button.isChecked():
            save_token(self.token_edit.text())
            if config.picture_maker != SERVER:
                config.local_model = config.model
            config.picture_maker = SERVER
            config.server_url = self.url_edit.text().strip()
            return self.model_box.currentText() or None
        if config.picture_maker == SERVER:
            config.picture_maker = THIS_COMPUTER
            return config.local_model or None
        return None
