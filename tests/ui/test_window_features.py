"""Window features around the run: history, restore, export, control maps, per-picture actions,
shortcuts, the first-run model dialog, remembered geometry, themes and start-up time."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from PIL import Image
from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence, QPalette
from PySide6.QtWidgets import QApplication, QMainWindow

from stylealigned_desktop.engine.runfolder import read_parameters
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.ui.dialogs import ModelDialog
from stylealigned_desktop.ui.support import DesktopConfig
from stylealigned_desktop.ui.support.theme import apply_theme, system_is_dark
from tests.ui.uifakes import FakeEngine, drop_files, run_and_wait, storyboard


def generate(qtbot, window, action=None):
    return run_and_wait(qtbot, window, action, timeout=30000)


def test_history_shows_a_past_run_and_restores_its_settings_and_seeds(qtbot, make_window):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    generate(qtbot, window)
    first = session.history[0]
    first_seeds = [p.seed for p in session.panels]
    first_files = {i: window.grid.tiles[i].path for i in range(3)}
    session.update_settings(steps=3, guidance=7.0)
    generate(qtbot, window)
    assert [p.seed for p in session.panels] != first_seeds
    assert window.history.list.count() == 2

    window.history_dock.raise_()
    window.history.select_run(first.id)
    assert window.pictures.viewing_run == first.id and not window.viewing_bar.isHidden()
    assert {i: window.grid.tiles[i].path for i in range(3)} == first_files
    window.viewing_restore.click()
    assert window.pictures.viewing_run is None and window.viewing_bar.isHidden()
    assert [p.seed for p in session.panels] == first_seeds
    assert all(p.seed_locked for p in session.panels)
    assert session.settings.steps == 2 and session.settings.guidance == first.settings.guidance
    assert window.settings_panel.steps.value() == 2


def test_export_contact_sheets_and_pictures_with_their_parameters(qtbot, make_window, tmp_path):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    generate(qtbot, window)
    png = window.exports.export_png(str(tmp_path / "sheet.png"))
    with Image.open(png) as sheet:
        assert sheet.width > 64 * 2 and sheet.height > 64
    pdf = window.exports.export_pdf(str(tmp_path / "sheet.pdf"))
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"/Type /Page" in data
    written = window.exports.export_pictures(str(tmp_path / "pictures"))
    assert sorted(p.name for p in written) == ["panel-01.png", "panel-02.png", "panel-03.png",
                                               "reference.png"]
    params = read_parameters(tmp_path / "pictures" / "panel-02.png")
    assert params["prompt"] == "a crow, ink sketch." and params["seed"] == session.panels[1].seed


def test_per_picture_save_copy_and_use_as_reference(qtbot, make_window, tmp_path):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    generate(qtbot, window)
    saved = window.pictures.save_picture(2, str(tmp_path / "bear.png"))
    assert read_parameters(saved)["prompt"] == "a bear, ink sketch."
    jpeg = window.pictures.save_picture(2, str(tmp_path / "bear.jpg"))
    with Image.open(jpeg) as image:
        assert image.format == "JPEG" and image.size == (64, 64)
    window.pictures.copy_picture(1)
    copied = QGuiApplication.clipboard().image()
    assert copied.width() == 64 and copied.pixelColor(5, 5).green() == FakeEngine.colour(
        session.panels[1].seed)[1]
    window.grid.tiles[0].reference_button.click()
    active = session.active_reference
    assert active is not None and active.caption == "a fox"
    assert window.gallery.items() == [active.id]


def test_control_maps_are_computed_in_the_worker(qtbot, make_window, tmp_path):
    window, _ = make_window()  # the real engine.control, tiny depth model
    session = storyboard(window)
    source = tmp_path / "pose.png"
    image = Image.new("RGB", (128, 128), "white")
    for x in range(30, 100):
        for y in range(30, 100):
            image.putpixel((x, y), (0, 0, 0))
    image.save(source)
    card = window.storyboard.card_at(0)
    drop_files(card, [source])
    qtbot.waitUntil(lambda: card.control_note.text() == "canny map", timeout=30000)
    edges = card.control_thumb.image
    values = [edges.pixelColor(x, y).value() for x in range(0, edges.width(), 2)
              for y in range(0, edges.height(), 2)]
    # an edge map of a black square on white: mostly black, with white outline pixels
    assert max(values) > 200 and sorted(values)[len(values) // 2] < 50
    card.mode.setCurrentIndex(card.mode.findData("depth"))
    qtbot.waitUntil(lambda: card.control_note.text() == "depth map", timeout=60000)
    assert session.panels[0].control.mode == "depth"


def test_shortcuts_generate_cancel_new_panel_and_save(qtbot, make_window, tmp_path):
    engine = FakeEngine(held=True)  # its run waits for its steps: Esc comes while it runs
    window, _ = make_window(engine=engine)
    session = storyboard(window)
    shortcuts = {
        window.generate_action: "Ctrl+Return", window.cancel_action: "Esc",
        window.new_panel_action: "Ctrl+Shift+N", window.save_action: QKeySequence(
            QKeySequence.StandardKey.Save).toString(),
    }
    for action, keys in shortcuts.items():
        assert keys in [s.toString() for s in action.shortcuts()], action.text()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=30000)
    window.grid.setFocus()
    qtbot.keyClick(window.grid, Qt.Key.Key_N,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(session.panels) == 4
    session.remove_panel(3)
    session.update_settings(steps=300)
    window.grid.setFocus()
    with qtbot.waitSignal(window.worker.job_started, timeout=60000):
        qtbot.keyClick(window.grid, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000) as ended:
        qtbot.keyClick(window.grid, Qt.Key.Key_Escape)
    assert ended.args[0].state.value == "cancelled"


def test_the_first_start_asks_for_a_model_and_remembers_it(qtbot, make_window, monkeypatch):
    def choose_tiny(dialog):
        assert "noise" in dialog.tiny_radio.text()
        dialog.tiny_radio.setChecked(True)
        dialog.try_accept()
        return dialog.result()

    monkeypatch.setattr(ModelDialog, "exec", choose_tiny)
    window, _ = make_window(engine=FakeEngine(), config=DesktopConfig(model=""), startup=True)
    qtbot.waitUntil(lambda: window.config.model == "tiny", timeout=30000)
    assert DesktopConfig.load().model == "tiny"
    assert not window.run_bar.tiny_label.isHidden()
    assert window.settings_panel.model_label.text() == "tiny"


def test_window_geometry_and_layout_are_remembered(qtbot, make_window):
    config = DesktopConfig(model="tiny")
    window, _ = make_window(engine=FakeEngine(), config=config)
    window.sessions.set_session(Session())
    window.history_dock.hide()
    qtbot.wait(50)
    window.close()
    assert config.geometry and config.window_state
    again, _ = make_window(engine=FakeEngine(), config=DesktopConfig.load())
    qtbot.wait(50)
    assert again.history_dock.isHidden() and not again.settings_dock.isHidden()
    # The offscreen test screen (800 px) is smaller than the window, so Qt clamps the restored
    # size and position; what can be checked is that the saved geometry is valid and was used.
    assert QMainWindow().restoreGeometry(QByteArray.fromHex(config.geometry.encode()))
    assert again.saveGeometry().toHex().data().decode() != ""


def test_dark_and_light_follow_the_requested_scheme(qtbot, monkeypatch):
    app = QApplication.instance()  # its look before is put back after the test (tests/ui/conftest.py)
    monkeypatch.setenv("STYLEALIGNED_THEME", "dark")
    assert apply_theme(app) and system_is_dark(app)
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
    monkeypatch.setenv("STYLEALIGNED_THEME", "light")
    assert not apply_theme(app)
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 200


def test_start_up_shows_the_window_without_loading_torch(tmp_path):
    # Start-up time itself is a benchmark (benchmarks/bench_ui_latency.py), not a test assertion.
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               STYLEALIGNED_CONFIG_DIR=str(tmp_path / "c"), STYLEALIGNED_DATA_DIR=str(tmp_path / "d"))
    result = subprocess.run([sys.executable, "-m", "stylealigned_desktop", "--quit-after-show"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r"window shown after ([\d.]+) s \(torch loaded: (\w+)\)", result.stdout)
    assert match, result.stdout
    assert match.group(2) == "False"


def test_the_generator_warms_up_in_the_worker_after_start(qtbot, make_window):
    import threading

    built, warmed = [], []

    class Recording(FakeEngine):
        def __init__(self):
            super().__init__()
            built.append(threading.current_thread().name)

        def warm_up(self):  # what Engine.warm_up is called as
            warmed.append(threading.current_thread().name)

    from stylealigned_desktop.ui.window import MainWindow

    window = MainWindow(DesktopConfig(model="tiny"), engine_factory=Recording)
    window.ask = lambda *a, **k: "Don't save"
    qtbot.addWidget(window)
    window.startup()
    assert not window.worker.engine_loaded
    qtbot.waitUntil(lambda: bool(warmed), timeout=10000)
    assert window.worker.engine_loaded
    assert built == warmed == ["stylealigned-engine"]
    window.close()


def test_dropping_a_generated_png_on_the_settings_uses_its_settings(qtbot, make_window, tmp_path):
    """"Use this picture's settings": a PNG the app wrote (any run folder) dropped onto the
    Settings panel sets steps, guidance, size, sampler, negative prompt and the StyleAligned
    knobs from its ``stylealigned`` chunk; the model stays the one chosen on this computer."""
    from stylealigned_desktop.engine.events import RunResult
    from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
    from stylealigned_desktop.engine.runfolder import write_run_folder
    from stylealigned_desktop.engine.settings import StyleAlignedSettings

    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    settings = StyleAlignedSettings(shared_score_shift=0.4, adain_values=True, only_self_level=0.2)
    request = SetRequest(model="someone/other-sdxl", style=GeneratedReference("a fox, ink", 3),
                         panels=(Panel("a hare, ink", 9),),
                         sampling=Sampling(steps=23, guidance=6.5, width=832, height=1216, scheduler="euler",
                                           negative_prompt="blurry"),
                         settings=settings)
    image = Image.new("RGB", (832 // 8, 1216 // 8), "grey")
    write_run_folder(tmp_path / "run", request, RunResult(image, {0: image}, {}))
    model_before = session.settings.model
    enter, drop = drop_files(window.settings_panel, [tmp_path / "run" / "panel-01.png"])
    assert enter.isAccepted() and drop.isAccepted()
    new = session.settings
    assert (new.steps, new.guidance, new.width, new.height, new.scheduler, new.negative_prompt) == \
        (23, 6.5, 832, 1216, "euler", "blurry")
    assert new.style_aligned == settings and new.model == model_before
    assert window.settings_panel.steps.value() == 23 and window.settings_panel.scheduler.currentData() == "euler"

    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    drop_files(window.settings_panel, [plain])
    assert session.settings == new
    assert "no StyleAligned settings" in window.banner_text.text()
