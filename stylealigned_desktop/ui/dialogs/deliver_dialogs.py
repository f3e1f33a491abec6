"""The small options dialogs of File → Export's storyboard deliverables: the PDF's layout and
page, the animatic's frame size, frame rate, cross-fade and burn-ins, the timeline's frame rate
and shot list, the Storyboarder project's frame rate. Each opens with the choices made last time (the window keeps
them in its desktop config) and returns the export package's options."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QVBoxLayout,
)

from ...export.animatic import AnimaticOptions
from ...export.pdf import LAYOUTS, PAGES, PdfOptions
from ...export.storyboarder import StoryboarderOptions
from ...export.timeline import TimelineOptions
from ..support import small_combo

FRAME_SIZES = ((1280, 720), (1920, 1080), (1024, 576), (854, 480), (1920, 816), (1080, 1080))


class _OptionsDialog(QDialog):
    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.form = QFormLayout()
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export…")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _fps_box(self, fps: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(1.0, 120.0)
        box.setDecimals(3)
        box.setValue(fps)
        box.setToolTip("Frames per second (24 for film, 25 PAL, 29.97 / 30 NTSC video)")
        return box


class PdfOptionsDialog(_OptionsDialog):
    def __init__(self, options: PdfOptions, parent=None) -> None:
        super().__init__("Export the storyboard PDF", parent)
        self.layout_choice = small_combo()
        for count in LAYOUTS:
            self.layout_choice.addItem({1: "1 panel a page", 3: "3 panels a page, notes beside",
                                        6: "6 panels a page"}[count], count)
        self.layout_choice.setCurrentIndex(self.layout_choice.findData(options.layout))
        self.page = small_combo()
        for name in PAGES:
            self.page.addItem(name, name)
        self.page.setCurrentIndex(self.page.findData(options.page))
        self.landscape = QCheckBox("Landscape")
        self.landscape.setChecked(options.landscape)
        self.title_page = QCheckBox("Title page (title, date, the style's references)")
        self.title_page.setChecked(options.title_page)
        self.form.addRow("Layout", self.layout_choice)
        self.form.addRow("Paper", self.page)
        self.form.addRow("", self.landscape)
        self.form.addRow("", self.title_page)

    def options(self) -> PdfOptions:
        return PdfOptions(layout=self.layout_choice.currentData(), page=self.page.currentData(),
                          landscape=self.landscape.isChecked(), title_page=self.title_page.isChecked())


class AnimaticOptionsDialog(_OptionsDialog):
    def __init__(self, options: AnimaticOptions, parent=None) -> None:
        super().__init__("Export the animatic", parent)
        self.size_choice = small_combo()
        for w, h in FRAME_SIZES:
            self.size_choice.addItem(f"{w} × {h}", f"{w}x{h}")
        self.width, self.height = QSpinBox(), QSpinBox()
        for box, value, top in ((self.width, options.size[0], 7680), (self.height, options.size[1], 4320)):
            box.setRange(16, top)
            box.setSingleStep(2)
            box.setValue(value)
        key = f"{options.size[0]}x{options.size[1]}"
        self.size_choice.addItem("Custom", "custom")
        index = self.size_choice.findData(key)
        self.size_choice.setCurrentIndex(index if index >= 0 else self.size_choice.count() - 1)
        self.size_choice.currentIndexChanged.connect(self._size_chosen)
        self._size_chosen()
        self.fps = self._fps_box(options.fps)
        self.crossfade = QDoubleSpinBox()
        self.crossfade.setRange(0.0, 5.0)
        self.crossfade.setSingleStep(0.25)
        self.crossfade.setSpecialValueText("none (cuts)")
        self.crossfade.setSuffix(" s")
        self.crossfade.setValue(options.crossfade)
        self.captions = QCheckBox("Burn in the dialogue as captions")
        self.captions.setChecked(options.captions)
        self.numbers = QCheckBox("Burn in the panel numbers")
        self.numbers.setChecked(options.numbers)
        self.srt = QCheckBox("Write the dialogue as subtitles too (.srt)")
        self.srt.setChecked(options.srt)
        self.form.addRow("Frame size", self.size_choice)
        self.form.addRow("Width", self.width)
        self.form.addRow("Height", self.height)
        self.form.addRow("Frame rate", self.fps)
        self.form.addRow("Cross-fade", self.crossfade)
        for box in (self.captions, self.numbers, self.srt):
            self.form.addRow("", box)

    def _size_chosen(self, *_args) -> None:
        key = self.size_choice.currentData()
        custom = key == "custom"
        if not custom:
            w, h = (int(x) for x in key.split("x"))
            self.width.setValue(w)
            self.height.setValue(h)
        for box in (self.width, self.height):
            box.setEnabled(custom)

    def options(self) -> AnimaticOptions:
        size = (self.width.value() // 2 * 2, self.height.value() // 2 * 2)  # H.264 needs even sizes
        return AnimaticOptions(size=size, fps=self.fps.value(), crossfade=self.crossfade.value(),
                               captions=self.captions.isChecked(), numbers=self.numbers.isChecked(),
                               srt=self.srt.isChecked())


class TimelineOptionsDialog(_OptionsDialog):
    def __init__(self, options: TimelineOptions, parent=None) -> None:
        super().__init__("Export the editor's timeline", parent)
        self.fps = self._fps_box(options.fps)
        self.shot_list = QCheckBox("A shot list beside it (.csv)")
        self.shot_list.setChecked(options.shot_list)
        self.form.addRow("Frame rate", self.fps)
        self.form.addRow("", self.shot_list)

    def options(self) -> TimelineOptions:
        return TimelineOptions(fps=self.fps.value(), shot_list=self.shot_list.isChecked())


class StoryboarderOptionsDialog(_OptionsDialog):
    def __init__(self, options: StoryboarderOptions, parent=None) -> None:
        super().__init__("Export a Storyboarder project", parent)
        self.fps = self._fps_box(options.fps)
        self.form.addRow("Frame rate", self.fps)

    def options(self) -> StoryboarderOptions:
        return StoryboarderOptions(fps=self.fps.value())
