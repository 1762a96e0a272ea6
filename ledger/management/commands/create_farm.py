from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ledger.models import Farm


class Command(BaseCommand):
    help = "Create a farm (or show the existing one of that name) and print its id."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="username of the farm's owner")

    def handle(self, *args, name: str, owner: str, **options) -> None:
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"no user {owner!r}; create it first (manage.py createsuperuser)")
        farm, created = Farm.objects.get_or_create(name=name, defaults={"owner": user})
        self.stdout.write(str(farm.pk))
        if not created:
            self.stderr.write(f"farm {name!r} already existed")
