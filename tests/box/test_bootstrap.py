"""`manage.py bootstrap_local`, which scripts/up runs on every start: the operator and a demo
user for the dashboard, made once, their passwords kept in var/ and shown the same every time;
with --gateway, the local node made the box's gateway."""

import io
import json
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from ledger.gateways import gateway_settings
from ledger.models import Farm
from tests.coordinator.conftest import make_online_node

pytestmark = pytest.mark.django_db


def _bootstrap() -> dict:
    out = io.StringIO()
    call_command("bootstrap_local", stdout=out)
    return json.loads(out.getvalue())


def test_the_demo_user_is_an_ordinary_user_made_once_with_a_kept_password(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first, second = _bootstrap(), _bootstrap()
    assert first["demo_username"] == second["demo_username"] == "demo"
    assert first["demo_password"] == second["demo_password"]
    assert len(first["demo_password"]) >= 16
    demo = get_user_model().objects.get(username="demo")
    assert not demo.is_staff and not demo.is_superuser
    assert demo.check_password(first["demo_password"])
    kept = tmp_path / "demo-password"
    assert kept.read_text() == first["demo_password"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first["password"] != first["demo_password"]  # the operator's is another one
    assert get_user_model().objects.filter(username__in=["demo", "operator"]).count() == 2


def test_the_demo_user_signs_in_to_the_dashboard(settings, tmp_path, client):
    settings.VAR_DIR = tmp_path
    login = _bootstrap()
    response = client.post(
        "/sign-in", {"username": "demo", "password": login["demo_password"]}, follow=True
    )
    assert b"Hello, demo" in response.content


def test_the_local_node_becomes_the_boxs_gateway_once_and_keeps_an_operators_choice(
    settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    _bootstrap()
    node = make_online_node(Farm.objects.get(name="local"))
    assert gateway_settings(node) is None

    def make_gateway() -> str:
        out = io.StringIO()
        call_command("bootstrap_local", "--gateway", str(node.pk), stdout=out)
        return out.getvalue().strip()

    assert make_gateway() == make_gateway() == "gw.localhost"  # every start: the same
    node.refresh_from_db()
    expected = {"domain": "gw.localhost", "addresses": [], "any_backend": False}
    assert gateway_settings(node) == expected
    node.gateway_domain = "gw.example.net"  # an operator's choice in the admin is kept
    node.save()
    assert make_gateway() == "gw.example.net"
