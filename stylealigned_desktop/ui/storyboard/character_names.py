"""Characters in a panel's prompt (spec section 13): the prompt field that completes ``[Name]``
as the artist types (``[`` then the first letters; QCompleter), and the chips under it that show
whom the panel names, an unknown name flagged. The names are read by the session's one parser
(``session.characters.named_characters``)."""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt
from PySide6.QtWidgets import QCompleter, QHBoxLayout, QLabel, QPlainTextEdit, QWidget

from ...session.characters import named_characters
from ..support import CHARACTER_COLOURS

_POPUP_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape, Qt.Key.Key_Tab,
               Qt.Key.Key_Backtab)


class NamePromptEdit(QPlainTextEdit):
    """A prompt field that offers the session's character names after an open ``[``."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.names = QStringListModel(self)
        self.completer = QCompleter(self.names, self)
        self.completer.setWidget(self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.activated.connect(self.insert_name)

    def set_names(self, names: list[str]) -> None:
        self.names.setStringList(names)

    def _open_name(self) -> tuple[int, str] | None:
        """(where the ``[`` before the cursor is, what follows it) while a name is being
        typed: an open bracket, no ``]`` or line break after it up to the cursor."""
        cursor = self.textCursor()
        before = self.toPlainText()[:cursor.position()]
        start = before.rfind("[")
        if start < 0 or any(c in before[start + 1:] for c in "]\n"):
            return None
        return start, before[start + 1:]

    def _offer_names(self) -> None:
        typed = self._open_name()
        popup = self.completer.popup()
        if typed is None or not self.names.stringList():
            popup.hide()
            return
        self.completer.setCompletionPrefix(typed[1].lstrip())
        if self.completer.completionCount() == 0:
            popup.hide()
            return
        popup.setCurrentIndex(self.completer.completionModel().index(0, 0))
        rect = self.cursorRect()
        rect.setWidth(popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width())
        self.completer.complete(rect)

    def insert_name(self, name: str) -> None:
        """Replace the name being typed by ``name`` and close the bracket."""
        typed = self._open_name()
        if typed is None:
            return
        position = self.textCursor().position()
        closed = self.toPlainText()[position:position + 1] == "]"
        cursor = self.textCursor()
        cursor.setPosition(typed[0] + 1)
        cursor.setPosition(position, cursor.MoveMode.KeepAnchor)
        cursor.insertText(name if closed else f"{name}]")
        if closed:
            cursor.movePosition(cursor.MoveOperation.NextCharacter)
        self.setTextCursor(cursor)
        self.completer.popup().hide()

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt)
        # While names are offered, these keys are the popup's (choose, close), not the text's:
        # the completer passes every key on to this field after handling it.
        if self.completer.popup().isVisible() and event.key() in _POPUP_KEYS:
            event.ignore()
            return
        super().keyPressEvent(event)
        if event.text() or event.key() == Qt.Key.Key_Backspace:  # typed, not moved about
            self._offer_names()


class CharacterChips(QWidget):
    """One small label per character the prompt names, in the character's colour (its mask's);
    an unknown name is flagged."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(4)
        self.row.addStretch(1)
        self.chips: list[QLabel] = []
        self.setVisible(False)

    def show_names(self, prompt: str, known: list[str]) -> None:
        """The chips of ``prompt``'s names; those not in ``known`` are marked unknown."""
        for chip in self.chips:
            self.row.removeWidget(chip)
            chip.deleteLater()
        self.chips = []
        for name in named_characters(prompt):
            chip = QLabel(name if name in known else f"{name}?")
            chip.setObjectName("CharacterChip")
            unknown = name not in known
            chip.setProperty("unknown", unknown)
            chip.setToolTip(f"[{name}] is no character of this session: add it in Characters "
                            "or correct the name" if unknown else
                            f"{name} looks the same in every panel that names [{name}] "
                            "(and has this colour under View → Show subject masks)")
            if not unknown:  # the colour of its mask over the pictures
                colour = CHARACTER_COLOURS[known.index(name) % len(CHARACTER_COLOURS)]
                chip.setStyleSheet(f"background-color: {colour}; color: #1a1a1a;")
            self.row.insertWidget(len(self.chips), chip)
            self.chips.append(chip)
        self.setVisible(bool(self.chips))

    def unknown(self) -> list[str]:
        return [c.text().rstrip("?") for c in self.chips if c.property("unknown")]
