"""The SVG chart helpers: scales, stacking, escaping, empty charts, and what the CSP allows."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from agent.api.ui import charts
from agent.api.ui.views import bucket_keys

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    """The chart's <svg> element (inside its scrolling wrapper)."""
    svg = ET.fromstring(markup).find(f"{SVG}svg")
    assert svg is not None
    return svg


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 1), (0.4, 1), (1, 1), (3, 5), (7, 10), (10, 10), (11, 20), (180, 200), (501, 1000)]
)
def test_nice_max_rounds_up_to_1_2_5(value: float, expected: float) -> None:
    assert charts.nice_max(value) == expected


def test_stacked_bars_heights_add_up_and_carry_tooltips() -> None:
    labels = ["09:00", "10:00", "11:00"]
    series = [charts.Series("api", [2, 0, 4], "#111111"), charts.Series("worker", [3, 1, 6], "#222222")]
    root = _parse(charts.bar_chart(labels, series, title="Events", width=300, height=200))
    assert root.get("role") == "img"
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 5  # zero values draw nothing
    # The tallest bar (10 events) reaches the top of the scale (nice_max(10) = 10).
    plot_h = 200 - charts.MARGIN_TOP - charts.MARGIN_BOTTOM
    column = [r for r in rects if (r.findtext(f"{SVG}title") or "").startswith("11:00")]
    assert sum(float(r.get("height", 0)) for r in column) == pytest.approx(plot_h, abs=0.2)
    assert min(float(r.get("y", 0)) for r in column) == pytest.approx(charts.MARGIN_TOP, abs=0.2)
    titles = [r.findtext(f"{SVG}title") for r in rects]
    assert "10:00 · worker: 1" in titles
    desc = root.findtext(f"{SVG}desc") or ""
    assert "16 events in total" in desc and "peak 10 at 11:00" in desc


def test_labels_and_names_are_escaped_and_no_inline_styles() -> None:
    svg = charts.bar_chart(
        ["<b>"], [charts.Series('x"><script>alert(1)</script>', [1], "#000")], title="T <i>", width=200
    )
    assert "<script>" not in svg and "<b>" not in svg and "<i>" not in svg
    _parse(svg)  # still well-formed
    assert "style=" not in svg


def test_empty_chart_says_so() -> None:
    svg = charts.bar_chart(["a", "b"], [charts.Series("s", [0, 0], "#000")], title="Empty")
    assert "No events in this window" in svg
    assert "No events." in (_parse(svg).findtext(f"{SVG}desc") or "")
    line = charts.line_chart(["a"], [charts.Series("s", [0], "#000")], title="Empty line")
    assert "No events in this window" in line


def test_line_chart_points_follow_the_values() -> None:
    root = _parse(charts.line_chart(["a", "b", "c"], [charts.Series("n", [0, 5, 10], "#000")], title="L", height=120))
    points = root.find(f"{SVG}polyline")
    assert points is not None
    ys = [float(p.split(",")[1]) for p in (points.get("points") or "").split()]
    assert ys[0] > ys[1] > ys[2]  # higher values are drawn higher up
    assert len(root.findall(f"{SVG}circle")) == 2  # no dot at zero


def test_x_labels_are_thinned_to_fit() -> None:
    labels = [f"{h:02d}:00" for h in range(24)]
    svg = charts.bar_chart(labels, [charts.Series("s", [1] * 24, "#000")], title="Day")
    shown = re.findall(r">(\d\d:00)</text>", svg)
    assert 6 <= len(shown) <= 12 and shown[0] == "00:00"


def test_bucket_keys_cover_the_window_hour_by_hour() -> None:
    end = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    keys = bucket_keys(end - dt.timedelta(hours=24), end, "hour")
    assert len(keys) == 25 and keys[0].hour == 9 and keys[-1] == end.replace(minute=0)
    days = bucket_keys(end - dt.timedelta(days=3), end, "day")
    assert [k.day for k in days] == [30, 31, 1, 2] and all(k.hour == 0 for k in days)
