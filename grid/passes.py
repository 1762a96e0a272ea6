"""The loop of the control plane's background workers (the coordinator worker, the ledger
monitor): a pass of work every few seconds until SIGTERM.

A pass that fails because the database is unreachable (PostgreSQL restarting) is logged once
and tried again at the next pass, on a fresh connection: the worker rides out the outage instead
of exiting, so it works again the moment the database does, not after its supervisor's restart
delay (which grows with every crash). A pass commits what it changes or nothing, so a failed one
leaves no half-done work. Any other error still ends the worker: it is a bug to see, and the
supervisor (box/, systemd) restarts it.
"""

import logging
import signal
import threading
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)


def run_passes(work: Callable[[], None], *, every: float, once: bool = False) -> None:
    """Call `work` every `every` seconds until SIGTERM/SIGINT (only once with `once`, which
    lets a database error through to its caller)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    down = False
    while True:
        try:
            work()
        except (OperationalError, InterfaceError) as exc:
            if once:
                raise
            if not down:
                log.warning("database unavailable (%s); trying again every %gs", exc, every)
            down = True
            connection.close()  # a broken connection goes back to be discarded, not reused
        else:
            if down:
                log.warning("database reachable again; passes resumed")
            down = False
        if once or stop.wait(every):
            return
