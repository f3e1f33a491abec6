"""Live previews in the window (issue 27): Settings → Previews chooses the decoder (Auto says
which it takes), the decoding happens on the engine's worker thread, never the window's, and the
viewer shows a running panel's preview at full size, then the finished picture in its place."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from stylealigned_desktop.engine import hub
from stylealigned_desktop.engine.preview_decoders import LatentFactors, TinyAutoencoder
from stylealigned_desktop.session.generation import GenerationSettings
from stylealigned_desktop.ui.grid.viewer import ImageViewer
from stylealigned_desktop.ui.threads import JobState
from stylealigned_desktop.ui.threads import worker as worker_module
from tests.ui.test_controls import bound_settings
from tests.ui.uifakes import FakeEngine, run_and_wait, storyboard

pytestmark = pytest.mark.slow


def _generate(qtbot, window):
    """Press Generate and wait for the job to end."""
    return run_and_wait(qtbot, window, lambda: qtbot.mouseClick(window.run_bar.generate_button,
                                                                Qt.MouseButton.LeftButton))


def _recorded_previews(window):
    shown = []
    original = window.grid.show_preview

    def record(index, image, step, total):
        shown.append((index, image.width(), image.height()))
        original(index, image, step, total)

    window.grid.show_preview = record
    return shown


def test_settings_previews_choose_the_decoder_of_the_next_run(qtbot, make_window):
    window, _ = make_window()
    session = storyboard(window, ("a fox", "a crow"), width=96, height=64)
    combo = window.settings_panel.previews
    assert combo.itemText(combo.findData("auto")) == "Auto (tiny autoencoder here)"  # the tiny model's own
    for kind, width in (("factors", 96 // 8), ("tiny", 96), ("off", None)):
        combo.setCurrentIndex(combo.findData(kind))
        assert session.settings.previews == kind
        shown = _recorded_previews(window)
        job = _generate(qtbot, window)
        assert job.request.previews == kind
        if width is None:
            assert shown == []
        else:
            assert {index for index, *_ in shown} == {None, 0, 1}
            assert {(w, h) for _, w, h in shown} == {(width, width * 64 // 96)}


def test_previews_taken_after_the_run_ended_in_the_worker_are_still_shown(qtbot, make_window):
    """A busy UI thread (a loaded machine) may take a run's previews only once the worker has
    already finished the run: they belong to that run's tiles all the same, shown before its
    finished pictures (the worker's hand-over keeps the order), never dropped."""
    window, _ = make_window(engine=FakeEngine(step_s=0.0))
    storyboard(window, ("a fox", "a crow"), width=96, height=64)
    shown = _recorded_previews(window)
    queued = []
    window.worker.job_queued.connect(queued.append)
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000):
        window.runs.generate()
        (job,) = queued
        deadline = time.monotonic() + 60
        # the UI thread does nothing (no events) until the worker is done with the job
        while (job.state is not JobState.finished or window.worker.current is not None) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert window.worker.current is None and shown == []
    assert {index for index, *_ in shown} == {None, 0, 1}


def test_auto_says_what_it_takes_for_an_sdxl_model_and_with_a_server(qtbot, monkeypatch):
    session, panel = bound_settings(qtbot)
    auto = panel.previews.findData("auto")
    monkeypatch.setattr(hub, "complete_snapshot", lambda repo: None)
    panel.set_app_model("stabilityai/stable-diffusion-xl-base-1.0")
    assert panel.previews.itemText(auto) == "Auto (latent factors here)"
    tip = panel.previews.itemData(auto, Qt.ItemDataRole.ToolTipRole)
    assert "hf download madebyollin/taesdxl" in tip
    monkeypatch.setattr(hub, "complete_snapshot", lambda repo: f"/cache/{repo}")
    panel.set_settings(GenerationSettings(previews="vae"))  # the session's choice shown, Auto said anew
    assert panel.previews.currentData() == "vae"
    assert panel.previews.itemText(auto) == "Auto (tiny autoencoder here)"
    panel.set_no_gpu("no GPU on this computer")  # known after the warm-up: the factors then
    assert panel.previews.itemText(auto) == "Auto (latent factors here)"
    assert "processor" in panel.previews.itemData(auto, Qt.ItemDataRole.ToolTipRole)
    panel.set_server("http://gpu-box:8000")
    assert panel.previews.itemText(auto) == "Auto (the server's choice)"


