"""The soaks' verdict (tests/soak_helpers.py) on made-up runs: the 30-minute soaks run only with
ZOS_SOAK=1, so the rule that judges them is checked here, where it costs nothing."""

from tests.soak_helpers import flatness

SPAN = 100.0  # seconds; fifths at 0, 20, 40, 60, 80
MIB = 1024  # KiB


def _run(early_rss_mib: float, late_rss_mib: float, early_s: float, late_s: float):
    samples = [(t, {"agent": int((late_rss_mib if t >= 80 else early_rss_mib) * MIB)})
               for t in range(0, 100, 2)]  # fmt: skip
    latencies = [(t / 2, late_s if t >= 160 else early_s) for t in range(200)]
    return flatness(samples, latencies, SPAN)


def test_a_flat_run_passes_and_reports_both_fifths():
    verdict = _run(100, 110, 0.05, 0.08)
    assert verdict.memory == {"agent": (100, 110)}
    assert verdict.growing == [] and not verdict.slower


def test_memory_past_a_quarter_and_16_mib_is_growth():
    assert _run(100, 141, 0.05, 0.05).growing == []  # 125 + 16 = 141 MiB allowed
    assert _run(100, 142, 0.05, 0.05).growing == ["agent"]


def test_p90_latency_past_twice_and_half_a_second_is_slower():
    assert not _run(100, 100, 0.1, 0.7).slower  # 2 x 0.1 + 0.5 = 0.7 s allowed
    assert _run(100, 100, 0.1, 0.75).slower
