"""Percentiles and latency summaries, one implementation for every bench.

Nearest-rank on the sorted values (no interpolation), so a reported p99 is a latency that was
actually observed; an empty list gives 0.0 rather than an error, because a bench that measured
nothing still writes its report (and says so in its notes).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


def percentile(values: list[float], q: float) -> float:
    """The value at quantile `q` (0..1) of `values`, nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float
    p90: float
    p99: float
    mean: float


def summarize(values: list[float]) -> Summary:
    """Count, p50, p90, p99 and mean of `values` in one pass over a single sort."""
    if not values:
        return Summary(0, 0.0, 0.0, 0.0, 0.0)
    ordered = sorted(values)
    return Summary(
        count=len(ordered),
        p50=percentile(ordered, 0.5),
        p90=percentile(ordered, 0.9),
        p99=percentile(ordered, 0.99),
        mean=statistics.fmean(ordered),
    )


def per_request_ms(cpu_share: float, rate: float) -> float:
    """Milliseconds of CPU one request cost, from a share of a core and requests per second."""
    return cpu_share / rate * 1000 if rate else 0.0
