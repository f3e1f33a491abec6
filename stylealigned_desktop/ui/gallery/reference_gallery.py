"""The reference gallery: style pictures dropped, pasted or picked, and which of them (and the
generated reference) the style comes from, each with a weight (spec section 11: a mood board
blended in chosen proportions).

Everything goes through the session, in two steps (:mod:`.picture_import`): each picture is
read, fully decoded to check it and hashed by ``session.pictures.prepare_picture`` in the
window's background pool (a folder of big photos would otherwise freeze the window), then added
by ``Session.add_prepared`` on the UI thread, in the order the files were given. Unreadable
files are reported with their reasons in a banner and the status bar, and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...session import observer
from ...session.errors import SessionError
from ...session.model import Session
from ...session.pictures import PreparedPicture, prepare_picture, prepare_picture_data
from ..support import (
    PICTURE_FILTER,
    ElidedLabel,
    add_menu_command,
    connect_command,
    icon,
    local_paths,
    png_bytes,
)
from ..threads import BackgroundPool, ThumbnailLoader
from .drop_list import DropList
from .picture_import import PictureImport, PictureImporter, describe_errors, expand_folders
from .source_notes import moved_defaults, source_note
from .thumbnail_frames import THUMB, framed_thumbnail, generated_reference_thumbnail

NONE_ID = ""
"""The gallery entry of the generated reference (from the reference prompt and style text)."""
WEIGHT_STEPS = 100
"""The weight slider's steps: weight = value / WEIGHT_STEPS, from 0 to 1."""


