"""How one set splits over engine replicas, and how their event streams merge back into one.

Panels are independent given the reference (spec section 3), so each shard computes the
reference and its own panels (``only=``). A panorama's MultiDiffusion windows (spec section 14)
stay with their panel on one replica: they are averaged every step, and a panel's windows fill
micro-batches of their own, so the replica runs exactly the UNet batches a local run does. Floating-point sums depend on how many rows share a
UNet batch, so shards are cut along the request's micro-batches: with an explicit micro-batch
every UNet batch of a shard is a batch the local engine would run, and the pixels are identical.

The merged stream is the one a local run reports: ``Step i`` once every shard is through step i,
then the previews of step i, the reference's and the panels' in panel order; the
finished pictures (reference first, then panels in order) once every shard is past its last step;
``Finished`` with the shards' metadata merged. Events travel as wire dicts (see ``wire``).

A shard is through step i when it has sent a preview of every one of its rows for step i, or,
since previews may be throttled, only every few steps (the full VAE) or off, when it has sent
anything that comes after step i's previews: its ``Step i+1``, or its decoding and pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..engine.request import SetRequest

RESTART = "_restart"
"""Internal event: a shard is being run again from the start (its replica was lost)."""


def plan_shards(request: SetRequest, replicas: int) -> list[tuple[int, ...]]:
    """The selected panels split into at most ``replicas`` contiguous shards of whole
    micro-batches, balanced, never more shards than micro-batches (so never more than panels).
    ``full_attention_share`` couples all images: one shard."""
    selected = list(request.selected)
    if replicas <= 1 or len(selected) <= 1 or request.settings.full_attention_share:
        return [tuple(selected)]
    unit = request.micro_batch or 1
    chunks = [selected[i : i + unit] for i in range(0, len(selected), unit)]
    count = min(replicas, len(chunks))
    shards, start = [], 0
    for s in range(count):
        size = len(chunks) // count + (1 if s < len(chunks) % count else 0)
        shards.append(tuple(i for chunk in chunks[start : start + size] for i in chunk))
        start += size
    return shards


def _row(event: dict[str, Any]) -> Any:
    """A picture's row in the merged stream: a panel's index, ``("reference", position)``."""
    if event.get("event") in ("AnchorPreview", "AnchorDone"):  # a character's anchor (spec section 13)
        return ("anchor", event["character"], event["number"])
    index = event["index"]
    return index if index is not None else ("reference", event.get("reference") or 0)


def panel_numbers(indices: Sequence[int]) -> str:
    """1-based panel numbers for messages: ``3, 4``."""
    return ", ".join(str(i + 1) for i in indices)


class StreamMerger:
    """Merges the wire events of the shards of one set into the stream of a local run.

    ``feed(shard, event)`` returns the events to send on, in order. ``ended`` is true after the
    final event (``Finished``, ``Cancelled`` or ``Failed``) has been returned.
    """

    def __init__(self, selected: Sequence[int], shards: Sequence[Sequence[int]],
                 references: Sequence[int] = (0,), anchors: Sequence[tuple[str, int]] = ()):
        """``references``: the positions of the references that run (weight above 0); each
        shard runs them all and reports them, as ``index`` None with their ``reference``.
        ``anchors``: the characters' anchors as (name, number), which every shard runs too."""
        self.rows: list[Any] = ([("reference", r) for r in references] + [("anchor", *a) for a in anchors]
                                + list(selected))
        self.references = len(references) + len(anchors)  # the rows every shard runs first
        self.shards = [tuple(s) for s in shards]
        self.ended = False
        self._total: int | None = None
        self._emitted_step = 0
        self._complete = [0] * len(self.shards)
        self._counts: list[dict[int, int]] = [{} for _ in self.shards]
        self._previews: dict[int, dict[Any, dict]] = {}
        self._done: dict[Any, dict] = {}
        self._done_emitted = 0
        self._finished: dict[int, dict[str, Any]] = {}
        self._loading_shard: int | None = None
        self._decoded = [0] * len(self.shards)
        self._decoding_emitted = 0
        self._said: set[str] = set()

    def feed(self, shard: int, event: dict[str, Any]) -> list[dict[str, Any]]:
        if self.ended:
            return []
        kind = event.get("event")
        if kind == RESTART:
            return self._restart(shard)
        if kind == "Step":
            self._total = event["total"]
            return self._through(shard, event["step"] - 1)  # its previews of the step before are all sent
        if kind in ("Preview", "AnchorPreview"):
            return self._preview(shard, event)
        if kind in ("Cancelled", "Failed"):
            self.ended = True
            return [event]
        if kind in ("PanelDone", "AnchorDone", "Finished", "Decoding"):
            # past its last step: no more previews from this shard
            out = self._through(shard, self._total or 0)
            if kind in ("PanelDone", "AnchorDone"):
                self._done.setdefault(_row(event), event)
            elif kind == "Finished":
                self._finished[shard] = event.get("metadata") or {}
            else:
                self._decoded[shard] = event["done"]
            return out + self._flush_done()
        if kind == "Loading":
            # Replicas load their models side by side; a local run shows one loading bar.
            if self._loading_shard is None:
                self._loading_shard = shard
            return [event] if shard == self._loading_shard else []
        if kind == "Notice":
            # each shard says what the set's run says once (the memory mode Auto picked)
            if event.get("message") in self._said:
                return []
            self._said.add(event.get("message"))
        return [event]  # Inverting, Notice

    def _decoded_over_the_set(self) -> int:
        """Pictures decoded over the whole set, as a local run counts them: every shard decodes
        the references first (counted once), then its own panels."""
        refs = self.references
        return min(min(self._decoded), refs) + sum(max(0, d - refs) for d in self._decoded)

    def _restart(self, shard: int) -> list[dict[str, Any]]:
        self._decoded[shard] = 0
        self._counts[shard] = {}
        self._complete[shard] = self._emitted_step
        self._finished.pop(shard, None)
        return [{"event": "Notice", "message": (
            f"a server engine stopped; panels {panel_numbers(self.shards[shard])} are being made "
            "again on another one (same pictures)")}]

    def _preview(self, shard: int, event: dict[str, Any]) -> list[dict[str, Any]]:
        step = event["step"]
        if step <= self._emitted_step:
            return []  # a re-run shard repeating steps already sent
        self._previews.setdefault(step, {}).setdefault(_row(event), event)
        counts = self._counts[shard]
        counts[step] = counts.get(step, 0) + 1
        if counts[step] == self.references + len(self.shards[shard]) and step == self._complete[shard] + 1:
            return self._through(shard, step) + self._flush_done()
        return []

    def _through(self, shard: int, step: int) -> list[dict[str, Any]]:
        """The shard is through ``step``: the steps every shard is through go out, each with
        the previews that came for it (rows in order; a throttled step has fewer)."""
        self._complete[shard] = max(self._complete[shard], step)
        out = []
        while all(done > self._emitted_step for done in self._complete):
            step = self._emitted_step + 1
            previews = self._previews.pop(step, {})
            out.append({"event": "Step", "step": step, "total": self._total})
            out += [previews[row] for row in self.rows if row in previews]
            self._emitted_step = step
        return out

    def _flush_done(self) -> list[dict[str, Any]]:
        if self._total is None or self._emitted_step < self._total:
            return []
        out = []
        # as a local run: every picture decoded (counted once, in order), then the pictures
        while self._decoding_emitted < self._decoded_over_the_set():
            self._decoding_emitted += 1
            out.append({"event": "Decoding", "done": self._decoding_emitted, "total": len(self.rows)})
        if any(self._decoded) and self._decoding_emitted < len(self.rows):
            return out
        while self._done_emitted < len(self.rows) and self.rows[self._done_emitted] in self._done:
            out.append(self._done[self.rows[self._done_emitted]])
            self._done_emitted += 1
        if self._done_emitted == len(self.rows) and len(self._finished) == len(self.shards):
            self.ended = True
            out.append({"event": "Finished", "metadata": self.merged_metadata()})
        return out

    def merged_metadata(self) -> dict[str, Any]:
        """The shards' run metadata as one run's: the slowest shard's timings, the largest
        micro-batch, and what each shard made where. The request itself stays with the client."""
        metas = [self._finished[s] for s in range(len(self.shards))]
        first = metas[0]
        timings: dict[str, float] = {}
        for meta in metas:
            for key, value in (meta.get("timings") or {}).items():
                timings[key] = max(timings.get(key, value), value)
        merged = {
            "micro_batch": max((m.get("micro_batch") or 0) for m in metas),
            "device": first.get("device"),
            "dtype": first.get("dtype"),
            "timings": timings,
            "shards": [{"panels": [i + 1 for i in shard], "device": meta.get("device"),
                        "micro_batch": meta.get("micro_batch")} for shard, meta in zip(self.shards, metas)],
        }
        windows = {panel: record for meta in metas for panel, record in (meta.get("windows") or {}).items()}
        if windows:  # each panorama's windows, made by the shard that holds the panel
            merged["windows"] = windows
        return merged
