"""A scriptable stand-in for ``engine.generator.Engine`` that reports the same events, and
helpers that drive the window the way a user does (drops, a real app in another process)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from PIL import Image

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.request import SetRequest
from stylealigned_desktop.session.model import Session


class FakeEngine:
    """Emits Loading, Step, Preview (reference + selected panels), PanelDone, Finished.

    Each picture is a flat colour derived from its seed, so tests can tell panels apart.
    ``fail_with`` raises that exception from generate; ``step_s`` paces the steps.
    ``held``: each step waits for the test's :meth:`allow_steps` (or a cancel), so what a test
    does "during a run" happens during it however slow or loaded the machine is.
    """

    def __init__(self, step_s: float = 0.01, fail_with: Exception | None = None, held: bool = False) -> None:
        self.step_s = step_s
        self.fail_with = fail_with
        self.requests: list[SetRequest] = []
        self.thread_names: list[str] = []
        self.turns = threading.Semaphore(0) if held else None

    def allow_steps(self, count: int = 1) -> None:
        """A held engine may take ``count`` more steps (of this run or the next)."""
        self.turns.release(count)

    def let_go(self) -> None:
        """A held engine takes every later step at once."""
        self.turns = None

    def _wait_for_turn(self, cancel: threading.Event) -> None:
        while not cancel.is_set():
            turns = self.turns
            if turns is None or turns.acquire(timeout=0.01):
                return

    @staticmethod
    def colour(seed: int) -> tuple[int, int, int]:
        return (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256)

    @staticmethod
    def characters(request, on_event) -> None:
        """Each character's anchors (spec section 13), flat colours keyed by their seeds, each
        with a mask of its left half, as the engine reports them."""
        import numpy as np

        mask = np.zeros((4, 4), dtype=np.uint8)
        mask[:, :2] = 1
        size = (request.sampling.width, request.sampling.height)
        for character in getattr(request, "characters", ()):
            for k in range(request.settings.anchors_per_character):
                colour = FakeEngine.colour(character.anchor_seeds[k])
                on_event(ev.AnchorDone(character.name, k, Image.new("RGB", size, colour),
                                       mask=mask))

    @staticmethod
    def masks(request, index: int) -> dict:
        """A panel's masks: the top half for each character its prompt names."""
        import numpy as np

        from stylealigned_desktop.session.characters import named_characters

        if not getattr(request, "characters", ()):
            return {}
        mask = np.zeros((4, 4), dtype=np.uint8)
        mask[:2, :] = 1
        return {"masks": {name: mask for name in named_characters(request.panels[index].prompt)}}

    def generate(self, request, on_event, cancel: threading.Event):
        self.requests.append(request)
        self.thread_names.append(threading.current_thread().name)
        if self.fail_with is not None:
            raise self.fail_with
        size = (request.sampling.width // 8, request.sampling.height // 8)
        on_event(ev.Loading(1.0, "fake model"))
        steps = request.sampling.steps
        for step in range(1, steps + 1):
            self._wait_for_turn(cancel)
            if cancel.is_set():
                on_event(ev.Cancelled())
                return None
            time.sleep(self.step_s)
            on_event(ev.Step(step, steps))
            on_event(ev.Preview(None, step, Image.new("RGB", size, (step * 20 % 256, 0, 0))))
            for index in request.selected:
                colour = self.colour(request.panels[index].seed)
                on_event(ev.Preview(index, step, Image.new("RGB", size, colour)))
        full = (request.sampling.width, request.sampling.height)
        reference = Image.new("RGB", full, (200, 200, 200))
        panels = {i: Image.new("RGB", full, self.colour(request.panels[i].seed))
                  for i in request.selected}
        on_event(ev.PanelDone(None, reference))
        self.characters(request, on_event)
        for index, image in panels.items():
            on_event(ev.PanelDone(index, image, **self.masks(request, index)))
        run = ev.RunResult(reference, panels, {"model": request.model})
        on_event(ev.Finished(run))
        return run


def drop_mime(target, mime, pos=(20, 20), propose_move=False):
    """Send a real drag-enter then drop of ``mime`` to ``target``, as a file manager does.
    ``propose_move``: the source offers Copy or Move and proposes Move (Shift held).

    Returns (enter event, drop event); check ``isAccepted()`` and ``dropAction()`` on them.
    """
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    point = QPointF(*pos)
    actions, keys = Qt.DropAction.CopyAction, Qt.KeyboardModifier.NoModifier
    if propose_move:
        actions, keys = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction, Qt.KeyboardModifier.ShiftModifier
    # QDragEnterEvent takes a QPoint (PySide6 < 6.12 converts no QPointF to it), QDropEvent either
    enter = QDragEnterEvent(QPoint(*pos), actions, mime, Qt.MouseButton.LeftButton, keys)
    QApplication.sendEvent(target, enter)
    drop = QDropEvent(point, actions, mime, Qt.MouseButton.LeftButton, keys)
    if enter.isAccepted():
        QApplication.sendEvent(target, drop)
    return enter, drop


def drop_files(target, paths, pos=(20, 20), propose_move=False):
    """Drop local files (file:// URLs) onto ``target``."""
    from PySide6.QtCore import QMimeData, QUrl

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return drop_mime(target, mime, pos, propose_move)


def picture(path, colour=(200, 60, 40), size=(96, 64)):
    """Write a small test picture (a coloured field with a blue disc) and return its path."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((10, 10, 50, 50), fill=(20, 20, 200))
    image.save(path)
    return path


def storyboard(window, prompts=("a fox", "a crow", "a bear"), style="ink sketch.", **settings):
    """A new session in ``window``: style text, a reference prompt, one panel per prompt, and
    small, fast settings (64 px, 2 steps) unless ``settings`` says otherwise."""
    session = Session()
    window.sessions.set_session(session)
    session.set_style_text(style)
    session.set_reference_prompt("a tree")
    for prompt in prompts:
        session.add_panel(prompt)
    session.update_settings(**{"steps": 2, "width": 64, "height": 64, **settings})
    return session


def run_and_wait(qtbot, window, action=None, timeout=300000):
    """Start a job (default: Generate) and wait until the worker ends it; returns the job.
    The wait ends with the job: its long limit costs nothing but on a machine under load."""
    with qtbot.waitSignal(window.worker.job_ended, timeout=timeout) as ended:
        (action or window.runs.generate)()
    return ended.args[0]


ROOT = Path(__file__).resolve().parents[2]

OTHER_APP = """
import os, sys
from pathlib import Path
from PySide6.QtWidgets import QApplication, QFileDialog
app = QApplication([])
from stylealigned_desktop.ui.support import DesktopConfig
from stylealigned_desktop.ui.window import MainWindow
from tests.ui.uifakes import FakeEngine
config = DesktopConfig.load()
config.model = "tiny"
window = MainWindow(config, engine_factory=FakeEngine)
window.ask = lambda title, text, buttons, default=None, detail="": "Not now"
window.show()
"""
"""The start of a script that runs the real window (fake engine) in another process, as a
second copy of the app would; the test appends what the user does in it."""


def other_app_env() -> dict[str, str]:
    """The environment for ``python -c OTHER_APP + ...``: this checkout first, headless."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                QT_QPA_PLATFORM="offscreen")


def app_config():
    """The settings as the app reads them at start (what the last quit wrote), model tiny."""
    from stylealigned_desktop.ui.support import DesktopConfig

    config = DesktopConfig.load()
    config.model = "tiny"
    return config
