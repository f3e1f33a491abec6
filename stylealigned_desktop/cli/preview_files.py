"""``generate --previews KIND``: each picture's newest live preview as a JPEG in ``OUT/previews/``.

The command line shows no pictures, so by default (``off``) it decodes no previews at all. With
a decoder chosen (the same names as Settings → Previews, ``request.PREVIEW_KINDS``), an image
viewer open on ``OUT/previews/`` watches the set sharpen: each file is replaced whole (written
beside it, then renamed: a viewer never reads half a file), named as its finished picture is, and
the folder goes once the finished pictures are written, as the window replaces a preview by its
picture.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import temporaries
from ..engine import events as ev
from ..engine.anchor_files import anchor_file
from ..engine.runfolder import panel_file, reference_file

PREVIEW_FOLDER = "previews"
PREVIEW_QUALITY = 90


def preview_name(event) -> str | None:
    """The file a preview event's picture goes to (its finished picture's name, as JPEG), or
    None for an event that is no preview."""
    if isinstance(event, ev.Preview):
        name = reference_file(event.reference) if event.index is None else panel_file(event.index + 1)
    elif isinstance(event, ev.AnchorPreview):
        name = anchor_file(event.character, event.number)
    else:
        return None
    return str(Path(name).with_suffix(".jpg"))


class PreviewFiles:
    """An event sink that writes each preview to ``folder`` and hands every event on to ``sink``."""

    def __init__(self, folder: Path, sink) -> None:
        self.folder, self.sink = folder, sink

    def __call__(self, event) -> None:
        name = preview_name(event)
        if name is not None:
            picture = event.image.convert("RGB")
            temporaries.atomic_write(self.folder / name,
                                     lambda tmp: picture.save(tmp, format="JPEG", quality=PREVIEW_QUALITY))
        self.sink(event)

    def remove(self) -> None:
        """The finished pictures are written: their previews go."""
        shutil.rmtree(self.folder, ignore_errors=True)
