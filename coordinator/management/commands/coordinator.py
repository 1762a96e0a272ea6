"""The coordinator worker: deadlines, retries with backoff, rescheduling off offline nodes.

Several may run at once: each pass claims rows with SELECT … FOR UPDATE SKIP LOCKED (PostgreSQL;
on SQLite writes are serialised, and one worker is the norm). It rides out a database outage
(grid/passes.py).
"""

from django.core.management.base import BaseCommand

from coordinator.services import coordinator_tick
from grid.passes import run_passes


class Command(BaseCommand):
    help = "Run the coordinator worker until SIGTERM (or one pass with --once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run one pass and exit")
        parser.add_argument("--every", type=float, default=1.0, help="seconds between passes")

    def handle(self, *args, once: bool, every: float, **options) -> None:
        def tick() -> None:
            counts = coordinator_tick()
            if any(counts.values()):
                self.stdout.write(", ".join(f"{k}: {v}" for k, v in counts.items() if v))

        run_passes(tick, every=every, once=once)
