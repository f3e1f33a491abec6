"""The reference gallery: style pictures dropped, pasted or picked, and which of them (and the
generated reference) the style comes from, each with a weight (spec section 11: a mood board
blended in chosen proportions).

Everything goes through the session, in two steps: each picture is read, fully decoded to check
it and hashed by ``session.pictures.prepare_picture`` in the window's background pool (a folder
of big photos would otherwise freeze the window), then added by ``Session.add_prepared`` on the
UI thread, in the order the files were given. Unreadable files are reported with their reasons
in a banner and the status bar, and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QIODevice, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QKeySequence, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..session import observer
from ..session.errors import PictureError, SessionError
from ..session.folders import is_session_folder
from ..session.model import Reference, Session
from ..session.pictures import PreparedPicture, prepare_picture, prepare_picture_data
from .actions import add_menu_command, connect_command
from .background import BackgroundPool
from .previews import ElidedLabel
from .theme import ACCENT, icon
from .thumbnails import ThumbnailLoader

NONE_ID = ""
"""The gallery entry of the generated reference (from the reference prompt and style text)."""
THUMB = 88
WEIGHT_STEPS = 100
"""The weight slider's steps: weight = value / WEIGHT_STEPS, from 0 to 1."""
PICTURE_FILTER = "Pictures (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp);;All files (*)"


def local_paths(urls: list[QUrl]) -> tuple[list[str], list[str]]:
    """(local file paths, everything else as text) from dropped or pasted URLs."""
    local, other = [], []
    for url in urls:
        if url.isLocalFile():
            local.append(url.toLocalFile())
        else:
            other.append(url.toString())
    return local, other


def png_bytes(image: QImage) -> bytes:
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data())


def expand_folders(paths: list[str]) -> list[Path]:
    """Files as given, and the picture files inside folders (recursively, hidden ones skipped)."""
    from ..session.pictures import picture_files

    return picture_files(paths)


def describe_errors(errors: list[str], limit: int = 3) -> str:
    if len(errors) == 1:
        return f"Not added: {errors[0]}"
    shown = "; ".join(errors[:limit]) + ("; …" if len(errors) > limit else "")
    return f"{len(errors)} files were not added: {shown}"


@dataclass
class PictureImport:
    """Pictures being prepared in the background and added in order (see the module docstring).

    ``items`` are (file name, prepare function, its arguments); ``results`` holds what came
    back for items not added yet (a PreparedPicture or the exception), by position.
    """

    session: Session
    items: list[tuple[str, Callable[..., PreparedPicture], tuple]]
    results: dict[int, Any] = field(default_factory=dict)
    next: int = 0
    added: list[Reference] = field(default_factory=list)
    present: list[Reference] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.next >= len(self.items)


def import_error(name: str, error: BaseException) -> str:
    """The line for a file that could not be added (PictureError already names the file)."""
    if isinstance(error, PictureError):
        return str(error)
    if isinstance(error, OSError):
        return f"{name}: it could not be copied into the session ({error.strerror or error})"
    return f"{name}: {error}"


