"""The coordinator worker: deadlines, retries with backoff, rescheduling off offline nodes.

Several may run at once: each pass claims rows with SELECT … FOR UPDATE SKIP LOCKED (PostgreSQL;
on SQLite writes are serialised, and one worker is the norm).

A pass that fails because the database is unreachable (PostgreSQL restarting) is logged and
tried again at the next pass, on a fresh connection: the worker rides out the outage instead of
exiting, so it is working again the moment the database is, not after a supervisor's restart
delay. A pass changes nothing it does not commit, so a failed one leaves no half-done work.
"""

import logging
import signal
import threading

from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError, connection

from coordinator.services import coordinator_tick

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the coordinator worker until SIGTERM (or one pass with --once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run one pass and exit")
        parser.add_argument("--every", type=float, default=1.0, help="seconds between passes")

    def handle(self, *args, once: bool, every: float, **options) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        down = False
        while True:
            try:
                counts = coordinator_tick()
            except (OperationalError, InterfaceError) as exc:
                if once:
                    raise
                if not down:
                    log.warning("database unavailable (%s); retrying every %gs", exc, every)
                down = True
                connection.close()  # a broken connection goes back to be discarded, not reused
            else:
                if down:
                    log.warning("database reachable again; passes resumed")
                down = False
                if any(counts.values()):
                    self.stdout.write(", ".join(f"{k}: {v}" for k, v in counts.items() if v))
            if once or stop.wait(every):
                return
