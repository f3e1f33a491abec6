"""File → Export: the shown set as a contact sheet (PNG or PDF) or as picture files.

The pictures are the finished ones the grid shows (``items()``, from the grid controller); the
files are written by ``export.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from .export import (
    SheetItem,
    default_title,
    export_contact_sheet_pdf,
    export_contact_sheet_png,
    export_pictures,
)
from .host import Host

NOTHING_YET = "Nothing to export yet: generate first"


class ExportController(QObject):
    def __init__(self, host: Host, items: Callable[[], list[SheetItem]], parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self.items = items

    def _target(self, title: str, name: str, filter_: str) -> str | None:
        suggested = str(Path(self.host.config.export_folder or Path.home()) / name)
        target, _ = QFileDialog.getSaveFileName(self.host, title, suggested, filter_)
        return target or None

    def _exported(self, path: Path, folder: Path, text: str) -> None:
        self.host.config.export_folder = str(folder)
        self.host.clear_problem("export")
        self.host.show_message(text or f"Exported {path}")

    def export_png(self, target: str | None = None) -> Path | None:
        items = self.items()
        if not items:
            self.host.show_message(NOTHING_YET, True)
            return None
        target = target or self._target("Export the contact sheet", "contact-sheet.png",
                                        "PNG (*.png)")
        if not target:
            return None
        try:
            path = export_contact_sheet_png(items, target)
        except (OSError, ValueError) as exc:
            self.host.show_message(f"Could not export the contact sheet: {exc}", True, "export")
            return None
        self._exported(path, path.parent, "")
        return path

    def export_pdf(self, target: str | None = None) -> Path | None:
        items = self.items()
        if not items:
            self.host.show_message(NOTHING_YET, True)
            return None
        target = target or self._target("Export the contact sheet as PDF",
                                        "contact-sheet.pdf", "PDF (*.pdf)")
        if not target:
            return None
        session = self.host.session
        style = session.style.text if session else ""
        try:
            path = export_contact_sheet_pdf(items, target, default_title(session.title),
                                            f"Style: {style}" if style else "")
        except (OSError, ValueError) as exc:
            self.host.show_message(f"Could not export the PDF: {exc}", True, "export")
            return None
        self._exported(path, path.parent, "")
        return path

    def export_pictures(self, folder: str | None = None) -> list[Path]:
        items = self.items()
        if not items:
            self.host.show_message(NOTHING_YET, True)
            return []
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self.host,
                                                      "Export the pictures into a folder",
                                                      self.host.config.export_folder or "")
            if not folder:
                return []
        clashes = [i.name for i in items if (Path(folder) / i.name).exists()]
        if clashes and self.host.ask(
                "Replace files?", f"{len(clashes)} file(s) with these names exist in {folder} "
                f"({', '.join(clashes[:3])}…). Replace them?",
                ["Replace", "Cancel"], default="Cancel") != "Replace":
            return []
        try:
            written = export_pictures(items, folder)
        except OSError as exc:
            self.host.show_message(f"Could not export the pictures: {exc}", True, "export")
            return []
        self._exported(Path(folder), Path(folder),
                       f"Exported {len(written)} picture(s) with their parameters to {folder}")
        return written
