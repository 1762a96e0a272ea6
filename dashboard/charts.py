"""Charts drawn on the server as inline SVG by pure functions (format_html escapes every value).

No chart library and nothing loaded at run time; the Content-Security-Policy forbids inline
scripts, not inline SVG. Colours come from classes in site.css, so no inline style either.
Markup is built here rather than in a template included per bar: a page of 20 nodes has over a
thousand bars, and per-bar template rendering cost more than the rest of the page.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ledger.uptime import DAY, History

CHART_HEIGHT = 40  # SVG user units; the SVG scales to its box
BAR_GAP = 1


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    level: str  # CSS class: up, partial, down or none
    label: str  # what a pointer over the bar (and a screen reader) is told


def _level(availability: float | None) -> str:
    if availability is None:
        return "none"
    if availability >= 0.99:
        return "up"
    return "partial" if availability >= 0.5 else "down"


def percent(value: float | None) -> str:
    """An availability as people read it: "99.5 %", or "no data"."""
    if value is None:
        return "no data"
    return f"{value * 100:.1f} %".replace(".0 %", " %")


@lru_cache(maxsize=512)
def _when(start: datetime, unit: str) -> str:
    """A bucket's name, made once per bucket however many nodes' charts show it."""
    return f"{start:%Y-%m-%d %Z}" if unit == DAY else f"{start:%Y-%m-%d %H:00 %Z}"


def uptime_bars(history: History, *, width: float) -> list[Bar]:
    """One bar per bucket, as tall as the node was available; an empty bucket is a stub."""
    slot = width / len(history.buckets)
    bars = []
    for index, bucket in enumerate(history.buckets):
        share = bucket.availability
        height = CHART_HEIGHT * share if share else 0
        height = max(height, 2)  # a flat line still shows there is a bucket
        bars.append(
            Bar(
                x=round(index * slot, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(max(slot - BAR_GAP, 0.5), 2),
                height=round(height, 2),
                level=_level(share),
                label=f"{_when(bucket.start, history.unit)}: {percent(share)}",
            )
        )
    return bars


@dataclass(frozen=True)
class Chart:
    """An uptime chart: its title, the availability over the span in words, and the SVG."""

    title: str
    availability: str
    svg: SafeString


_RECT = '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>'


def uptime_chart(history: History, *, title: str, width: int) -> Chart:
    """The chart of one node's span. Its bars carry only numbers, a class from a fixed set and
    a label of a date and a number, so they are joined as they are (escaping each of the
    thousand values a page holds cost more than the rest of the page); the title is escaped."""
    availability = percent(history.availability)
    rects = mark_safe(  # noqa: S308 - numbers, fixed class names, dates: nothing to escape
        "".join(
            _RECT.format(bar.level, bar.x, bar.y, bar.width, bar.height, bar.label)
            for bar in uptime_bars(history, width=width)
        )
    )
    svg = format_html(
        '<svg class="uptime-chart" viewBox="0 0 {} {}" preserveAspectRatio="none" role="img" '
        'aria-label="Uptime, {}: {}">{}</svg>',
        width,
        CHART_HEIGHT,
        title.lower(),
        availability,
        rects,
    )
    return Chart(title, availability, svg)


@dataclass(frozen=True)
class Gauge:
    """A capacity bar: used out of total, with the words a screen reader gets."""

    name: str
    used: int
    total: int
    used_text: str
    free_text: str

    @property
    def share(self) -> float:
        return min(1.0, self.used / self.total) if self.total else 0.0

    @property
    def used_percent(self) -> str:
        return f"{self.share * 100:.1f}%"

    @property
    def level(self) -> str:
        return "down" if self.share >= 0.9 else "partial" if self.share >= 0.7 else "up"

    @property
    def svg(self) -> SafeString:
        return format_html(
            '<svg class="gauge-bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" '
            'aria-label="{}: {}, {}"><rect class="free" x="0" y="0" width="100" height="8">'
            '</rect><rect class="{}" x="0" y="0" width="{}" height="8"></rect></svg>',
            self.name,
            self.used_text,
            self.free_text,
            self.level,
            self.used_percent,
        )


def _size(value: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def capacity_gauges(node) -> list[Gauge]:
    """Cores, memory and disks of a node, used and free; a disk kind it lacks is left out."""
    gauges = [
        Gauge(
            "Cores",
            node.used_cru,
            node.cru,
            f"{node.used_cru} of {node.cru} used",
            f"{max(node.cru - node.used_cru, 0)} free",
        )
    ]
    for name, field in (("Memory", "mru"), ("SSD", "sru"), ("HDD", "hru")):
        total, used = getattr(node, field), getattr(node, f"used_{field}")
        if total or used:
            gauges.append(
                Gauge(
                    name,
                    used,
                    total,
                    f"{_size(used)} of {_size(total)} used",
                    f"{_size(max(total - used, 0))} free",
                )
            )
    return gauges
