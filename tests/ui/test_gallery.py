"""The reference gallery: real drops of file URLs, paste, remove, captions, active reference."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QImage

from stylealigned_desktop.session.model import Session
from stylealigned_desktop.ui.gallery import ReferenceGallery
from tests.ui.uifakes import drop_files, drop_mime, picture


def drop_urls(widget, paths):
    enter, drop = drop_files(widget.viewport(), paths)
    assert enter.isAccepted()
    return drop


def drop_and_wait(qtbot, gallery, paths):
    """Drop files and wait until the gallery has read and added (or refused) them all."""
    with qtbot.waitSignal(gallery.import_finished, timeout=10000):
        drop = drop_urls(gallery.list, paths)
    return drop


def make_gallery(qtbot):
    session = Session()
    gallery = ReferenceGallery()
    qtbot.addWidget(gallery)
    gallery.set_session(session)
    gallery.resize(400, 400)
    gallery.show()
    return session, gallery


def test_dropping_files_and_a_folder_adds_references(qtbot, tmp_path):
    session, gallery = make_gallery(qtbot)
    first = picture(tmp_path / "fox.png")
    folder = tmp_path / "moodboard"
    folder.mkdir()
    picture(folder / "a.jpg", (10, 120, 30))
    picture(folder / "b.webp", (90, 90, 200))
    drop = drop_and_wait(qtbot, gallery, [first, folder])
    assert drop.isAccepted()
    names = sorted(r.name for r in session.references)
    assert names == ["a.jpg", "b.webp", "fox.png"]
    assert gallery.items() == [r.id for r in session.references]
    # copies live in the session folder, the first picture became the active reference
    assert all(session.path(r.file).is_file() for r in session.references)
    assert session.style.active_reference == session.references[0].id
    assert gallery.banner.isHidden()


def test_bad_files_are_refused_with_a_specific_message_and_nothing_changes(qtbot, tmp_path):
    session, gallery = make_gallery(qtbot)
    drop_and_wait(qtbot, gallery, [picture(tmp_path / "ok.png")])
    before = session.to_dict()
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    truncated = tmp_path / "broken.jpg"
    full = tmp_path / "full.jpg"
    Image.new("RGB", (300, 300), (1, 2, 3)).save(full, quality=95)
    truncated.write_bytes(full.read_bytes()[:200])
    messages = []
    gallery.message.connect(lambda msg, problem: messages.append((msg, problem)))
    drop_and_wait(qtbot, gallery, [text, truncated])
    assert session.to_dict() == before
    assert not gallery.banner.isHidden()
    shown = gallery.banner.text()
    assert "notes.png" in shown and "broken.jpg" in shown
    assert messages and messages[-1][1] is True and "notes.png" in messages[-1][0]


def test_paste_adds_the_clipboard_picture(qtbot):
    session, gallery = make_gallery(qtbot)
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkCyan)
    QGuiApplication.clipboard().setImage(image)
    with qtbot.waitSignal(gallery.import_finished, timeout=60000):
        gallery.paste()
    assert len(session.references) == 1
    stored = Image.open(session.path(session.references[0].file))
    assert stored.size == (40, 30)
    assert stored.convert("RGB").getpixel((5, 5)) == (0, 128, 128)


def test_remove_caption_and_choosing_none_or_a_picture(qtbot, tmp_path):
    session, gallery = make_gallery(qtbot)
    drop_and_wait(qtbot, gallery, [picture(tmp_path / "a.png"),
                                   picture(tmp_path / "b.png", (0, 0, 0))])
    a, b = session.references
    gallery.make_active(b.id)
    assert session.style.active_reference == b.id
    gallery.make_active("")  # the "from the style text" entry
    assert session.style.active_reference is None
    gallery._select(a.id)
    gallery.caption.setText("a red ball")
    gallery.caption.editingFinished.emit()
    assert session.reference(a.id).caption == "a red ball"
    gallery._select(a.id)
    gallery.remove_current()
    assert [r.id for r in session.references] == [b.id]
    assert gallery.items() == [b.id]


def test_a_non_local_url_is_refused_with_a_message(qtbot):
    session, gallery = make_gallery(qtbot)
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/cat.png")])
    drop_mime(gallery.list.viewport(), mime)
    assert session.references == ()
    assert "Only files on this computer" in gallery.banner.text()


def test_a_big_drop_is_read_off_the_ui_thread_in_order_with_a_progress_count(qtbot, tmp_path,
                                                                              monkeypatch):
    import threading

    from stylealigned_desktop.session import pictures

    session, gallery = make_gallery(qtbot)
    folder = tmp_path / "shoot"
    folder.mkdir()
    for k in range(9):
        picture(folder / f"frame-{k}.png", (20 * k, 100, 200 - 20 * k))
    (folder / "notes.txt").write_text("ignored: not a picture extension")
    (folder / "frame-bad.png").write_text("broken")
    checked_in = set()
    real_check = pictures.inspect_picture_file

    def recording_check(path, name=None):
        checked_in.add(threading.current_thread().name)
        return real_check(path, name)

    monkeypatch.setattr(pictures, "inspect_picture_file", recording_check)
    progress = []
    gallery.message.connect(lambda text, problem: progress.append(text))
    with qtbot.waitSignal(gallery.import_finished, timeout=10000):
        drop_urls(gallery.list, [folder])
        assert session.references == ()  # nothing is decoded during the drop itself
        assert gallery.importing and gallery.progress.text() == "Adding pictures: 0 of 10…"
        assert not gallery.progress.isHidden()
    assert checked_in and threading.current_thread().name not in checked_in
    assert all(name.startswith("stylealigned-files") for name in checked_in)
    # the folder's order (sorted), whatever order the pool finished in
    assert [r.name for r in session.references] == [f"frame-{k}.png" for k in range(9)]
    assert gallery.items() == [r.id for r in session.references]
    assert "Adding pictures: 10 of 10…" not in progress  # the end is reported, not counted
    assert any(text.startswith("Adding pictures:") for text in progress)
    assert "frame-bad.png" in gallery.banner.text()
    assert gallery.progress.isHidden() and not gallery.importing


def test_an_import_running_when_the_session_changes_adds_nothing_to_either(qtbot, tmp_path):
    session, gallery = make_gallery(qtbot)
    files = [picture(tmp_path / f"p{k}.png", (30 * k, 0, 0), size=(400, 300)) for k in range(4)]
    drop_urls(gallery.list, files)
    other = Session()
    gallery.set_session(other)
    assert not gallery.importing and gallery.progress.isHidden()
    assert gallery.pool.wait(10000)
    assert session.references == () and other.references == ()


def _click_item(gallery, ref_id):
    from PySide6.QtTest import QTest

    row = ([""] + gallery.items()).index(ref_id)
    rect = gallery.list.visualItemRect(gallery.list.item(row))
    QTest.mouseClick(gallery.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert gallery.current_id() == ref_id


def test_a_mood_board_blends_several_pictures_and_the_generated_reference_with_weights(qtbot, tmp_path):
    from PySide6.QtTest import QTest

    session, gallery = make_gallery(qtbot)
    session.set_style_text("ink")
    session.add_panel("a boat")
    drop_and_wait(qtbot, gallery, [picture(tmp_path / "a.png", (200, 10, 10)),
                                   picture(tmp_path / "b.png", (10, 10, 200))])
    a, b = session.references
    assert session.style.active_reference == a.id
    _click_item(gallery, b.id)
    assert not gallery.mix_check.isChecked() and not gallery.weight.isEnabled()
    QTest.mouseClick(gallery.mix_check, Qt.MouseButton.LeftButton)
    assert [(x.picture, x.weight) for x in session.style.sources] == [(a.id, 1.0), (b.id, 1.0)]
    assert gallery.weight.isEnabled() and gallery.share.text() == "50 %"
    QTest.keyClick(gallery.weight, Qt.Key.Key_Home)  # the slider's own keys, as a user moves it
    for _ in range(5):
        QTest.keyClick(gallery.weight, Qt.Key.Key_PageUp)
    assert session.style.weight_of(b.id) == 0.5 and gallery.share.text() == "33 %"
    assert gallery.list.item(2).text().startswith("33 % ·")
    _click_item(gallery, "")  # the generated reference joins the mix too
    QTest.mouseClick(gallery.mix_check, Qt.MouseButton.LeftButton)
    request = session.build_request(default_model="tiny")
    assert [type(r).__name__ for r in request.references] == ["ReferencePicture", "ReferencePicture",
                                                              "GeneratedReference"]
    assert request.weights == (1 / 2.5, 0.5 / 2.5, 1 / 2.5)
    _click_item(gallery, a.id)  # and a picture leaves it
    QTest.mouseClick(gallery.mix_check, Qt.MouseButton.LeftButton)
    assert [x.picture for x in session.style.sources] == [b.id, None]
    assert not gallery.weight.isEnabled() and gallery.list.item(1).text() == (a.caption or a.name)
    _click_item(gallery, b.id)  # "Use as style" makes one picture the only source again
    QTest.mouseClick(gallery.use_button, Qt.MouseButton.LeftButton)
    assert session.style.sources[0].picture == b.id and len(session.style.sources) == 1


def test_the_last_weight_cannot_go_to_zero(qtbot, tmp_path):
    from PySide6.QtTest import QTest

    session, gallery = make_gallery(qtbot)
    drop_and_wait(qtbot, gallery, [picture(tmp_path / "a.png")])
    _click_item(gallery, session.references[0].id)
    QTest.keyClick(gallery.weight, Qt.Key.Key_Home)
    assert session.style.sources[0].weight == 1.0  # refused: a style needs some weight
    assert "weight above 0" in gallery.banner.text() and gallery.weight.value() == 100