class DropList(QListWidget):
    """A list that takes files, folders and picture data dropped from other applications."""

    files_dropped = Signal(list)
    image_dropped = Signal(QImage)
    session_dropped = Signal(Path)
    """A session folder (*.stylealigned) was dropped: open it rather than add its pictures."""
    refused = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setDropIndicatorShown(False)

    @staticmethod
    def _acceptable(mime) -> bool:
        return mime.hasUrls() or mime.hasImage()

    def _highlight(self, on: bool) -> None:
        self.setProperty("dropTarget", on)
        self.style().unpolish(self)
        self.style().polish(self)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self._acceptable(event.mimeData()):
            event.acceptProposedAction()
            self._highlight(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self._acceptable(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._highlight(False)
        super().dragLeaveEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._highlight(False)
        if self.take(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def take(self, mime) -> bool:
        """Hand dropped data on: a session folder to ``session_dropped``, local files and
        folders to ``files_dropped``, picture data to ``image_dropped``. Whether it was taken."""
        if mime.hasUrls():
            local, other = local_paths(mime.urls())
            sessions = [p for p in local if is_session_folder(p)]
            if sessions:
                self.session_dropped.emit(Path(sessions[0]))
                return True
            if other and not local:
                self.refused.emit("Only files on this computer can be added; save the picture "
                                  f"first ({other[0]})")
            if local:
                self.files_dropped.emit(local)
            return True
        if mime.hasImage():
            self.image_dropped.emit(QImage(mime.imageData()))
            return True
        return False


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
        self._import: PictureImport | None = None
        self.thumbnails = thumbnails or ThumbnailLoader(self)
        self.pool: BackgroundPool = self.thumbnails.pool
        self.thumbnails.ready.connect(self._thumbnail_ready)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
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
        layout.addLayout(top)

        self.list = DropList()
        self.list.setObjectName("ReferenceGallery")
        # a film strip: one row of thumbnails that scrolls sideways
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
        layout.addWidget(self.list)

        self.banner = QLabel("")
        self.banner.setObjectName("ErrorBanner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self._banner_timer = QTimer(self)
        self._banner_timer.setSingleShot(True)
        self._banner_timer.timeout.connect(self.banner.hide)
        layout.addWidget(self.banner)

        self.progress = QLabel("")
        self.progress.setObjectName("Hint")
        self.progress.hide()
        layout.addWidget(self.progress)

        self.hint = QLabel("Drop pictures or folders here, paste (Ctrl+V) or press +. "
                           "Double-click a picture to take its style; tick “Mix” to blend "
                           "several, each with its weight.")
        self.hint.setObjectName("Hint")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)

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
        layout.addLayout(details)
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
        layout.addLayout(mix)
        self.caption = QLineEdit()
        self.caption.setPlaceholderText("Caption: what the picture shows, e.g. “a fox in a "
                                        "forest” (helps separate its style from its subject)")
        self.caption.editingFinished.connect(self._caption_edited)
        layout.addWidget(self.caption)
        layout.addStretch(1)

        for key, slot in ((QKeySequence.StandardKey.Delete, self.remove_current),
                          (QKeySequence.StandardKey.Paste, self.paste)):
            action = self.list.addAction("")  # shortcuts scoped to the gallery list
            action.setShortcut(key)
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            connect_command(action.triggered, slot)
        self._show_details()

    def _tool(self, name: str, tip: str, slot) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon(name))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        connect_command(button.clicked, slot)
        return button

    # ----- session binding ------------------------------------------------------------------
    def set_session(self, session: Session | None) -> None:
        if self._import is not None:
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
            none_item = QListWidgetItem(self._none_icon(generated), self._label("Generated", generated))
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
        if weight is None:
            return None
        return weight / sum(x.weight for x in style.sources)

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

    # ----- icons ----------------------------------------------------------------------------
    def _frame(self, image: QImage | None, active: float | bool | None) -> QIcon:
        """A thumbnail; an active reference (``active``: its share, or True) is framed and starred."""
        active = active is not None and active is not False
        pixmap = QPixmap(THUMB, THUMB)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if image is not None and not image.isNull():
            scaled = image.scaled(THUMB - 8, THUMB - 8, Qt.AspectRatioMode.KeepAspectRatio,
                                  Qt.TransformationMode.SmoothTransformation)
            painter.drawImage((THUMB - scaled.width()) // 2, (THUMB - scaled.height()) // 2, scaled)
        else:
            painter.setPen(QColor("#888888"))
            painter.drawRect(4, 4, THUMB - 9, THUMB - 9)
        if active:
            painter.setPen(QPen(QColor(ACCENT), 4))
            painter.drawRoundedRect(2, 2, THUMB - 4, THUMB - 4, 4, 4)
            star = icon("star-filled", ACCENT).pixmap(22, 22)
            painter.drawPixmap(THUMB - 26, 4, star)
        painter.end()
        return QIcon(pixmap)

    def _none_icon(self, active: float | None) -> QIcon:
        image = QImage(THUMB - 8, THUMB - 8, QImage.Format.Format_ARGB32)
        image.fill(QColor(0, 0, 0, 0))
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor("#9a9a9a"), 2, Qt.PenStyle.DashLine))
        painter.drawRoundedRect(2, 2, image.width() - 4, image.height() - 4, 6, 6)
        font = painter.font()
        font.setPointSize(20)
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(image.rect(), Qt.AlignmentFlag.AlignCenter, "Aa")
        painter.end()
        return self._frame(image, active)

    def _icon_for(self, ref_id: str, active: float | None) -> QIcon:
        reference = self.session.reference(ref_id) if self.session else None
        if reference is None:
            return self._frame(None, active)
        image = self.thumbnails.request(self.session.path(reference.file), THUMB)
        return self._frame(image, active)

    def _thumbnail_ready(self, path: str, size: int, image: QImage) -> None:
        if self.session is None or size != THUMB:
            return
        for row in range(1, self.list.count()):
            item = self.list.item(row)
            ref_id = item.data(Qt.ItemDataRole.UserRole)
            reference = self.session.reference(ref_id)
            if reference is not None and str(self.session.path(reference.file)) == path:
                item.setIcon(self._frame(image, self.share_of(ref_id)))

    # ----- actions --------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.show()
        self._banner_timer.start(12000)
        self.message.emit(text, True)

    @property
    def importing(self) -> bool:
        """Whether pictures are still being read and added."""
        return self._import is not None

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
        job = self._import
        if job is None:
            job = self._import = PictureImport(self.session, [])
            self.setCursor(Qt.CursorShape.BusyCursor)
        first = len(job.items)
        job.items.extend(items)
        for position, (_name, prepare, args) in enumerate(items, start=first):
            self.pool.submit(prepare, *args, on_done=lambda result, error, job=job, i=position:
                             self._prepared(job, i, result, error))
        self._show_progress(job)

    def _prepared(self, job: PictureImport, position: int, result: Any,
                  error: BaseException | None) -> None:
        """On the UI thread: one picture is ready (or refused); add what is next in order."""
        if job is not self._import or job.session is not self.session:
            return  # the import was dropped (another session)
        job.results[position] = result if error is None else error
        with job.session.batch():
            while job.next in job.results:
                outcome = job.results.pop(job.next)
                name = job.items[job.next][0]
                job.next += 1
                if isinstance(outcome, BaseException):
                    job.errors.append(import_error(name, outcome))
                    continue
                known = job.session.reference(outcome.content_id) is not None
                try:
                    reference = job.session.add_prepared(outcome)
                except (SessionError, OSError) as exc:
                    job.errors.append(import_error(name, exc))
                    continue
                (job.present if known else job.added).append(reference)
        if job.done:
            self._end_import()
            self._report_import(job.added, job.present, job.errors)
            self.import_finished.emit()
        else:
            self._show_progress(job)

    def _show_progress(self, job: PictureImport) -> None:
        if len(job.items) > 1:
            text = f"Adding pictures: {job.next} of {len(job.items)}…"
            self.progress.setText(text)
            self.progress.show()
            self.message.emit(text, False)

    def _end_import(self) -> None:
        self._import = None
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
        try:
            self.session.set_active_reference(ref_id or None)
        except SessionError as exc:
            self.show_error(str(exc))
            return
        self._select(ref_id)
        if ref_id:
            reference = self.session.reference(ref_id)
            self.message.emit(f"The style now comes from {reference.name or 'the picture'}", False)
        else:
            self.message.emit("The style now comes from a generated reference", False)

    def _mix_toggled(self, on: bool) -> None:
        if not self._filling:
            self.set_mix(self.current_id(), on)

    def set_mix(self, ref_id: str | None, on: bool) -> None:
        """Blend a reference into the style (``on``) or leave it out (NONE_ID: the generated one)."""
        if self.session is None or ref_id is None:
            return
        try:
            self.session.set_source_active(ref_id or None, on)
        except SessionError as exc:
            self.show_error(str(exc))
            self._show_details()
            return
        self._select(ref_id)

    def _weight_moved(self, value: int) -> None:
        ref_id = self.current_id()
        if self.session is None or ref_id is None or self._filling:
            return
        try:
            self.session.set_source_weight(ref_id or None, value / WEIGHT_STEPS)
        except SessionError as exc:
            self.show_error(str(exc))
            self._show_details()
            return
        self._select(ref_id)

    def remove_current(self) -> None:
        ref_id = self.current_id()
        if self.session is None or not ref_id:
            return
        reference = self.session.remove_reference(ref_id)
        self.message.emit(f"Removed {reference.name or reference.id} from the gallery", False)

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
