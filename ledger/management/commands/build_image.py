"""`manage.py build_image`: run `python -m image build`, then register the result as current."""

import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ledger.boot import register_build
from ledger.errors import LedgerError


class Command(BaseCommand):
    help = (
        "Build the boot image (root, Debian 12, network) with `python -m image build` and "
        "register it; --skip-build registers an existing build directory."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--out", type=Path, default=Path(settings.BASE_DIR) / "build", help="build directory"
        )
        parser.add_argument(
            "--skip-build", action="store_true", help="register what --out already holds"
        )
        parser.add_argument(
            "--not-current", action="store_true", help="register it without making it current"
        )

    def handle(self, *args, out: Path, skip_build: bool, not_current: bool, **options) -> None:
        if not skip_build:
            done = subprocess.run(
                [sys.executable, "-m", "image", "build", "--out", str(out)],
                cwd=settings.BASE_DIR,
                check=False,
            )
            if done.returncode != 0:
                raise CommandError(f"`python -m image build` failed (exit {done.returncode})")
        try:
            image = register_build(out, make_current=not not_current)
        except LedgerError as exc:
            raise CommandError(exc.message) from exc
        state = "current" if image.is_current else "registered, not current"
        self.stdout.write(f"boot image {image.version} {state}; files in {image.directory}")
