"""The control map a panel's picture becomes (canny edges, depth, a ready-made map), shown on
its card; computed in the engine's worker thread because depth estimation needs torch."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtGui import QImage

from ..storyboard import StoryboardView
from ..support import pil_to_qimage
from ..threads import EngineWorker, Task, ThumbnailLoader

CONTROL_THUMB = 160


def make_control_map(path: str, mode: str, low: int, high: int, width: int, height: int,
                     depth_model: str) -> QImage:
    """The control map of a panel's picture at the set's size, shrunk to a thumbnail.

    Runs in the worker thread: engine.control may import torch (depth).
    """
    from ...engine.control import ControlSettings, preprocess

    settings = ControlSettings(width=width, height=height, canny_low=low, canny_high=high,
                               depth_model=depth_model)
    image = preprocess(path, mode, settings)
    image.thumbnail((CONTROL_THUMB, CONTROL_THUMB))
    return pil_to_qimage(image)


class ControlMapController(QObject):
    """Computes the map a card asks for (``control_map_wanted``) and gives it back to the card.

    ``depth_model()`` is the depth estimator the engine would use for the current session.
    """

    def __init__(self, storyboard: StoryboardView, thumbnails: ThumbnailLoader,
                 worker: EngineWorker, depth_model: Callable[[], str], parent=None) -> None:
        super().__init__(parent)
        self.storyboard = storyboard
        self.thumbnails = thumbnails
        self.worker = worker
        self.depth_model = depth_model
        storyboard.control_map_wanted.connect(self.compute)

    def compute(self, panel_id: str) -> None:
        request = self.storyboard.control_request(panel_id)
        if request is None:
            return
        key, path, mode, low, high, width, height = request
        depth_model = self.depth_model()
        card = self.storyboard.cards.get(panel_id)
        if card is not None:
            card.control_note.setText(f"{mode} map: computing…")
            if card.control_thumb.image is None:
                picture = self.thumbnails.load_now(path, CONTROL_THUMB)
                if not picture.isNull():
                    card.control_thumb.set_image(picture)

        def done(task: Task) -> None:
            if task.error is not None:
                note = f"{mode} map not available yet: {task.error}"
                self.storyboard.set_control_map(panel_id, key, None, note)
            else:
                self.storyboard.set_control_map(panel_id, key, task.result, f"{mode} map")

        self.worker.run_task(lambda: make_control_map(path, mode, low, high, width, height,
                                                      depth_model), done)
