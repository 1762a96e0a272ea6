"""What the two soaks share (tests/integration/test_soak.py on the default profile,
tests/production/test_soak.py on the production profile): the flag and duration, the pace, the
RSS sampling and the flatness verdict, so both judge a run by the same rule.

After a warm-up (the first fifth of the run), the last fifth must be flat against the second
fifth: each process's memory within 25 % + 16 MiB, p90 submit → succeeded latency within
2x + 0.5 s. Printed as a table, so a run is also a figure.
"""

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SOAK = os.environ.get("ZOS_SOAK") == "1"
MINUTES = float(os.environ.get("ZOS_SOAK_MINUTES", "30"))
SKIP_REASON = "the 30-minute soak runs only with ZOS_SOAK=1"
PACE = 0.5  # seconds between deployments
SAMPLE_EVERY = 10.0  # seconds between RSS samples; a short run (ZOS_SOAK_MINUTES) samples more
SAMPLES_PER_FIFTH = 4  # at least, so a short run's fifths are compared too
EARLY, LATE = 1, 4  # fifths of the run compared (the first is the warm-up)
MEMORY_FACTOR, MEMORY_SLACK_MIB = 1.25, 16
LATENCY_FACTOR, LATENCY_SLACK_S = 2, 0.5


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Soak:
    """One soak run: every deployment's latency and the processes' RSS now and then, each at
    its offset in seconds from the start."""

    minutes: float = MINUTES
    start: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)

    def running(self) -> bool:
        return time.monotonic() < self.start + self.minutes * 60

    def finished(self, submitted: float, sample: Callable[[], dict[str, int]]) -> None:
        """A deployment submitted at `submitted` (monotonic) has ended: keep its latency, sample
        RSS (name → KiB) if the last sample is SAMPLE_EVERY old, and keep the pace."""
        now = time.monotonic()
        self.latencies.append((submitted - self.start, now - submitted))
        every = min(SAMPLE_EVERY, self.minutes * 60 / 5 / SAMPLES_PER_FIFTH)
        if not self.samples or now - self.start - self.samples[-1][0] >= every:
            self.samples.append((now - self.start, sample()))
        time.sleep(PACE)

    def assert_flat(self, title: str) -> None:
        """Print the table and fail if memory or latency grew from the second fifth to the last."""
        span = time.monotonic() - self.start
        print(f"\n{title}: {len(self.latencies)} deployments in {span / 60:.1f} min")
        verdict = flatness(self.samples, self.latencies, span)
        print(f"{'process':<16}{'RSS 2nd fifth MiB':>20}{'RSS last fifth MiB':>20}")
        for name, (early, late) in verdict.memory.items():
            print(f"{name:<16}{early:>20.1f}{late:>20.1f}")
        early_p90, late_p90 = verdict.p90
        print(f"submit → succeeded p90: {early_p90 * 1000:.0f} ms then {late_p90 * 1000:.0f} ms")
        assert not verdict.growing, f"memory grew: {verdict.growing}"
        assert not verdict.slower, f"p90 latency grew: {early_p90:.3f} s then {late_p90:.3f} s"


@dataclass(frozen=True)
class Flatness:
    memory: dict[str, tuple[float, float]]  # name → (MiB in the second fifth, in the last)
    p90: tuple[float, float]  # seconds, the same fifths
    growing: list[str]
    slower: bool


def _fifth(rows: list[tuple[float, object]], fifth: int, span: float) -> list:
    return [row for t, row in rows if fifth * span / 5 <= t < (fifth + 1) * span / 5]


def flatness(
    samples: list[tuple[float, dict[str, int]]], latencies: list[tuple[float, float]], span: float
) -> Flatness:
    """The second fifth of a run against its last: peak RSS per process and p90 latency."""
    memory, growing = {}, []
    for name in samples[0][1]:
        early = max(s.get(name, 0) for s in _fifth(samples, EARLY, span)) / 1024
        late = max(s.get(name, 0) for s in _fifth(samples, LATE, span)) / 1024
        memory[name] = (early, late)
        if late > early * MEMORY_FACTOR + MEMORY_SLACK_MIB:
            growing.append(name)
    early_p90 = statistics.quantiles(_fifth(latencies, EARLY, span), n=10)[-1]
    late_p90 = statistics.quantiles(_fifth(latencies, LATE, span), n=10)[-1]
    slower = late_p90 > early_p90 * LATENCY_FACTOR + LATENCY_SLACK_S
    return Flatness(memory, (early_p90, late_p90), growing, slower)
