"""Fixtures for the window tests: a main window on the real engine (tiny model) or a fake."""

from __future__ import annotations

import pytest

from stylealigned_desktop.ui.support import DesktopConfig, theme


@pytest.fixture(autouse=True)
def _app_look_restored(qapp, monkeypatch):
    """The application's look is the same at the start of every test: a test that applies the
    app's theme (its style, palette, stylesheet and icon colour) has the one before put back.
    A theme left behind once changed the sizes a later test measured (a card's control
    thumbnail: 73 px needed with the stylesheet, 72 without)."""
    before = qapp.styleSheet(), qapp.palette(), qapp.style().name(), qapp.property("stylealigned_dark")
    monkeypatch.setattr(theme, "_icon_colour", theme._icon_colour)
    yield
    if qapp.style().name() != before[2]:
        qapp.setStyle(before[2])
    if qapp.palette() != before[1]:
        qapp.setPalette(before[1])
    if qapp.styleSheet() != before[0]:
        qapp.setStyleSheet(before[0])
    qapp.setProperty("stylealigned_dark", before[3])


@pytest.fixture(scope="session")
def tiny_engine():
    """One real engine for the whole run, its libraries imported and the tiny pipeline built
    here, before any test waits for a run: on a loaded machine torch's first import and
    kernels alone outlasted a test's wait for its first run (by more than a minute)."""
    from stylealigned_desktop.engine.generator import Engine

    engine = Engine()
    engine.warm_up()
    engine.pipeline("tiny")
    return engine


class Answers:
    """Stands in for MainWindow.ask: returns queued answers, records the questions."""

    def __init__(self, default: str = "Don't save") -> None:
        self.queue: list[str] = []
        self.asked: list[tuple[str, str]] = []
        self.default = default

    def __call__(self, title, text, buttons, default=None, detail=""):
        self.asked.append((title, text + ("\n" + detail if detail else "")))
        answer = self.queue.pop(0) if self.queue else self.default
        if answer not in buttons:
            answer = buttons[-1]
        return answer


@pytest.fixture
def make_window(qtbot, tiny_engine):
    """``make_window(engine=None, config=None)`` -> (window, answers); the real tiny engine by default."""
    made = []

    def make(engine=None, config=None, startup=False):
        from stylealigned_desktop.ui.window import MainWindow

        config = config or DesktopConfig(model="tiny")
        engine = engine if engine is not None else tiny_engine
        window = MainWindow(config, engine_factory=lambda: engine)
        answers = Answers()
        window.ask = answers
        qtbot.addWidget(window)
        if not config.geometry:
            window.resize(1300, 850)
        window.show()
        if startup:
            window.startup()
        made.append(window)
        return window, answers

    yield make
    for window in made:
        window.ask = Answers()
        window.close()
        window.worker.shutdown(5)