def test_previews_are_decoded_and_converted_on_the_worker_thread(qtbot, make_window, monkeypatch):
    """A spy on each decoder and on the worker's picture conversion records the thread it runs
    in: never the window's (the UI thread does nothing but show a ready QImage)."""
    threads = {"tiny": [], "factors": [], "qimage": []}

    def spy(name, original):
        def call(*args, **kwargs):
            threads[name].append(threading.current_thread())
            return original(*args, **kwargs)
        return call

    monkeypatch.setattr(TinyAutoencoder, "decode", spy("tiny", TinyAutoencoder.decode))
    monkeypatch.setattr(LatentFactors, "decode", spy("factors", LatentFactors.decode))
    monkeypatch.setattr(worker_module, "pil_to_qimage", spy("qimage", worker_module.pil_to_qimage))
    window, _ = make_window()
    session = storyboard(window, ("a fox", "a crow"))
    for kind in ("tiny", "factors"):
        session.update_settings(previews=kind)
        shown = _recorded_previews(window)
        assert _generate(qtbot, window).error is None
        assert shown and threads[kind]
    assert threads["qimage"]
    seen = {thread for calls in threads.values() for thread in calls}
    assert threading.main_thread() not in seen
    assert {thread.name for thread in seen} == {"stylealigned-engine"}


def _open_viewer(qtbot, window, tile) -> ImageViewer:
    before = set(window.findChildren(ImageViewer))
    qtbot.mouseClick(window.grid.tiles[tile].view, Qt.MouseButton.LeftButton)
    (viewer,) = set(window.findChildren(ImageViewer)) - before
    viewer.resize(420, 360)
    viewer.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is viewer, timeout=30000)
    return viewer


def _centre(image):
    colour = image.pixelColor(image.width() // 2, image.height() // 2)
    return colour.red(), colour.green(), colour.blue()


def test_the_viewer_shows_the_live_preview_at_full_size_then_the_finished_picture(qtbot, make_window):
    # the fake engine's previews are 1/8 of the picture (the latent factors'), the reference's
    # colour changing every step; its finished reference is grey at full size. It takes each
    # step when the test says, so the viewer is looked at while the run is on.
    engine = FakeEngine(step_s=0.0, held=True)
    window, _ = make_window(engine=engine)
    storyboard(window, ("a fox",), width=512, height=384, steps=12)
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000):
        qtbot.mouseClick(window.run_bar.generate_button, Qt.MouseButton.LeftButton)
        engine.allow_steps(1)
        qtbot.waitUntil(lambda: window.grid.tiles[None].image() is not None, timeout=60000)
        viewer = _open_viewer(qtbot, window, None)
        view = viewer.view
        assert view.image.width() == 64 and view.scene().sceneRect().size().toSize().width() == 512
        assert "(preview)" in viewer.caption.text() and "512 × 384 px" in viewer.caption.text()
        qtbot.keyClick(viewer, Qt.Key.Key_1)  # 100 %: one picture pixel per screen pixel
        assert view.zoom() == pytest.approx(1.0)
        first = _centre(view.image)
        engine.allow_steps(1)
        qtbot.waitUntil(lambda: _centre(view.image) != first, timeout=60000)  # the next step's, in place
        assert "(preview)" in viewer.caption.text() and view.image.width() == 64
        assert view.zoom() == pytest.approx(1.0) and not view.fitting
        assert view.item.sceneBoundingRect().width() == pytest.approx(512)
        engine.allow_steps(10)
    qtbot.waitUntil(lambda: "(preview)" not in viewer.caption.text())
    assert _centre(view.image) == (200, 200, 200)  # the finished picture, decoded at full size
    assert (view.image.width(), view.image.height()) == (512, 384) and view.item.scale() == 1.0
    assert view.zoom() == pytest.approx(1.0)


def test_a_cancelled_run_gives_the_viewer_back_the_last_finished_picture(qtbot, make_window):
    """The viewer follows a running panel; cancelled, it shows what the grid shows again: the
    panel's last finished picture (its file), or, for a panel never finished, that there is none
    (not the cancelled run's stale preview, still called a preview)."""
    engine = FakeEngine(step_s=0.0, held=True)  # the second run waits after its first step
    window, _ = make_window(engine=engine)
    session = storyboard(window, ("a fox",), width=512, height=384, steps=12)
    engine.allow_steps(12)
    _generate(qtbot, window)
    finished = window.pictures.tile_path(0)
    assert finished is not None
    session.add_panel("a crow")
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000):
        qtbot.mouseClick(window.run_bar.generate_button, Qt.MouseButton.LeftButton)
        engine.allow_steps(1)
        qtbot.waitUntil(lambda: window.grid.tiles[1].image() is not None and not window.grid.tiles[0].final,
                        timeout=60000)
        viewer = _open_viewer(qtbot, window, 0)
        assert viewer.caption.text().startswith("Panel 1 (preview)") and viewer.view.image.width() == 64
        qtbot.mouseClick(window.run_bar.cancel_button, Qt.MouseButton.LeftButton)
    assert viewer.caption.text().startswith("Panel 1 (") and "preview" not in viewer.caption.text()
    assert viewer.picture.path == finished
    expected = QImage(str(finished))
    assert (viewer.view.image.width(), viewer.view.image.height()) == (512, 384)
    assert _centre(viewer.view.image) == _centre(expected)
    crow = viewer.pictures[-1]
    assert crow.title == "Panel 2 (not generated yet)" and crow.load().isNull()
