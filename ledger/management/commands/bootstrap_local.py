"""One-box bootstrap for scripts/up: an operator login, a local farm, a local-node token.

Idempotent: the operator and farm are created once; the password is kept in var/ (mode 0600) so
the run script can show it every time. Prints one JSON object for the script to read.
"""

import json
import os
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from ledger.models import Farm
from ledger.services import create_enrollment_token

OPERATOR = "operator"
LOCAL_FARM = "local"


class Command(BaseCommand):
    help = "Create the one-box operator, the 'local' farm and an enrollment token; print JSON."

    def handle(self, *args, **options) -> None:
        password_file = settings.VAR_DIR / "operator-password"
        User = get_user_model()
        operator = User.objects.filter(username=OPERATOR).first()
        if operator is None:
            password = secrets.token_urlsafe(12)
            operator = User.objects.create_superuser(OPERATOR, password=password)
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password)
        elif password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = "(yours; reset: manage.py changepassword operator)"  # noqa: S105
        farm, _ = Farm.objects.get_or_create(name=LOCAL_FARM, defaults={"owner": operator})
        _, token = create_enrollment_token(
            farm=farm, uses=1, ttl=timedelta(days=1), label="local node (scripts/up)"
        )
        self.stdout.write(
            json.dumps(
                {"username": OPERATOR, "password": password, "farm": farm.pk, "token": token}
            )
        )
