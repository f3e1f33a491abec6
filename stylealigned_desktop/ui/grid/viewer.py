"""The full-size viewer: zoom (wheel, + / −, fit, 100 %), pan (drag), step through the set (← →),
and compare two pictures side by side (two panels, or one panel from two runs).

While a set is made, a panel's live preview is shown at the picture's full size (a preview
smaller than the picture, the latent factors' 1/8, is drawn scaled up to it), and each new
step's preview, then the finished picture, replaces it in place (:meth:`ImageViewer.replace_picture`)
at the same zoom and place.

The two sides of a comparison move together: the same zoom and the same place in the picture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..support import Command, connect_command, make_actions

ZOOM_STEP = 1.25
"""One wheel notch or one +/− press."""
ZOOM_RANGE = (0.02, 32.0)


@dataclass(frozen=True)
class ViewerPicture:
    """One picture the viewer can show: a file, or (a live preview) an image in memory.

    ``key`` says which picture of a set it is (a panel id, or ``"reference"``), so the viewer can
    offer the same picture from other runs for comparison.
    """

    title: str
    path: Path | None = None
    image: QImage | None = None
    key: str | None = None
    size: tuple[int, int] | None = None
    """The finished picture's (width, height), at which a smaller preview is shown (None: its own)."""

    def load(self) -> QImage:
        if self.path is not None:
            return QImage(str(self.path))
        return self.image if self.image is not None else QImage()


class PictureView(QGraphicsView):
    """One picture: the wheel zooms about the pointer, dragging pans; fits the view until zoomed."""

    zoom_changed = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the viewer's keys step and zoom
        self.setMinimumSize(160, 120)
        self.fitting = True
        self.image = QImage()

    def set_image(self, image: QImage, size: tuple[int, int] | None = None) -> None:
        """Show ``image`` drawn at ``size`` (the picture's, for a smaller preview); the zoom and
        the place in the picture stay unless the view fits the window."""
        self.image = image
        self.item.setPixmap(QPixmap.fromImage(image))
        self.item.setScale(size[0] / image.width() if size and image.width() else 1.0)
        self.scene().setSceneRect(self.item.sceneBoundingRect())
        if self.fitting:
            self.fit()

    def zoom(self) -> float:
        """The scale on screen: 1.0 is one picture pixel per screen pixel."""
        return self.transform().m11()

    def set_zoom(self, zoom: float) -> None:
        zoom = min(max(zoom, ZOOM_RANGE[0]), ZOOM_RANGE[1])
        current = self.zoom()
        if current > 0 and abs(zoom - current) > 1e-9:
            self.scale(zoom / current, zoom / current)
        self.fitting = False
        # past 100 % the pixels show as squares: that is what an artist zooms in for
        self.item.setTransformationMode(Qt.TransformationMode.FastTransformation if zoom > 1
                                        else Qt.TransformationMode.SmoothTransformation)
        self.zoom_changed.emit(self.zoom())

    def zoom_by(self, factor: float) -> None:
        self.set_zoom(self.zoom() * factor)

    def fit(self) -> None:
        if not self.image.isNull():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)
        self.fitting = True
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.zoom_changed.emit(self.zoom())

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt)
        notches = event.angleDelta().y() / 120
        if notches:
            self.zoom_by(ZOOM_STEP ** notches)
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        if self.fitting:
            self.fit()


