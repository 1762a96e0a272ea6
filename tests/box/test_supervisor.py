"""The box's supervisor stopping (box/supervisor.py), with real processes: every component gets
its signal at once and one shared grace, the one that ignores it is named and killed, and the
stop says how long it took and which component was slowest, so a slow stop of the box (CI once
waited minutes for one) shows where its time went."""

import io
import re
import sys
from pathlib import Path

from box.supervisor import Component, Supervisor
from tests.box.test_up import alive

GRACE = 2.0
# Ignores SIGTERM, then says so through a file (the supervisor starts it only once it has).
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
time.sleep(600)
"""


def test_the_stop_signals_all_at_once_kills_the_stubborn_one_and_says_so(tmp_path: Path):
    ignoring = tmp_path / "ignoring"
    polite = Component("polite", [sys.executable, "-c", "import time; time.sleep(600)"],
                       tmp_path / "polite.log")  # fmt: skip
    stubborn = Component("stubborn", [sys.executable, "-c", STUBBORN, str(ignoring)],
                         tmp_path / "stubborn.log", ready=ignoring.exists)  # fmt: skip
    out = io.StringIO()
    alive_at_shutdown: list[bool] = []
    supervisor = Supervisor(
        [polite, stubborn],
        cwd=tmp_path,
        out=out,
        grace=GRACE,
        on_shutdown=lambda: alive_at_shutdown.extend(
            entry.process.poll() is None for entry in supervisor.running
        ),
    )
    assert supervisor.start(supervisor.components)
    pids = [entry.process.pid for entry in supervisor.running]
    supervisor.shutdown()

    said = out.getvalue()
    # The hook ran before any component was signalled: it runs beside their stop.
    assert alive_at_shutdown == [True, True]
    assert "stopping stubborn" in said and "stopping polite" in said
    assert f"stubborn did not stop in {GRACE:g} s; killing it" in said
    assert "polite did not stop" not in said
    summary = r"components stopped in [\d.]+ s; slowest polite, [\d.]+ s; killed stubborn$"
    assert re.search(summary, said, re.MULTILINE), said
    assert not any(alive(pid) for pid in pids)
