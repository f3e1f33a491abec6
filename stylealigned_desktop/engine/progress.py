"""What a progress bar shows for a run, from the engine's events: the phase in words, how far
the phase is over the whole job, and the time left (no Qt: the window and the command line
say the same).

Each phase counts across the whole job: reading two reference pictures is one bar from 0 to 1
("reading reference picture 2 of 2"), not two bars that start over; finishing counts the
pictures decoded. Time left is the phase's own pace so far, once it has moved (not for the
model loading, whose stages do not take time in proportion).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import events as ev


@dataclass(frozen=True)
class Progress:
    phase: str
    """What the engine is doing, in words ("Step 4/20", "Reading reference picture 2 of 2")."""
    fraction: float
    """0..1 through the phase, over the whole job."""
    seconds_left: float | None
    """The phase's time left at its pace so far; None until it has moved."""


def format_seconds(seconds: float) -> str:
    """"42 s", "3:05 min"."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60}:{seconds % 60:02d} min"


class JobProgress:
    """Feed it a job's events in order; ``update`` returns the Progress an event changes (None
    for events that are not progress: previews, notices, the end)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._phase_kind: str | None = None
        self._start: tuple[float, float] | None = None  # (time, fraction) when the phase first moved

    def update(self, event: ev.Event) -> Progress | None:
        if isinstance(event, ev.Loading):
            text = f"Loading the model: {event.message or ''} {event.progress:.0%}".replace("  ", " ")
            # its stages (reading, placing the weights) do not take time in proportion: no guess
            return dataclasses.replace(self._progress("loading", text, event.progress), seconds_left=None)
        if isinstance(event, ev.Inverting):
            total = max(1, event.total)
            fraction = ((event.picture - 1) * total + event.step) / (max(1, event.pictures) * total)
            which = f" {event.picture} of {event.pictures}" if event.pictures > 1 else ""
            return self._progress("inverting", f"Reading reference picture{which}: step {event.step}/{total}",
                                  fraction)
        if isinstance(event, ev.Step):
            text = f"Step {event.step}/{event.total}"
            if event.step >= event.total:
                text += " · finishing…"  # decoding comes next, counted by Decoding events
            return self._progress("denoising", text, event.step / max(1, event.total))
        if isinstance(event, ev.Decoding):
            return self._progress("decoding", f"Finishing: picture {event.done} of {event.total} decoded",
                                  event.done / max(1, event.total))
        return None

    def _progress(self, kind: str, text: str, fraction: float) -> Progress:
        now = self._clock()
        fraction = min(1.0, max(0.0, fraction))
        if kind != self._phase_kind:
            self._phase_kind, self._start = kind, (now, fraction)
        started_at, started_from = self._start
        left = None
        if fraction > started_from and fraction < 1.0:
            left = (now - started_at) / (fraction - started_from) * (1.0 - fraction)
        return Progress(text, fraction, left)
