"""One-box bootstrap for scripts/up: an operator login, a demo user for the dashboard, a local
farm and a local-node token.

Idempotent: the operator, the demo user and the farm are created once; their passwords are kept
in var/ (mode 0600) so the run script can show them every time. Prints one JSON object for the
script to read. The demo user is an ordinary user (not staff): what a newcomer signs in as.
"""

import json
import os
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from ledger.models import Farm, Node
from ledger.services import create_enrollment_token

OPERATOR = "operator"
DEMO = "demo"
LOCAL_FARM = "local"
# The local node's gateway domain: under .localhost, which never resolves beyond the machine
# (RFC 6761; curl resolves it to loopback itself), so no name on it can leak to the web.
LOCAL_GATEWAY_DOMAIN = "gw.localhost"


def _keep_secret(path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)


def _ensure_demo_user() -> str:
    """The demo user's password: made with the user, then read back from var/."""
    password_file = settings.VAR_DIR / "demo-password"
    User = get_user_model()
    if not User.objects.filter(username=DEMO).exists():
        password = secrets.token_urlsafe(12)
        User.objects.create_user(DEMO, email="demo@localhost", password=password)
        _keep_secret(password_file, password)
        return password
    if password_file.exists():
        return password_file.read_text().strip()
    return "(yours; reset: manage.py changepassword demo)"


def _make_gateway(node_id: int) -> str:
    """Make the local node the box's gateway (once; an operator's later change is kept)."""
    node = Node.objects.get(pk=node_id)
    if not node.gateway_domain:
        node.gateway_domain = LOCAL_GATEWAY_DOMAIN
        node.save(update_fields=["gateway_domain"])
    return node.gateway_domain


class Command(BaseCommand):
    help = (
        "Create the one-box operator, the demo user, the 'local' farm and an enrollment token; "
        "print JSON. With --gateway NODE: make that node the box's gateway (gw.localhost) and "
        "print its domain."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--gateway",
            type=int,
            metavar="NODE",
            help="make the local node (registered by now) serve gateway names under "
            f"{LOCAL_GATEWAY_DOMAIN}; its Caddy runs in the node's network namespace",
        )

    def handle(self, *args, **options) -> None:
        if options["gateway"] is not None:
            self.stdout.write(_make_gateway(options["gateway"]))
            return
        password_file = settings.VAR_DIR / "operator-password"
        User = get_user_model()
        operator = User.objects.filter(username=OPERATOR).first()
        if operator is None:
            password = secrets.token_urlsafe(12)
            operator = User.objects.create_superuser(OPERATOR, password=password)
            _keep_secret(password_file, password)
        elif password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = "(yours; reset: manage.py changepassword operator)"  # noqa: S105
        farm, _ = Farm.objects.get_or_create(name=LOCAL_FARM, defaults={"owner": operator})
        _, token = create_enrollment_token(
            farm=farm, uses=1, ttl=timedelta(days=1), label="local node (scripts/up)"
        )
        demo_password = _ensure_demo_user()
        self.stdout.write(
            json.dumps(
                {
                    "username": OPERATOR,
                    "password": password,
                    "demo_username": DEMO,
                    "demo_password": demo_password,
                    "farm": farm.pk,
                    "token": token,
                }
            )
        )
