"""Periodic ledger housekeeping: nodes silent for three report intervals go offline. It rides
out a database outage (grid/passes.py)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from grid.passes import run_passes
from ledger.services import mark_offline_nodes


class Command(BaseCommand):
    help = "Mark nodes offline after 3 missed uptime intervals; loops until SIGTERM unless --once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run one pass and exit")
        parser.add_argument(
            "--every",
            type=float,
            default=None,
            help="seconds between passes (default: a third of the uptime interval)",
        )

    def handle(self, *args, once: bool, every: float | None, **options) -> None:
        def check() -> None:
            for node in mark_offline_nodes():
                self.stdout.write(f"node {node.pk} is now offline")

        run_passes(check, every=every or max(1.0, settings.ZOS_UPTIME_INTERVAL / 3), once=once)
