"""The history of a session's runs: thumbnails (each run's contact sheet), show, restore, delete.

A finished run shows its set-consistency score when it has one (computed by the window in the
worker, see ``threads/scoring.py``); when the DINO model it needs is missing, or scoring
failed, a small hint under the list says so, and clicking it asks for help
(``consistency_help_requested``).
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...session import observer
from ...session.history import RunRecord
from ...session.model import Session
from ..support import connect_command, icon
from ..threads import CONSISTENCY_TIP, ThumbnailLoader

THUMB = 120
CONTACT_SHEET = "contact-sheet.png"


def run_title(record: RunRecord) -> str:
    """“17:03 · 5 panels” or “17:05 · re-roll of panel 3”."""
    try:
        when = datetime.fromisoformat(record.created).astimezone().strftime("%H:%M:%S")
    except ValueError:
        when = record.id
    made = record.generated
    if record.only is not None and len(record.only) == 1:
        what = f"re-roll of panel {record.only[0] + 1}"
    else:
        what = f"{len(made)} panel{'s' if len(made) != 1 else ''}"
    status = "" if record.status == "finished" else f" ({record.status})"
    return f"{when} · {what}{status}"


def run_label(record: RunRecord) -> str:
    """The history line: the title, and the consistency score when the run has one."""
    title = run_title(record)
    if record.consistency is None:
        return title
    return f"{title}\nconsistency {record.consistency:.2f}"


def run_details(record: RunRecord) -> str:
    s = record.settings
    several = len(record.references) > 1

    def describe(x) -> str:
        share = f"{round(100 * x.weight)} % · " if several else ""
        return share + (f"picture {x.file}" if x.kind == "picture"
                        else f"generated from “{x.prompt}”, seed {x.seed}")

    lines = [
        f"Run {record.id}",
        f"Style text: {record.style_text or '(none)'}",
        *(f"Reference: {describe(x)}" for x in record.references),
        f"Model {s.model or '?'} · {s.steps} steps · guidance {s.guidance:g} · "
        f"{s.width}×{s.height} · {s.scheduler}",
    ]
    lines.extend(character_lines(record))
    for panel in record.generated:
        size = f", {panel.size[0]}×{panel.size[1]}" if panel.size else ""
        lines.append(f"Panel {panel.index + 1}: {panel.subject or panel.prompt} (seed {panel.seed}{size})")
    if record.message:
        lines.append(record.message)
    if record.consistency is not None:
        lines.append(f"\nConsistency {record.consistency:.3f}. {CONSISTENCY_TIP}")
    return "\n".join(lines)


def character_lines(record: RunRecord) -> list[str]:
    """The run's characters: who, how they looked, each anchor's seed or the artist's picture,
    and how strongly the panels shared them."""
    lines = []
    for run_character in record.characters:
        c = run_character.character
        anchors = ", ".join(
            "picture" if c.picture(k) else f"seed {c.anchor_seeds[k]}"
            for k in range(len(run_character.images) or len(c.anchor_seeds)))
        lines.append(f"Character {c.name}: {c.description or '(no description)'} · anchors: {anchors}")
    s = record.character_settings
    if record.characters and s is not None:
        lines.append(f"Characters shared: dropout {s.character_dropout:g} in the "
                     f"{'up' if s.character_layers == 'up' else 'all'} blocks · "
                     f"{s.anchors_per_character} anchor{'s' if s.anchors_per_character != 1 else ''} each")
    return lines


class HistoryView(QWidget):
    """Every run of the session, newest first."""

    run_selected = Signal(object)
    """A run id, or None when the selection was cleared."""
    restore_requested = Signal(str)
    delete_requested = Signal(str)
    consistency_help_requested = Signal()
    """The artist clicked the hint about missing consistency scores."""

    def __init__(self, thumbnails: ThumbnailLoader | None = None, parent=None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self._subscription = observer.Subscription(self._on_change)
        self.thumbnails = thumbnails or ThumbnailLoader(self)
        self.thumbnails.ready.connect(self._thumbnail_ready)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setObjectName("HistoryList")
        self.list.setViewMode(QListView.ViewMode.ListMode)
        self.list.setIconSize(QSize(THUMB, THUMB * 3 // 4))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setWordWrap(True)
        self.list.setSpacing(2)
        self.list.currentItemChanged.connect(self._selection_changed)
        layout.addWidget(self.list, 1)
        self.empty = QLabel("No runs yet. Every Generate and re-roll is kept here with its "
                            "settings and seeds.")
        self.empty.setObjectName("Hint")
        self.empty.setWordWrap(True)
        layout.addWidget(self.empty)
        self._consistency_problem: str | None = None
        self.consistency_hint = QLabel("")
        self.consistency_hint.setObjectName("Hint")
        self.consistency_hint.setWordWrap(True)
        self.consistency_hint.setTextFormat(Qt.TextFormat.RichText)
        self.consistency_hint.linkActivated.connect(
            lambda _link: self.consistency_help_requested.emit())
        layout.addWidget(self.consistency_hint)
        buttons = QHBoxLayout()
        self.restore_button = QPushButton(icon("restore"), "Restore")
        self.restore_button.setToolTip("Bring back this run's settings, style and seeds (the "
                                       "panels' seeds are locked)")
        connect_command(self.restore_button.clicked, lambda: self._emit(self.restore_requested))
        self.folder_button = QPushButton(icon("open"), "Folder")
        self.folder_button.setToolTip("Open the run's folder (its PNGs carry their parameters)")
        connect_command(self.folder_button.clicked, self.open_folder)
        self.delete_button = QPushButton(icon("delete"), "Delete")
        self.delete_button.setToolTip("Delete this run and its pictures")
        connect_command(self.delete_button.clicked, lambda: self._emit(self.delete_requested))
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.folder_button)
        buttons.addWidget(self.delete_button)
        layout.addLayout(buttons)
        self._update_buttons()

    def set_session(self, session: Session | None) -> None:
        self.session = session
        self._subscription.follow(session)
        self.refresh()

    def _on_change(self, change: observer.Change) -> None:
        if change.kind == observer.HISTORY:
            self.refresh()

    def refresh(self) -> None:
        selected = self.current_run()
        self.list.blockSignals(True)
        self.list.clear()
        records = list(reversed(self.session.history)) if self.session else []
        for record in records:
            item = QListWidgetItem(run_label(record))
            item.setData(Qt.ItemDataRole.UserRole, record.id)
            item.setToolTip(run_details(record))
            image = self._thumbnail(record)
            if image is not None and not image.isNull():
                item.setIcon(QPixmap.fromImage(image))
            self.list.addItem(item)
            if record.id == selected:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.empty.setVisible(not records)
        self._show_consistency_hint()
        if selected is not None and self.current_run() is None:
            self.run_selected.emit(None)
        self._update_buttons()

    # ----- consistency scores ---------------------------------------------------------------
    def set_consistency_problem(self, problem: str | None, missing_model: bool = True) -> None:
        """Why runs get no consistency score (None: they do). ``missing_model``: the DINO
        model is not on this computer (``problem`` says how to get it); else scoring failed."""
        self._consistency_problem = problem
        if problem is None:
            self.consistency_hint.clear()
        elif missing_model:
            self.consistency_hint.setText("New runs get no consistency score: the DINO model "
                                          "is missing. <a href='help'>How to get it</a>")
        else:
            self.consistency_hint.setText("The consistency score could not be computed. "
                                          "<a href='help'>Why?</a>")
        self.consistency_hint.setToolTip(problem or "")
        self._show_consistency_hint()

    @property
    def consistency_problem(self) -> str | None:
        return self._consistency_problem

    def _show_consistency_hint(self) -> None:
        self.consistency_hint.setVisible(self._consistency_problem is not None
                                         and self.list.count() > 0)

    def _thumbnail_path(self, record: RunRecord):
        folder = self.session.path(record.folder)
        sheet = folder / CONTACT_SHEET
        if sheet.is_file():
            return sheet
        images = record.images()
        return self.session.path(images[0][1]) if images else None

    def _thumbnail(self, record: RunRecord) -> QImage | None:
        path = self._thumbnail_path(record)
        return None if path is None else self.thumbnails.request(path, THUMB)

    def _thumbnail_ready(self, path: str, size: int, image: QImage) -> None:
        if self.session is None or size != THUMB or image.isNull():
            return
        for row in range(self.list.count()):
            item = self.list.item(row)
            try:
                record = self.session.run(item.data(Qt.ItemDataRole.UserRole))
            except ValueError:
                continue
            if str(self._thumbnail_path(record)) == path:
                item.setIcon(QPixmap.fromImage(image))

    def current_run(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select_run(self, run_id: str | None) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == run_id:
                self.list.setCurrentRow(row)
                return
        self.list.setCurrentItem(None)

    def clear_selection(self) -> None:
        self.list.blockSignals(True)
        self.list.setCurrentItem(None)
        self.list.clearSelection()
        self.list.blockSignals(False)
        self._update_buttons()

    def _selection_changed(self, *_args) -> None:
        self._update_buttons()
        self.run_selected.emit(self.current_run())

    def _update_buttons(self) -> None:
        has = self.current_run() is not None
        for button in (self.restore_button, self.folder_button, self.delete_button):
            button.setEnabled(has)

    def _emit(self, signal) -> None:
        run_id = self.current_run()
        if run_id is not None:
            signal.emit(run_id)

    def open_folder(self) -> None:
        run_id = self.current_run()
        if self.session is None or run_id is None:
            return
        folder = self.session.path(self.session.run(run_id).folder)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
