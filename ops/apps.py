from django.apps import AppConfig
from django.db.models.signals import post_save


class OpsConfig(AppConfig):
    """Staff tools: the grid overview, node logs over the link, and the Prometheus endpoint."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from coordinator.models import JobEvent
        from ledger.models import UptimeReport
        from ledger.signals import uptime_reports_stored
        from ops import metrics

        post_save.connect(metrics.job_event_saved, sender=JobEvent, dispatch_uid="ops-job-event")
        uptime_reports_stored.connect(
            metrics.uptime_reports_stored, sender=UptimeReport, dispatch_uid="ops-uptime-reports"
        )
