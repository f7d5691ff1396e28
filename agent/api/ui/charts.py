"""Tiny server-side SVG charts (stacked bars and lines): no JavaScript, no chart library, no requests.

Colours are presentation attributes, not `style=`, so the strict Content-Security-Policy allows them.
Each chart is an `img` with a title and a description for screen readers; pages also show the numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D1F", "#4D4D4D")
SEVERITY_COLORS = {"low": "#56B4E9", "medium": "#E69F00", "high": "#D55E00", "critical": "#8E1B1B"}
TEXT = "#1f2933"
GRID = "#d5dbe1"
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 40, 8, 10, 26


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: str


def color_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ at or above `value` (at least 1), so ticks are round numbers."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "chart"


class _Canvas:
    """Axes, gridlines and labels shared by both chart kinds."""

    def __init__(self, labels: Sequence[str], top: float, width: int, height: int) -> None:
        self.labels = list(labels)
        self.width, self.height = width, height
        self.top = nice_max(top)
        self.plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
        self.plot_h = height - MARGIN_TOP - MARGIN_BOTTOM
        self.slot = self.plot_w / max(1, len(self.labels))

    def y(self, value: float) -> float:
        return MARGIN_TOP + self.plot_h * (1 - value / self.top)

    def x(self, index: int) -> float:
        return MARGIN_LEFT + self.slot * index

    def frame(self, label_every: int | None) -> list[str]:
        parts = []
        for tick in (0.0, self.top / 2, self.top):
            y = self.y(tick)
            parts.append(
                f'<line x1="{MARGIN_LEFT}" x2="{self.width - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{GRID}" stroke-width="1"/>'
                f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
                f'fill="{TEXT}">{_num(tick)}</text>'
            )
        every = label_every or max(1, math.ceil(len(self.labels) / 8))
        for i, label in enumerate(self.labels):
            if i % every == 0:
                parts.append(
                    f'<text x="{self.x(i) + self.slot / 2:.1f}" y="{self.height - 8}" text-anchor="middle" '
                    f'font-size="12" fill="{TEXT}">{escape(label)}</text>'
                )
        return parts

    def wrap(self, body: list[str], title: str, desc: str, empty: bool) -> Markup:
        ident = _slug(title)
        if empty:
            body.append(
                f'<text x="{MARGIN_LEFT + self.plot_w / 2:.1f}" y="{MARGIN_TOP + self.plot_h / 2:.1f}" '
                f'text-anchor="middle" font-size="13" fill="{TEXT}">No events in this window</text>'
            )
        return Markup(
            f'<div class="chart-wrap"><svg class="chart" viewBox="0 0 {self.width} {self.height}" role="img" '
            f'aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>'
            + "".join(body)
            + "</svg></div>"
        )


def _describe(labels: Sequence[str], series: Sequence[Series], unit: str) -> str:
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    if not totals or not any(totals):
        return f"No {unit}."
    peak = max(range(len(totals)), key=lambda i: totals[i])
    by = ", ".join(f"{s.name} {_num(sum(s.values))}" for s in series)
    return f"{_num(sum(totals))} {unit} in total ({by}); peak {_num(totals[peak])} at {labels[peak]}."


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "events",
    width: int = 600,
    height: int = 240,
    label_every: int | None = None,
) -> Markup:
    """Stacked bars: one bar per label, one coloured segment per series."""
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    canvas = _Canvas(labels, max(totals, default=0), width, height)
    body = canvas.frame(label_every)
    bar_w = max(1.0, canvas.slot * 0.78)
    for i, label in enumerate(labels):
        base = 0.0
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            y0, y1 = canvas.y(base), canvas.y(base + value)
            body.append(
                f'<rect x="{canvas.x(i) + (canvas.slot - bar_w) / 2:.1f}" y="{y1:.1f}" width="{bar_w:.1f}" '
                f'height="{max(0.5, y0 - y1):.1f}" fill="{escape(s.color)}">'
                f"<title>{escape(label)} · {escape(s.name)}: {_num(value)}</title></rect>"
            )
            base += value
    return canvas.wrap(body, title, _describe(labels, series, unit), not any(totals))


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "events",
    width: int = 600,
    height: int = 220,
    label_every: int | None = None,
) -> Markup:
    """One line per series, with a dot (and tooltip) at each non-zero point."""
    top = max((v for s in series for v in s.values), default=0)
    canvas = _Canvas(labels, top, width, height)
    body = canvas.frame(label_every)
    for s in series:
        points = [(canvas.x(i) + canvas.slot / 2, canvas.y(v)) for i, v in enumerate(s.values)]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{escape(s.color)}" stroke-width="2"/>')
        for (x, y), label, value in zip(points, labels, s.values, strict=False):
            if value > 0:
                body.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{escape(s.color)}">'
                    f"<title>{escape(label)} · {escape(s.name)}: {_num(value)}</title></circle>"
                )
    return canvas.wrap(body, title, _describe(labels, series, unit), not top)