class ReferenceGallery(QWidget):
    """Thumbnails of the session's style pictures with add, paste, remove, caption, active."""

    message = Signal(str, bool)
    """A text for the status bar; True when it reports a problem."""
    import_finished = Signal()
    """Every picture of the running import was added or refused."""

    def __init__(self, thumbnails: ThumbnailLoader | None = None, parent=None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self._filling = False
        self._subscription = observer.Subscription(self._on_change)
        self.thumbnails = thumbnails or ThumbnailLoader(self)
        self.pool: BackgroundPool = self.thumbnails.pool
        self.importer = PictureImporter(self.pool, self)
        self.importer.progressed.connect(self._show_progress)
        self.importer.finished.connect(self._import_ended)
        self.thumbnails.ready.connect(self._thumbnail_ready)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._build_title_row())
        layout.addWidget(self._build_strip())
        for note in self._build_notes():
            layout.addWidget(note)
        layout.addLayout(self._build_details_row())
        layout.addLayout(self._build_mix_row())
        self.caption = QLineEdit()
        self.caption.setPlaceholderText("Caption: what the picture shows, e.g. “a fox in a "
                                        "forest” (helps separate its style from its subject)")
        self.caption.editingFinished.connect(self._caption_edited)
        layout.addWidget(self.caption)
        layout.addStretch(1)
        self._add_list_shortcuts()
        self._show_details()

    # ----- construction ---------------------------------------------------------------------
    def _build_title_row(self) -> QHBoxLayout:
        top = QHBoxLayout()
        title = QLabel("Reference pictures")
        title.setObjectName("PanelTitle")
        top.addWidget(title)
        top.addStretch(1)
        self.add_button = self._tool("add", "Add pictures… (or drop files and folders here)",
                                     self.choose_files)
        self.paste_button = self._tool("paste", "Paste a picture from the clipboard (Ctrl+V)",
                                       self.paste)
        top.addWidget(self.add_button)
        top.addWidget(self.paste_button)
        return top

    def _build_strip(self) -> DropList:
        """The film strip: one row of thumbnails that scrolls sideways, and takes drops."""
        self.list = DropList()
        self.list.setObjectName("ReferenceGallery")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 18, THUMB + 26))
        self.list.setMovement(QListView.Movement.Static)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)  # the share first: "50 % · mount…"
        self.list.setUniformItemSizes(True)
        self.list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setFixedHeight(THUMB + 26 + self.list.horizontalScrollBar().sizeHint().height()
                                 + 8)
        self.list.viewport().setAcceptDrops(True)  # setMovement(Static) switched drops off
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.files_dropped.connect(self.add_files)
        self.list.image_dropped.connect(self.add_image)
        self.list.refused.connect(self.show_error)
        self.list.itemDoubleClicked.connect(lambda item: self.make_active(item.data(Qt.ItemDataRole.UserRole)))
        self.list.currentItemChanged.connect(lambda *_: self._show_details())
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        return self.list

    def _build_notes(self) -> tuple[QLabel, QLabel, QLabel]:
        """Under the strip: the problem banner, the import's progress and the how-to hint."""
        self.banner = QLabel("")
        self.banner.setObjectName("ErrorBanner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self._banner_timer = QTimer(self)
        self._banner_timer.setSingleShot(True)
        self._banner_timer.timeout.connect(self.banner.hide)
        self.progress = QLabel("")
        self.progress.setObjectName("Hint")
        self.progress.hide()
        self.hint = QLabel("Drop pictures or folders here, paste (Ctrl+V) or press +. "
                           "Double-click a picture to take its style; tick “Mix” to blend "
                           "several, each with its weight.")
        self.hint.setObjectName("Hint")
        self.hint.setWordWrap(True)
        return self.banner, self.progress, self.hint

    def _build_details_row(self) -> QHBoxLayout:
        """The selected picture's name and size, Use as style, Remove."""
        details = QHBoxLayout()
        self.details = ElidedLabel("")
        self.details.setObjectName("Hint")
        self.use_button = QPushButton(icon("star"), "Use as style")
        self.use_button.setToolTip("Take the style from this picture (double-click does too)")
        connect_command(self.use_button.clicked, lambda: self.make_active(self.current_id()))
        self.remove_button = QPushButton(icon("delete"), "Remove")
        self.remove_button.setToolTip("Take this picture out of the gallery (Delete)")
        connect_command(self.remove_button.clicked, self.remove_current)
        details.addWidget(self.details, 1)
        details.addWidget(self.use_button)
        details.addWidget(self.remove_button)
        return details

    def _build_mix_row(self) -> QHBoxLayout:
        """Whether the selected picture is blended into the style, and its weight and share."""
        mix = QHBoxLayout()
        self.mix_check = QCheckBox("Mix")
        self.mix_check.setToolTip("Blend this picture into the style together with the other "
                                  "ticked ones (the generated reference too)")
        self.mix_check.toggled.connect(self._mix_toggled)
        self.weight = QSlider(Qt.Orientation.Horizontal)
        self.weight.setRange(0, WEIGHT_STEPS)
        self.weight.setToolTip("How much of the style comes from this one; the weights of the "
                               "ticked references are shared out (0: listed but not used)")
        self.weight.valueChanged.connect(self._weight_moved)
        self.share = QLabel("")
        self.share.setObjectName("Hint")
        self.share.setMinimumWidth(self.share.fontMetrics().horizontalAdvance("100 %") + 4)
        mix.addWidget(self.mix_check)
        mix.addWidget(self.weight, 1)
        mix.addWidget(self.share)
        return mix

    def _add_list_shortcuts(self) -> None:
        for key, slot in ((QKeySequence.StandardKey.Delete, self.remove_current),
                          (QKeySequence.StandardKey.Paste, self.paste)):
            action = self.list.addAction("")  # shortcuts scoped to the gallery list
            action.setShortcut(key)
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            connect_command(action.triggered, slot)

    def _tool(self, name: str, tip: str, slot) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon(name))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        connect_command(button.clicked, slot)
        return button

    # ----- session binding ------------------------------------------------------------------
    def set_session(self, session: Session | None) -> None:
        if self.importing:
            self._end_import()  # pictures still being read were meant for the old session
        self.session = session
        self._subscription.follow(session)
        self.refresh()

    def _on_change(self, change: observer.Change) -> None:
        if change.kind in (observer.REFERENCES, observer.STYLE):
            self.refresh()

    def refresh(self) -> None:
        selected = self.current_id()
        self.list.blockSignals(True)
        self.list.clear()
        if self.session is not None:
            generated = self.share_of(None)
            none_item = QListWidgetItem(generated_reference_thumbnail(generated), self._label("Generated", generated))
            none_item.setData(Qt.ItemDataRole.UserRole, NONE_ID)
            none_item.setToolTip("The generated reference: drawn from the reference prompt and "
                                 "the style text")
            self._mark(none_item, generated is not None)
            self.list.addItem(none_item)
            for reference in self.session.references:
                share = self.share_of(reference.id)
                label = reference.caption or reference.name or reference.id
                item = QListWidgetItem(self._icon_for(reference.id, share), self._label(label, share))
                item.setData(Qt.ItemDataRole.UserRole, reference.id)
                item.setToolTip(f"{reference.name}\n{reference.width} × {reference.height} px"
                                + (f"\n{reference.caption}" if reference.caption else ""))
                self._mark(item, share is not None)
                self.list.addItem(item)
        self.list.blockSignals(False)
        self._select(selected if selected is not None else NONE_ID)
        self._show_details()

    def share_of(self, ref_id: str | None) -> float | None:
        """The normalised share of the style a reference has (None: not active)."""
        style = self.session.style if self.session else None
        weight = style.weight_of(ref_id or None) if style else None
        return None if weight is None else weight / sum(x.weight for x in style.sources)

    def _label(self, text: str, share: float | None) -> str:
        several = self.session is not None and len(self.session.style.sources) > 1
        return f"{round(share * 100)} % · {text}" if several and share is not None else text

    def _mark(self, item: QListWidgetItem, active: bool) -> None:
        font = QFont(item.font())
        font.setBold(active)
        item.setFont(font)

    def _select(self, ref_id: str) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == ref_id:
                self.list.setCurrentRow(row)
                return
        if self.list.count():
            self.list.setCurrentRow(0)

    def items(self) -> list[str]:
        """Reference ids shown, in order (the 'none' entry excluded)."""
        return [self.list.item(r).data(Qt.ItemDataRole.UserRole)
                for r in range(1, self.list.count())]

    def current_id(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def _icon_for(self, ref_id: str, active: float | None) -> QIcon:
        reference = self.session.reference(ref_id) if self.session else None
        if reference is None:
            return framed_thumbnail(None, active)
        image = self.thumbnails.request(self.session.path(reference.file), THUMB)
        return framed_thumbnail(image, active)

    def _thumbnail_ready(self, path: str, size: int, image: QImage) -> None:
        if self.session is None or size != THUMB:
            return
        for row in range(1, self.list.count()):
            item = self.list.item(row)
            ref_id = item.data(Qt.ItemDataRole.UserRole)
            reference = self.session.reference(ref_id)
            if reference is not None and str(self.session.path(reference.file)) == path:
                item.setIcon(framed_thumbnail(image, self.share_of(ref_id)))

    # ----- actions --------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.show()
        self._banner_timer.start(12000)
        self.message.emit(text, True)

    @property
    def importing(self) -> bool:
        """Whether pictures are still being read and added."""
        return self.importer.job is not None

    def add_files(self, paths: list[str]) -> None:
        """Add pictures (files or folders); unreadable ones are reported and skipped.

        Each picture is read and checked in the background pool and added when ready (in the
        given order), so the window stays responsive; with several files a count shows the
        progress. Files dropped while an import runs join it.
        """
        if self.session is None:
            return
        files = expand_folders(paths)
        folders = [p for p in paths if Path(p).is_dir()]
        if not files and folders:
            self.show_error(f"Not added: {Path(folders[0]).name}: the folder has no pictures")
            return
        self._import_items([(f.name, prepare_picture, (f,)) for f in files])

    def _import_items(self, items: list[tuple[str, Callable[..., PreparedPicture], tuple]]) -> None:
        if not self.importing:
            self.setCursor(Qt.CursorShape.BusyCursor)
        self.importer.add(self.session, items)

    def _import_ended(self, job: PictureImport) -> None:
        self._end_import()
        self._report_import(job.added, job.present, job.errors)
        self.import_finished.emit()

    def _show_progress(self, job: PictureImport) -> None:
        if len(job.items) > 1:
            text = f"Adding pictures: {job.next} of {len(job.items)}…"
            self.progress.setText(text)
            self.progress.show()
            self.message.emit(text, False)

    def _end_import(self) -> None:
        self.importer.stop()
        self.progress.hide()
        self.unsetCursor()

    def _report_import(self, added: list, present: list, errors: list[str]) -> None:
        if errors:
            self.show_error(describe_errors(errors))
        else:
            self.banner.hide()
        if added:
            self._select(added[-1].id)
            names = ", ".join(r.name for r in added[:3])
            more = "…" if len(added) > 3 else ""
            if not errors:
                self.message.emit(f"Added {len(added)} picture(s): {names}{more}", False)
        elif present and not errors:
            self._select(present[-1].id)
            self.message.emit("That picture is already in the gallery", False)

    def add_image(self, image: QImage, name: str = "pasted.png") -> None:
        """Add a pasted or dragged-in picture (checked in the background pool, as files are)."""
        if self.session is None:
            return
        if image.isNull():
            self.show_error("The pasted data is not a picture")
            return
        self._import_items([(name, prepare_picture_data, (png_bytes(image), name))])

    def paste(self) -> None:
        mime = QApplication.clipboard().mimeData()
        if mime is not None and mime.hasUrls():
            local, _ = local_paths(mime.urls())
            if local:
                self.add_files(local)
                return
        if mime is not None and mime.hasImage():
            self.add_image(QImage(mime.imageData()))
            return
        self.show_error("The clipboard holds no picture to paste")

    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add reference pictures", "", PICTURE_FILTER)
        if paths:
            self.add_files(paths)

    def make_active(self, ref_id: str | None) -> None:
        if self.session is None or ref_id is None:
            return
        before = self.session.settings
        try:
            self.session.set_active_reference(ref_id or None)
        except SessionError as exc:
            self.show_error(str(exc))
            return
        self._select(ref_id)
        self.message.emit(f"The style now comes from {self._name(ref_id)}"
                          + moved_defaults(before, self.session), False)

    def _name(self, ref_id: str) -> str:
        reference = self.session.reference(ref_id) if ref_id else None
        return "the generated reference" if reference is None else reference.name or "the picture"

    def _mix_toggled(self, on: bool) -> None:
        if not self._filling:
            self.set_mix(self.current_id(), on)

    def set_mix(self, ref_id: str | None, on: bool) -> None:
        """Blend a reference into the style (``on``) or leave it out (NONE_ID: the generated one)."""
        if self.session is None or ref_id is None:
            return
        before = self.session.settings, self.session.style.uses_picture
        if self._change_mix(ref_id, lambda: self.session.set_source_active(ref_id or None, on)):
            said = "Mixed {} into the style" if on else "Left {} out of the mix"
            self.message.emit(said.format(self._name(ref_id)) + source_note(*before, self.session),
                              False)

    def _weight_moved(self, value: int) -> None:
        ref_id = self.current_id()
        if self.session is None or ref_id is None or self._filling:
            return
        self._change_mix(ref_id,
                         lambda: self.session.set_source_weight(ref_id or None, value / WEIGHT_STEPS))

    def _change_mix(self, ref_id: str, change: Callable[[], object]) -> bool:
        """Change the blend (True if done); a refusal is shown and the mix row set back."""
        try:
            change()
        except SessionError as exc:
            self.show_error(str(exc))
            self._show_details()
            return False
        self._select(ref_id)
        return True

    def remove_current(self) -> None:
        ref_id = self.current_id()
        if self.session is None or not ref_id:
            return
        before = self.session.settings, self.session.style.uses_picture
        reference = self.session.remove_reference(ref_id)
        self.message.emit(f"Removed {reference.name or reference.id} from the gallery"
                          + source_note(*before, self.session), False)

    def _caption_edited(self) -> None:
        ref_id = self.current_id()
        if self.session is None or not ref_id:
            return
        try:
            self.session.set_reference_caption(ref_id, self.caption.text().strip())
        except SessionError as exc:
            self.show_error(str(exc))

    def _show_details(self) -> None:
        ref_id = self.current_id()
        reference = self.session.reference(ref_id) if (self.session and ref_id) else None
        style = self.session.style if self.session else None
        only = style.sources[0].picture if style is not None and len(style.sources) == 1 else False
        is_picture = reference is not None
        self.caption.setEnabled(is_picture)
        self.remove_button.setEnabled(is_picture)
        self.use_button.setEnabled(self.session is not None and ref_id is not None
                                   and (ref_id or None) != only)
        if is_picture:
            self.details.setText(f"{reference.name}  ·  {reference.width} × {reference.height}")
            if not self.caption.hasFocus():
                self.caption.setText(reference.caption)
        else:
            self.details.setText("Generated from the style text" if ref_id == NONE_ID else "")
            self.caption.clear()
        weight = style.weight_of(ref_id or None) if style is not None and ref_id is not None else None
        share = self.share_of(ref_id) if ref_id is not None else None
        self._filling = True
        try:
            self.mix_check.setEnabled(ref_id is not None and self.session is not None)
            self.mix_check.setChecked(weight is not None)
            self.weight.setEnabled(weight is not None)
            self.weight.setValue(round((weight or 0.0) * WEIGHT_STEPS))
            self.share.setText("" if share is None else f"{round(share * 100)} %")
        finally:
            self._filling = False

    def _menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        menu = QMenu(self)
        if item is not None:
            ref_id = item.data(Qt.ItemDataRole.UserRole)
            add_menu_command(menu, "Use as style", lambda: self.make_active(ref_id), "star")
            weight = self.session.style.weight_of(ref_id or None) if self.session else None
            add_menu_command(menu, "Leave out of the mix" if weight is not None else "Add to the mix",
                             lambda: self.set_mix(ref_id, weight is None))
            if ref_id:
                add_menu_command(menu, "Remove", self.remove_current, "delete")
            menu.addSeparator()
        add_menu_command(menu, "Add pictures…", self.choose_files, "add")
        add_menu_command(menu, "Paste", self.paste, "paste")
        menu.exec(self.list.viewport().mapToGlobal(pos))
