"""`manage.py publish_release --version V`: bundle the node-side code, sign it, store it."""

import io
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from contracts.release_bundle import build_bundle
from ledger.errors import LedgerError
from ledger.releases import publish_release, select_farms, set_desired_version


class Command(BaseCommand):
    help = (
        "Build an agent release from the working tree (nodeagent/, contracts/, signing/, rhai/, "
        "sal/), sign it with the release key and store it; --farm makes farms' nodes move to it."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        # Our --version (the release's) replaces Django's own --version flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("--version", required=True, dest="release", help="release version")
        parser.add_argument(
            "--source",
            type=Path,
            default=Path(settings.BASE_DIR),
            help="tree holding the packages (default: this checkout)",
        )
        parser.add_argument(
            "--farm",
            action="append",
            default=[],
            help="farm id (or 'all') whose desired agent version becomes this one; repeatable",
        )

    def handle(self, *args, release: str, source: Path, farm: list[str], **options) -> None:
        try:
            # Farms first: a typo in --farm publishes nothing.
            farms = select_farms(None if "all" in farm else [int(f) for f in farm])
            bundle = build_bundle(source, release)
            published = publish_release(
                version=release, bundle=io.BytesIO(bundle), actor="manage.py publish_release"
            )
            moved = set_desired_version(farms=farms, version=release) if farm else 0
        except (LedgerError, ValueError) as exc:  # BundleError is a ValueError
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        self.stdout.write(
            f"agent {published.version}: {published.size} bytes, sha256 {published.sha256}"
            + (f"; desired by {moved} farm(s)" if farm else "")
        )