class ImageViewer(QDialog):
    """``pictures`` in order; ``index`` is shown first. ``versions(picture)`` lists what the
    picture can be compared with besides the set's other pictures (e.g. it in other runs)."""

    def __init__(self, pictures: Sequence[ViewerPicture], index: int = 0, parent=None,
                 versions: Callable[[ViewerPicture], list[ViewerPicture]] | None = None,
                 window_title: str = "") -> None:
        super().__init__(parent)
        self.pictures = list(pictures)
        self.index = index
        self.versions = versions or (lambda picture: [])
        self.window_title = window_title
        self._syncing = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        sides = QHBoxLayout()
        sides.setSpacing(4)
        self.view = PictureView()
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        self.shown_title = QLabel("")  # which picture is on the left, while comparing
        self.shown_title.hide()
        left.addWidget(self.shown_title)
        left.addWidget(self.view, 1)
        self.compare_box = QWidget()
        compare_layout = QVBoxLayout(self.compare_box)
        compare_layout.setContentsMargins(0, 0, 0, 0)
        self.compare_choice = QComboBox()
        self.compare_choice.setToolTip("The picture shown on the right")
        self.compare_choice.currentIndexChanged.connect(self._show_compared)
        self.compare_view = PictureView()
        compare_layout.addWidget(self.compare_choice)
        compare_layout.addWidget(self.compare_view, 1)
        self.compare_box.hide()
        sides.addLayout(left, 1)
        sides.addWidget(self.compare_box, 1)
        layout.addLayout(sides, 1)
        layout.addLayout(self._bar())
        self._link(self.view, self.compare_view)
        self._link(self.compare_view, self.view)
        self.view.zoom_changed.connect(self._show_zoom)
        self.show_picture(index)
        image = self.view.image
        screen = QGuiApplication.primaryScreen().availableSize()
        self.resize(QSize(min(max(image.width(), 480) + 40, int(screen.width() * 0.85)),
                          min(max(image.height(), 360) + 90, int(screen.height() * 0.85))))

    def _bar(self) -> QHBoxLayout:
        bar = QHBoxLayout()
        bar.setContentsMargins(8, 4, 8, 8)
        self.caption = QLabel("")
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("Hint")
        bar.addWidget(self.caption, 1)
        bar.addWidget(self.zoom_label)
        make_actions(self, [
            Command("previous", "Previous picture", lambda: self.step(-1), "Left"),
            Command("next", "Next picture", lambda: self.step(1), "Right"),
            Command("zoom_in", "Zoom in", lambda: self.view.zoom_by(ZOOM_STEP),
                    ("+", "=", QKeySequence(QKeySequence.StandardKey.ZoomIn).toString())),
            Command("zoom_out", "Zoom out", lambda: self.view.zoom_by(1 / ZOOM_STEP),
                    ("-", QKeySequence(QKeySequence.StandardKey.ZoomOut).toString())),
            Command("fit", "Fit to the window", self.fit, "F"),
            Command("actual", "Actual size (100 %)", lambda: self.view.set_zoom(1.0), "1"),
            Command("compare", "Compare side by side", self.toggle_compare, "C"),
        ])
        labels = {"previous": "◀", "next": "▶", "zoom_out": "−", "zoom_in": "+", "fit": "Fit",
                  "actual": "100 %", "compare": "Compare"}
        for name, label in labels.items():
            action = getattr(self, f"{name}_action")
            tip = f"{action.text()} ({action.shortcut().toString()})"
            action.setText(label)
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolTip(tip)
            bar.addWidget(button)
        self.compare_action.setCheckable(True)
        close = QPushButton("Close")
        connect_command(close.clicked, self.accept)
        bar.addWidget(close)
        return bar

    # ----- what is shown --------------------------------------------------------------------------
    @property
    def picture(self) -> ViewerPicture:
        return self.pictures[self.index]

    def show_picture(self, index: int) -> None:
        self.index = max(0, min(index, len(self.pictures) - 1))
        picture = self.picture
        self.view.set_image(picture.load(), picture.size)
        image = self.view.image
        count = f" ({self.index + 1} of {len(self.pictures)})" if len(self.pictures) > 1 else ""
        width, height = picture.size or (image.width(), image.height())
        self.caption.setText(f"{picture.title}{count} · {width} × {height} px")
        self.shown_title.setText(f"  {picture.title}")
        self.setWindowTitle(f"{picture.title} — {self.window_title}" if self.window_title
                            else picture.title)
        self.previous_action.setEnabled(self.index > 0)
        self.next_action.setEnabled(self.index < len(self.pictures) - 1)
        if not self.compare_box.isHidden():
            self._fill_compare_choices()

    def replace_picture(self, index: int, picture: ViewerPicture) -> None:
        """A picture of the set made anew (the next step's preview, or the finished picture):
        shown in place at the same zoom when it is the one in view, or the one compared."""
        self.pictures[index] = picture
        if index == self.index:
            self.show_picture(index)
        elif not self.compare_box.isHidden():
            self._fill_compare_choices()

    def step(self, delta: int) -> None:
        """Show the previous (-1) or next (+1) picture of the set, at the same zoom."""
        target = self.index + delta
        if 0 <= target < len(self.pictures):
            self.show_picture(target)

    def fit(self) -> None:
        self.view.fit()
        if not self.compare_box.isHidden():
            self.compare_view.fit()

    def _show_zoom(self, zoom: float) -> None:
        self.zoom_label.setText(f"{zoom * 100:.0f} %" + (" (fit)" if self.view.fitting else ""))

    # ----- comparing --------------------------------------------------------------------------------
    def compare_choices(self) -> list[ViewerPicture]:
        """The same picture in other runs first, then the set's other pictures."""
        others = [p for i, p in enumerate(self.pictures) if i != self.index]
        return [*self.versions(self.picture), *others]

    def toggle_compare(self) -> None:
        self.set_comparing(self.compare_box.isHidden())

    def set_comparing(self, on: bool) -> None:
        self.compare_action.setChecked(on)
        # the right side's first resize on showing must not refit the zoomed left side
        self.compare_view.fitting = self.view.fitting
        self._syncing = True
        try:
            self.compare_box.setVisible(on)
            self.shown_title.setVisible(on)
        finally:
            self._syncing = False
        self.shown_title.setFixedHeight(self.compare_choice.sizeHint().height())
        if on:
            self._fill_compare_choices()

    def _fill_compare_choices(self) -> None:
        keep = self.compare_choice.currentIndex()
        choices = self.compare_choices()
        self.compare_choice.blockSignals(True)
        self.compare_choice.clear()
        for picture in choices:
            self.compare_choice.addItem(picture.title)
        self.compare_choice.blockSignals(False)
        self._choices = choices
        self.compare_choice.setCurrentIndex(keep if 0 <= keep < len(choices) else 0)
        self._show_compared()

    def _show_compared(self, *_args) -> None:
        row = self.compare_choice.currentIndex()
        choices = getattr(self, "_choices", [])
        if not 0 <= row < len(choices):
            self.compare_view.set_image(QImage())
            return
        self.compare_view.fitting = self.view.fitting
        self.compare_view.set_image(choices[row].load(), choices[row].size)
        if not self.view.fitting:
            self.compare_view.set_zoom(self.view.zoom())
            self._follow(self.view, self.compare_view)

    def _link(self, source: PictureView, target: PictureView) -> None:
        """``target`` follows ``source``'s zoom and position while comparing."""
        source.zoom_changed.connect(lambda _zoom: self._follow(source, target, zoom=True))
        for bar in (source.horizontalScrollBar(), source.verticalScrollBar()):
            bar.valueChanged.connect(lambda _value: self._follow(source, target))

    def _follow(self, source: PictureView, target: PictureView, zoom: bool = False) -> None:
        if self._syncing or self.compare_box.isHidden():
            return
        self._syncing = True
        try:
            if zoom:
                if source.fitting:
                    target.fit()
                else:
                    target.set_zoom(source.zoom())
            target.horizontalScrollBar().setValue(source.horizontalScrollBar().value())
            target.verticalScrollBar().setValue(source.verticalScrollBar().value())
        finally:
            self._syncing = False



class OpenViewers:
    """The open viewers, each with the tile of each of its pictures: a tile's new picture (the
    next step's preview, then the finished picture) replaces it in every viewer showing it."""

    def __init__(self) -> None:
        self._open: list[tuple[ImageViewer, list]] = []

    def add(self, viewer: ImageViewer, tiles: list) -> None:
        entry = (viewer, list(tiles))
        self._open.append(entry)
        viewer.finished.connect(lambda _result: self._open.remove(entry))

    def replace(self, tile, picture: ViewerPicture) -> None:
        for viewer, tiles in self._open:
            if tile in tiles:
                viewer.replace_picture(tiles.index(tile), picture)

    def follow(self, shown: dict) -> None:
        """A run cancelled or failed: each picture a viewer holds in memory only (a live
        preview, or a finished picture of the run, which is not kept) is replaced by what its
        tile shows again, ``shown[tile]`` (the last finished picture), or says there is none."""
        for viewer, tiles in self._open:
            for position, tile in enumerate(tiles):
                held = viewer.pictures[position]
                if held.path is None:
                    viewer.replace_picture(position, shown.get(tile) or ViewerPicture(
                        held.title.removesuffix(" (preview)") + " (not generated yet)", key=held.key, size=held.size))
