"""Charts drawn on the server as SVG: geometry here, markup in templates/ops/*.svg.html.

No chart library and no script: the overview page must render under the strict CSP and on a
phone, and its figures are a few dozen numbers. Colours come from CSS classes (ops.css), one per
state, so the page and its legend agree.
"""

from dataclasses import dataclass, field

WIDTH = 720
HEIGHT = 200
MARGIN_LEFT = 36
MARGIN_BOTTOM = 22
GAP = 2


@dataclass
class Bar:
    x: float
    width: float
    label: str
    total: int
    segments: list[dict] = field(default_factory=list)  # {y, height, state, n}


@dataclass
class BarChart:
    width: int
    height: int
    plot_height: float
    bars: list[Bar]
    ticks: list[dict]  # {y, value}: horizontal grid lines with their value
    states: list[str]  # legend order
    title: str


def stacked_bars(
    columns: list[tuple[str, dict[str, int]]], *, states: list[str], title: str
) -> BarChart:
    """A stacked bar per column (label, {state: n}), scaled to the largest column's total."""
    plot_height = HEIGHT - MARGIN_BOTTOM - 8
    peak = max((sum(values.values()) for _, values in columns), default=0)
    scale_top = _nice_ceiling(peak)
    slot = (WIDTH - MARGIN_LEFT) / max(1, len(columns))
    bars = []
    for i, (label, values) in enumerate(columns):
        bar = Bar(
            x=MARGIN_LEFT + i * slot + GAP / 2,
            width=max(1.0, slot - GAP),
            label=label,
            total=sum(values.values()),
        )
        y = 8 + plot_height
        for state in states:
            n = values.get(state, 0)
            if n:
                height = plot_height * n / scale_top
                y -= height
                bar.segments.append({"y": y, "height": height, "state": state, "n": n})
        bars.append(bar)
    ticks = [
        {"y": 8 + plot_height * (1 - fraction), "value": round(scale_top * fraction)}
        for fraction in (0, 0.5, 1)
    ]
    return BarChart(WIDTH, HEIGHT, plot_height, bars, ticks, states, title)


def _nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10, 20, 40, 100, … at or above `value`: round, and its half (the
    middle grid line) is a whole number too."""
    step = 1
    while True:
        for multiple in (2, 4, 10):
            if step * multiple >= value:
                return step * multiple
        step *= 10
