from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from hub.services import prune_blobs


class Command(BaseCommand):
    help = (
        "Free the disk space of image parts no image uses any more (deleted images keep their "
        "parts until this runs). Safe while pushes run: uploads touched within the grace time "
        "are kept. Run it daily, e.g. from a systemd timer."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=24,
            help="keep uploads touched this recently: longer than any push takes (default 24)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would go, delete nothing"
        )

    def handle(self, *args, grace_hours: float, dry_run: bool, **options) -> None:
        if grace_hours < 0:
            raise CommandError(f"--grace-hours {grace_hours}: must be 0 or more")
        pruned = prune_blobs(grace=timedelta(hours=grace_hours), dry_run=dry_run)
        verb = "would free" if dry_run else "freed"
        self.stdout.write(
            f"{verb} {pruned.bytes / 2**20:.1f} MiB: {pruned.rows} unused uploads forgotten, "
            f"{pruned.files} files deleted"
        )
