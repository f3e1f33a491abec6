"""The reports of an evaluation: ``metrics.json``, a Markdown table and a bar chart.

Pure rendering of the ``metrics.json`` document that :func:`.scoring.score_groups` returns
(no models, no torch). It draws the way the run-folder writer (``engine/runfolder.py``) draws
the contact sheet: these are files an evaluation leaves behind, read by people and by the app
alike, not terminal output (the command line only prints what this returns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

METRICS_JSON = "metrics.json"
METRICS_MARKDOWN = "metrics.md"
METRICS_CHART = "metrics.png"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _get(group: dict[str, Any], metric: str, key: str = "mean") -> float | None:
    return (group.get(metric) or {}).get(key)


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (one row per group), with the paper's figures if present."""
    paper = report.get("paper") or {}
    header = ["", "sets", "images", "DINO set consistency (mean ± std)",
              "CLIP text alignment (cosine)", "CLIP score ×100 (torchmetrics)", "Inception Score"]
    if paper:
        header += ["paper: text", "paper: DINO"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in report["groups"]:
        dino = group.get("set_consistency")
        inception = group.get("inception_score")
        row = [
            group["label"].replace("|", "\\|"), str(group["sets"]), str(group["images"]),
            f"{_fmt(dino['mean'])} ± {_fmt(dino['std'])}" if dino else "—",
            _fmt(_get(group, "text_alignment")),
            _fmt(_get(group, "text_alignment", "clip_score_100"), 2),
            (f"{_fmt(inception['mean'], 2)} ± {_fmt(inception['std'], 2)} "
             f"({inception['splits']} split{'s' if inception['splits'] != 1 else ''})"
             if inception else "—"),
        ]
        if paper:
            figures = paper.get(group.get("variant", group["label"])) or {}
            star = "*" if figures.get("note") else ""  # not the paper's own figure
            row += [_fmt(figures.get(k)) + (star if figures.get(k) is not None else "")
                    for k in ("text_alignment", "set_consistency")]
        lines.append("| " + " | ".join(row) + " |")
    models = report.get("models", {})
    used = [f"{name} `{models[key]}`" for key, name in
            (("dino", "DINO"), ("clip", "CLIP"), ("inception", "Inception v3")) if models.get(key)]
    notes = [
        "",
        f"Models: {', '.join(used) or 'none'} on {models.get('device')}.",
        "Text alignment is the raw CLIP cosine between each image and its object (the paper's "
        "convention); the CLIP score column is torchmetrics' max(100·cosine, 0).",
    ]
    notes += [f"Character identity, {g['label']}: {_fmt(g['identity']['mean'])} ± {_fmt(g['identity']['std'])} "
              "(DINO cosine between the panels' masked subject crops)" for g in report["groups"] if g.get("identity")]
    if any(_get(g, "inception_score", "splits") == 1 for g in report["groups"]):
        notes.append("An Inception Score over a handful of images is not comparable with "
                     "published Inception Scores (those use thousands).")
    for name, figures in paper.items():
        if figures.get("note"):
            notes.append(f"\\* {name}: {figures['note']}.")
    return "\n".join(lines + notes) + "\n"


_PALETTE = [(52, 101, 164), (204, 0, 0), (78, 154, 6), (245, 121, 0), (117, 80, 123),
            (193, 125, 17), (6, 152, 154), (85, 87, 83)]
_CHART_METRICS = (
    ("set_consistency", "DINO set consistency"),
    ("identity", "DINO character identity"),
    ("text_alignment", "CLIP text alignment"),
    ("inception_score", "Inception Score"),
)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


@dataclass(frozen=True)
class _ChartLayout:
    """Sizes of the chart in pixels: one panel per metric, each with one bar per group."""

    groups: int
    bar_w: int = 44
    gap: int = 14
    margin: int = 40
    plot_h: int = 260
    top: int = 56
    bottom: int = 40

    @property
    def panel_w(self) -> int:
        return max(230, self.groups * (self.bar_w + self.gap) + self.gap + self.margin)


def draw_chart(report: dict[str, Any]) -> Image.Image:
    """One panel per metric, one bar per group (± std as a whisker); paper figures as dashes."""
    groups = report["groups"]
    paper = report.get("paper") or {}
    shown = [(key, title) for key, title in _CHART_METRICS if any(key in g for g in groups)]
    if not groups or not shown:
        raise ValueError("nothing to draw: the report has no groups or no metrics")
    layout = _ChartLayout(len(groups))
    legend_h = 22 * (len(groups) + (1 if paper else 0)) + 16
    width = layout.panel_w * len(shown) + 2 * layout.margin
    height = layout.top + layout.plot_h + layout.bottom + legend_h
    chart = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(chart)
    draw.text((layout.margin, 12), "StyleAligned evaluation", fill="black", font=_font(16))
    for p, (key, title) in enumerate(shown):
        values = [(_get(g, key), _get(g, key, "std")) for g in groups]
        marks = [(paper.get(g.get("variant", g["label"])) or {}).get(key) for g in groups]
        _draw_metric_panel(draw, layout, layout.margin + p * layout.panel_w, key, title, values, marks)
    _draw_legend(draw, layout, groups, bool(paper))
    return chart


def _draw_metric_panel(draw, layout: _ChartLayout, x0: int, key: str, title: str,
                       values: list[tuple[float | None, float | None]], marks: list[float | None]) -> None:
    """One metric's panel at ``x0``: its axis and ticks, then one bar per group (``values``:
    mean and std) with the published figure (``marks``) as a dash."""
    font, small = _font(13), _font(11)
    finite = [v for v, _ in values if v is not None] + [m for m in marks if m is not None]
    highs = [v + (s or 0) for v, s in values if v is not None] + finite
    lows = [v - (s or 0) for v, s in values if v is not None] + finite
    hi = max(max(highs, default=1.0), 0.0)
    lo = min(min(lows, default=0.0), 0.0)
    if hi - lo <= 0:
        hi = lo + 1.0
    y_max = hi + 0.15 * (hi - lo)  # headroom for the value labels
    top, plot_h = layout.top, layout.plot_h

    def y_of(value: float) -> float:
        return top + plot_h - (value - lo) / (y_max - lo) * plot_h

    draw.text((x0, top - 22), title, fill="black", font=font)
    axis_x = x0 + layout.margin - 8
    draw.line([(axis_x, top), (axis_x, top + plot_h)], fill=(120, 120, 120))
    zero = y_of(0.0)
    draw.line([(axis_x, zero), (x0 + layout.panel_w - 10, zero)], fill=(120, 120, 120))
    for tick in (lo, (lo + hi) / 2, hi):
        y = y_of(tick)
        draw.line([(axis_x - 4, y), (axis_x, y)], fill=(120, 120, 120))
        draw.text((x0 - 4, y - 6), f"{tick:.2f}", fill=(90, 90, 90), font=small)
    for i, ((value, std), mark) in enumerate(zip(values, marks, strict=True)):
        left = axis_x + layout.gap + i * (layout.bar_w + layout.gap)
        _draw_bar(draw, y_of, left, layout.bar_w, zero, _PALETTE[i % len(_PALETTE)], value, std, mark,
                  key != "inception_score")


def _draw_bar(draw, y_of, left: float, bar_w: int, zero: float, color, value: float | None,
              std: float | None, mark: float | None, three_decimals: bool) -> None:
    """One group's bar with its whisker and value label (or "n/a"), and the published dash."""
    small = _font(11)
    if value is not None:
        y = y_of(value)
        draw.rectangle([left, min(y, zero), left + bar_w, max(y, zero)], fill=color)
        if std:
            mid = left + bar_w / 2
            draw.line([(mid, y_of(value - std)), (mid, y_of(value + std))], fill="black")
            for v in (value - std, value + std):
                draw.line([(mid - 6, y_of(v)), (mid + 6, y_of(v))], fill="black")
        label = f"{value:.3f}" if three_decimals else f"{value:.2f}"
        # Above the bar, its whisker and the published figure's dash, whichever is higher.
        tops = [min(y, zero), y_of(value + (std or 0))]
        if mark is not None:
            tops.append(y_of(mark))
        draw.text((left, min(tops) - 16), label, fill="black", font=small)
    else:
        draw.text((left + 4, zero - 16), "n/a", fill=(120, 120, 120), font=small)
    if mark is not None:
        y = y_of(mark)
        for dash in range(int(left - 4), int(left + bar_w + 4), 8):
            draw.line([(dash, y), (min(dash + 4, left + bar_w + 4), y)], fill="black", width=2)


def _draw_legend(draw, layout: _ChartLayout, groups: list[dict[str, Any]], with_paper: bool) -> None:
    """Below the panels: each group's colour and size, and the dash of the published figures."""
    margin, font = layout.margin, _font(13)
    y = layout.top + layout.plot_h + layout.bottom
    for i, group in enumerate(groups):
        color = _PALETTE[i % len(_PALETTE)]
        draw.rectangle([margin, y + 2, margin + 14, y + 14], fill=color)
        draw.text((margin + 22, y), f"{group['label']} ({group['sets']} sets, {group['images']} "
                                    f"images)", fill="black", font=font)
        y += 22
    if with_paper:
        draw.line([(margin, y + 8), (margin + 14, y + 8)], fill="black", width=2)
        draw.text((margin + 22, y), "published figure (paper / independent reproduction)",
                  fill="black", font=font)


def write_reports(report: dict[str, Any], out_dir: str | Path) -> dict[str, str]:
    """Write metrics.json, metrics.md and metrics.png into ``out_dir``; returns their paths."""
    from ..engine.runfolder import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / METRICS_JSON, "markdown": out / METRICS_MARKDOWN,
             "chart": out / METRICS_CHART}
    document = {k: v for k, v in report.items() if k != "outputs"}
    document["outputs"] = {k: str(v) for k, v in paths.items()}
    write_json(paths["json"], document)
    paths["markdown"].write_text(markdown_table(document), encoding="utf-8")
    draw_chart(document).save(paths["chart"], format="PNG")
    return {k: str(v) for k, v in paths.items()}
