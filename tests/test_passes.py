"""The background workers' loop (grid/passes.py) rides out a database outage: the pass that
failed is tried again, and the worker carries on when the database is back."""

import logging
import os
import signal

import pytest
from django.db import OperationalError

from grid.passes import run_passes


@pytest.fixture
def own_signals():
    """run_passes installs SIGTERM/SIGINT handlers: give pytest its own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_pass_the_database_refuses_is_tried_again_and_work_resumes(own_signals, caplog):
    calls = []

    def work() -> None:
        calls.append(len(calls))
        if len(calls) <= 2:
            raise OperationalError("connection to server failed: Connection refused")
        os.kill(os.getpid(), signal.SIGTERM)  # the third pass worked: stop as systemd would

    caplog.set_level(logging.WARNING, logger="grid.passes")
    run_passes(work, every=0.01)
    assert len(calls) == 3
    assert caplog.text.count("database unavailable") == 1  # said once, not at every pass
    assert "database reachable again" in caplog.text


def test_one_pass_lets_the_database_error_through(own_signals):
    def work() -> None:
        raise OperationalError("connection to server failed")

    with pytest.raises(OperationalError):
        run_passes(work, every=0.01, once=True)


def test_any_other_error_ends_the_worker_for_its_supervisor_to_restart(own_signals):
    def work() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        run_passes(work, every=0.01)
