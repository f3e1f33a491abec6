"""A picture dragged from a file manager onto a text field of Settings or Style is not pasted into
the field as its file:// address (file managers offer the file as text too): the drop goes where
pictures go. Dispatched through the window as Qt's drag and drop does (the widget under the
cursor that accepts drops, or its nearest parent that does)."""

from __future__ import annotations

from PIL import Image

from stylealigned_desktop.engine.events import RunResult
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.engine.runfolder import write_run_folder
from tests.ui.uifakes import FakeEngine, picture, storyboard


def _drop_at(widget, mime):
    """Drag-enter, move and drop ``mime`` over the middle of ``widget``, sent to its window."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    window = widget.window().windowHandle()
    point = QPointF(widget.mapTo(widget.window(), widget.rect().center()))
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    for event in (QDragEnterEvent(point.toPoint(), *args), QDragMoveEvent(point.toPoint(), *args),
                  QDropEvent(point, *args)):
        QApplication.sendEvent(window, event)


def _file_manager_mime(path):
    """What a file manager offers for one dragged file: its URL, and the same as text."""
    from PySide6.QtCore import QMimeData, QUrl

    mime = QMimeData()
    url = QUrl.fromLocalFile(str(path))
    mime.setUrls([url])
    mime.setText(url.toString())
    return mime


def test_a_png_dropped_on_the_avoid_field_restores_its_settings_and_types_nothing(qtbot, make_window, tmp_path):
    request = SetRequest(model="tiny", style=GeneratedReference("a fox, ink", 3), panels=(Panel("a hare", 9),),
                         sampling=Sampling(steps=23, width=128, height=64, scheduler="euler",
                                           negative_prompt="lowres"))
    image = Image.new("RGB", (16, 8), "grey")
    write_run_folder(tmp_path / "run", request, RunResult(image, {0: image}, {}))
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    field = window.settings_panel.negative
    field.setText("blurry")
    _drop_at(field, _file_manager_mime(tmp_path / "run" / "panel-01.png"))
    assert session.settings.steps == 23  # the picture's settings were used ...
    assert field.text() == "lowres"  # ... its negative prompt too, and no file address typed


def test_a_picture_dropped_on_the_style_text_becomes_a_reference_not_text(qtbot, make_window, tmp_path):
    window, _ = make_window(engine=FakeEngine())
    storyboard(window, style="ink sketch.")
    field = window.style_panel.text
    tiles = window.gallery.list.count()
    with qtbot.waitSignal(window.gallery.import_finished, timeout=10000):
        _drop_at(field, _file_manager_mime(picture(tmp_path / "fox.png")))
    assert field.text() == "ink sketch."
    assert window.gallery.list.count() == tiles + 1  # where pictures dropped on the window go


def test_text_dragged_onto_the_avoid_field_is_still_dropped_into_it(qtbot, make_window):
    from PySide6.QtCore import QMimeData

    window, _ = make_window(engine=FakeEngine())
    storyboard(window)
    field = window.settings_panel.negative
    field.clear()
    mime = QMimeData()
    mime.setText("watermark")
    _drop_at(field, mime)
    assert field.text() == "watermark"
