from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from ledger.errors import LedgerError
from ledger.models import Farm
from ledger.services import create_enrollment_token


class Command(BaseCommand):
    help = "Create an enrollment token for a farm and print its secret (shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("farm", type=int, help="farm id")
        parser.add_argument("--uses", type=int, default=1)
        parser.add_argument("--days", type=float, default=7, help="days until it expires")
        parser.add_argument("--label", default="")

    def handle(self, *args, farm: int, uses: int, days: float, label: str, **options) -> None:
        farm_obj = Farm.objects.filter(pk=farm).first()
        if farm_obj is None:
            raise CommandError(f"farm {farm} does not exist (manage.py create_farm NAME --owner U)")
        try:
            _, secret = create_enrollment_token(
                farm=farm_obj, uses=uses, ttl=timedelta(days=days), label=label
            )
        except LedgerError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(secret)
