"""Signals the ledger sends for what it writes without the ORM's own signals."""

from django.dispatch import Signal

# Sent with `count` once uptime reports are written (in their transaction): the reports are
# inserted by one statement per batch (ledger.services), so no post_save is sent for each.
uptime_reports_stored = Signal()
