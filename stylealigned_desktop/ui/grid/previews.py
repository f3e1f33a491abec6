"""The preview grid: the reference and every panel, sharpening live, then the final pictures.

A tile shows the newest picture it was given (a step preview or the final image), a caption with
its state ("step 12/30", "final", "queued"), and per-picture actions: view full size (click),
save as, copy, use as reference, re-roll.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...engine.events import picture_key
from ..support import ElidedLabel, add_menu_command, connect_command, icon, set_style_flag

REFERENCE = None  # the (first) reference's index, as in engine events


def is_reference(key) -> bool:
    """Whether a tile key is a reference's: None (the first) or ``("reference", r)``."""
    return key is None or (isinstance(key, tuple) and key[0] == "reference")


def is_anchor(key) -> bool:
    """Whether a tile key is a character's anchor's: ``("anchor", name, k)`` (spec section 13,
    as the engine's ``events.anchor_key``)."""
    return isinstance(key, tuple) and key[0] == "anchor"


def anchor_tile(name: str, anchor: int, description: str) -> tuple[tuple, str, str]:
    """(key, title, prompt) of the tile of a character's anchor (0-based)."""
    return ("anchor", name, anchor), f"{name} · anchor {anchor + 1}", description


def tile_name(key) -> str:
    """What the artist calls a tile's picture: "Reference 2", "Mira · anchor 1", "Panel 3"."""
    if is_anchor(key):
        return anchor_tile(key[1], key[2], "")[1]
    if is_reference(key):
        position = reference_position(key)
        return "Reference" if position == 0 else f"Reference {position + 1}"
    return f"Panel {key + 1}"


def reference_position(key) -> int:
    """A reference tile key's position among the set's references."""
    return 0 if key is None else key[1]


class ImageView(QWidget):
    """Paints a QImage scaled to fit (aspect kept), or a placeholder text."""

    clicked = Signal()

    def __init__(self, placeholder: str = "", parent=None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._placeholder = placeholder
        self._shape: QSize | None = None  # the picture's (width, height) to come: its frame
        self._overlay: QImage | None = None  # subject masks over the picture (mask_layer.py)
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def image(self) -> QImage | None:
        return self._image

    def set_image(self, image: QImage | None) -> None:
        self._image = image
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def overlay(self) -> QImage | None:
        return self._overlay

    def set_overlay(self, overlay: QImage | None) -> None:
        """Drawn over the picture, stretched to it cell for cell (None: nothing)."""
        self._overlay = overlay
        self.update()

    def set_shape(self, width: int, height: int) -> None:
        """The picture's size: an empty view draws its frame at that aspect."""
        self._shape = QSize(width, height)
        self.update()

    def shape(self) -> tuple[int, int] | None:
        """The picture's (width, height) as the run makes it (None: not known)."""
        return None if self._shape is None else (self._shape.width(), self._shape.height())

    def image_rect(self) -> QRect:
        """Where the picture is painted: scaled to fit, its aspect kept (never distorted)."""
        shape = self._shape if self._image is None or self._image.isNull() else self._image.size()
        if shape is None or shape.isEmpty():
            return QRect()
        size = shape.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - size.width()) // 2
        y = (self.height() - size.height()) // 2
        return QRect(QPoint(x, y), size)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        painter = QPainter(self)
        if self._image is None or self._image.isNull():
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            frame = self.image_rect()
            if not frame.isEmpty():
                painter.drawRect(frame.adjusted(2, 2, -3, -3))
            painter.drawText(self.rect().adjusted(6, 6, -6, -6),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self._placeholder)
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(self.image_rect(), self._image)
        if self._overlay is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            painter.drawImage(self.image_rect(), self._overlay)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.button() == Qt.MouseButton.LeftButton and self._image is not None:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class PictureTile(QFrame):
    """One picture of the set in the preview grid."""

    view_requested = Signal(object)
    save_requested = Signal(object)
    copy_requested = Signal(object)
    use_as_reference_requested = Signal(object)
    reroll_requested = Signal(object)

    def __init__(self, index: int | None, title: str, parent=None) -> None:
        super().__init__(parent)
        self.index = index
        self.final = False
        self.columns_wanted = 1
        """The grid columns this tile spans when they are there (a panorama: several)."""
        self.path = None
        """The file of the finished picture shown (None for previews and placeholders)."""
        self.setObjectName("PictureTile")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        top = QHBoxLayout()
        self.title = QLabel(title)
        self.title.setObjectName("TileTitle")
        self.state = QLabel("")
        self.state.setObjectName("Hint")
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.state)
        layout.addLayout(top)
        self.view = ImageView("not generated yet")
        connect_command(self.view.clicked, lambda: self.view_requested.emit(self.index))
        layout.addWidget(self.view, 1)
        self.prompt = ElidedLabel("")
        self.prompt.setObjectName("Hint")
        layout.addWidget(self.prompt)
        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        self.save_button = self._tool("save", "Save this picture as…",
                                      lambda: self.save_requested.emit(self.index))
        self.copy_button = self._tool("copy", "Copy this picture to the clipboard",
                                      lambda: self.copy_requested.emit(self.index))
        self.reference_button = self._tool(
            "star", "Use this picture as the style reference",
            lambda: self.use_as_reference_requested.emit(self.index))
        self.reroll_button = self._tool(
            "reroll", "Re-roll: make this panel again with a new seed (a locked seed is "
            "kept); the others stay",
            lambda: self.reroll_requested.emit(self.index))
        for button in (self.save_button, self.copy_button, self.reference_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        if isinstance(index, int):  # a panel's (references and anchors are drawn with the set)
            buttons.addWidget(self.reroll_button)
        else:
            self.reroll_button.hide()
        layout.addLayout(buttons)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self._update_buttons()

    def _tool(self, name: str, tip: str, slot) -> QToolButton:
        button = QToolButton(self)
        button.setIcon(icon(name))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        connect_command(button.clicked, slot)
        return button

    def _menu(self, pos) -> None:
        if self.view.image() is None:
            return
        menu = QMenu(self)
        add_menu_command(menu, "View full size", lambda: self.view_requested.emit(self.index),
                         "image")
        add_menu_command(menu, "Save as…", lambda: self.save_requested.emit(self.index), "save")
        add_menu_command(menu, "Copy", lambda: self.copy_requested.emit(self.index), "copy")
        add_menu_command(menu, "Use as style reference",
                         lambda: self.use_as_reference_requested.emit(self.index), "star")
        if isinstance(self.index, int):
            add_menu_command(menu, "Re-roll this panel",
                             lambda: self.reroll_requested.emit(self.index), "reroll")
        menu.exec(self.mapToGlobal(pos))

    def _update_buttons(self) -> None:
        has_final = self.final and self.view.image() is not None
        for button in (self.save_button, self.copy_button, self.reference_button):
            button.setEnabled(has_final)

    def set_preview(self, image: QImage, step: int, total: int) -> None:
        self.final = False
        self.path = None
        self.view.set_image(image)
        self.state.setText(f"step {step}/{total}" if total else f"step {step}")
        self._update_buttons()

    def set_final(self, image: QImage, caption: str = "") -> None:
        self.final = True
        self.view.set_image(image)
        self.state.setText(caption)
        self._update_buttons()

    def set_state(self, text: str) -> None:
        self.state.setText(text)

    def set_outdated(self, outdated: bool) -> None:
        """Grey the title of a picture made with settings that have changed since (or not)."""
        set_style_flag(self, "stale", outdated, self.title)

    def set_prompt(self, text: str) -> None:
        self.prompt.setText(text)

    def set_shape(self, width: int, height: int) -> None:
        """The size of the picture this tile shows (drawn as its frame until it comes)."""
        self.view.set_shape(width, height)
        self.view.setToolTip(f"{width} × {height}")
        self.columns_wanted = 1 if width < WIDE_ASPECT * height else round(width / height)

    def height_at(self, width: int) -> int:
        """The tile's height that shows its picture whole at ``width`` with no band above and
        below it: the title, prompt and buttons, and the picture's height at that width."""
        margins = self.layout().contentsMargins()
        chrome = self.layout().minimumSize().height() - self.view.minimumHeight()
        picture_width, picture_height = self.view.shape()
        return chrome + math.ceil((width - margins.left() - margins.right()) * picture_height / picture_width)

    def clear(self, placeholder: str = "not generated yet") -> None:
        self.final = False
        self.path = None
        self.view.set_image(None)
        self.view.set_placeholder(placeholder)
        self.state.setText("")
        self._update_buttons()

    def image(self) -> QImage | None:
        return self.view.image()


WIDE_ASPECT = 2.5
"""A picture at least this many times as wide as tall (a panorama, spec section 14) spans about
as many columns of the grid as it is times wider than tall, so it is shown wide."""


class PreviewGrid(QScrollArea):
    """The references and the panels as tiles that reflow with the width; every picture keeps
    its own aspect (panels of different sizes side by side, spec section 12), a panorama over
    several columns."""

    view_requested = Signal(object)
    save_requested = Signal(object)
    copy_requested = Signal(object)
    use_as_reference_requested = Signal(object)
    reroll_requested = Signal(object)

    TILE_MIN = 190

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._host = QWidget()
        self._grid = QGridLayout(self._host)
        self._grid.setSpacing(8)
        self._grid.setContentsMargins(4, 4, 4, 4)
        self.setWidget(self._host)
        self.tiles: dict = {}
        """Tiles by key: a panel's index, None for the first reference, ("reference", r),
        ("anchor", name, k)."""
        self._order: list = []
        self._columns = 0
        self._placed_spans: list[int] = []
        self.set_panels([])

    def set_panels(self, prompts: list[str], reference_title: str = "Reference",
                   reference_prompt: str = "", *, references: list[tuple[str, str]] | None = None,
                   sizes: list[tuple[int, int]] | None = None,
                   reference_size: tuple[int, int] | None = None,
                   anchors: list[tuple[tuple, str, str]] | None = None) -> None:
        """One tile per reference, per character anchor and per panel; keeps the pictures of
        kept tiles.

        ``references``: (title, prompt) of each reference shown (default: one, titled
        ``reference_title``); ``anchors``: (key, title, prompt) of each anchor, after the
        references; ``sizes``: each panel's (width, height), ``reference_size`` the
        references' and anchors', so that empty tiles show the shape of the picture to come.
        """
        references = references or [(reference_title, reference_prompt)]
        keys = [picture_key(None, r) for r in range(len(references))]
        anchors = anchors or []
        wanted: list = [*keys, *(key for key, _, _ in anchors), *range(len(prompts))]
        for index in list(self.tiles):
            if index not in wanted:
                tile = self.tiles.pop(index)
                self._grid.removeWidget(tile)
                tile.deleteLater()
        for index in wanted:
            if index not in self.tiles:
                tile = PictureTile(index, "", self._host)
                tile.view_requested.connect(self.view_requested)
                tile.save_requested.connect(self.save_requested)
                tile.copy_requested.connect(self.copy_requested)
                tile.use_as_reference_requested.connect(self.use_as_reference_requested)
                tile.reroll_requested.connect(self.reroll_requested)
                self.tiles[index] = tile
        for key, (title, prompt) in [*zip(keys, references), *((k, (t, p)) for k, t, p in anchors)]:
            self.tiles[key].title.setText(title)
            self.tiles[key].set_prompt(prompt)
            if reference_size is not None:
                self.tiles[key].set_shape(*reference_size)
        for index, prompt in enumerate(prompts):
            self.tiles[index].title.setText(f"Panel {index + 1}")
            self.tiles[index].set_prompt(prompt)
            if sizes is not None:
                self.tiles[index].set_shape(*sizes[index])
        if wanted != self._order or self._spans() != self._placed_spans:
            self._order = wanted
            self._columns = 0
            self._reflow()

    def tile(self, index: int | None) -> PictureTile:
        return self.tiles[index]

    def _spans(self) -> list[int]:
        """The columns each tile wants, in order (a panorama's: about its aspect)."""
        return [self.tiles[index].columns_wanted for index in self._order]

    def show_preview(self, index: int | None, image: QImage, step: int, total: int) -> None:
        if index in self.tiles:
            self.tiles[index].set_preview(image, step, total)

    def show_final(self, index: int | None, image: QImage, caption: str = "final") -> None:
        if index in self.tiles:
            self.tiles[index].set_final(image, caption)

    def set_state(self, index: int | None, text: str) -> None:
        if index in self.tiles:
            self.tiles[index].set_state(text)

    def clear(self) -> None:
        for tile in self.tiles.values():
            tile.clear()

    def image(self, index: int | None) -> QImage | None:
        tile = self.tiles.get(index)
        return tile.image() if tile and tile.final else None

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        self._reflow()

    def _reflow(self) -> None:
        width = max(1, self.viewport().width() - 8)
        count = len(self._order)
        columns = max(1, min(count, width // self.TILE_MIN))
        if columns != self._columns:
            self._columns = columns
            self._place(columns)
        self._size_rows(width, columns)

    def _place(self, columns: int) -> None:
        for index in self._order:
            self._grid.removeWidget(self.tiles[index])
        self._placed_spans = self._spans()
        row, column = 0, 0
        for index, wanted in zip(self._order, self._placed_spans):
            span = min(columns, wanted)
            if column + span > columns:  # a wide tile that does not fit the row starts the next
                row, column = row + 1, 0
            self._grid.addWidget(self.tiles[index], row, column, 1, span)
            row, column = (row + 1, 0) if column + span == columns else (row, column + span)
        rows = row + (1 if column else 0)
        for row in range(rows + 1):
            self._grid.setRowStretch(row, 0)
        self._grid.setRowStretch(rows, 1)

    def _size_rows(self, width: int, columns: int) -> None:
        """A tile of one column is as high as a square picture's; a wide one (a panorama over
        several columns) as high as its own picture at its width, so that its row leaves no empty
        band above and below the picture (every resize: its width follows the window's)."""
        tallest = 420
        square = min(tallest, max(200, width // columns + 60))
        spacing = self._grid.horizontalSpacing()
        column_width = (width - spacing * (columns - 1)) / columns
        for index, wanted in zip(self._order, self._placed_spans):
            tile, span = self.tiles[index], min(columns, wanted)
            wide = span > 1 and tile.view.shape() is not None
            tile.setMinimumHeight(min(tallest, tile.height_at(int(span * column_width + (span - 1) * spacing)))
                                  if wide else square)
