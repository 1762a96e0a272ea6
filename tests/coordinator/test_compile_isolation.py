"""Scripts are compiled in a pool of worker processes with time and memory limits, so one
pathological script neither stalls the server's other requests nor leaves its memory behind."""

import asyncio
import json
import os
import resource
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.test import override_settings

from coordinator.models import Deployment
from tests.coordinator.conftest import deployment_payload

CHECKS = "tests.coordinator.compile_checks."
SPIN = 3  # seconds of CPU the stand-in compile burns


def _validate(tenant, script: str):
    return tenant.api.post(
        "/api/v1/scripts/validate", {"script": script}, content_type="application/json"
    )


@pytest.mark.django_db(transaction=True)
@override_settings(ZOS_SCRIPT_CHECK=CHECKS + "spin", ZOS_COMPILE_TIMEOUT=30)
def test_a_slow_compile_does_not_hold_up_other_requests(alice):
    """Attack: a script that took the compiler seconds of CPU slowed every other request.

    Django gives each request its own thread, so what the server shared with the compile was
    its process (the GIL, the memory): the server must spend none of the compile's CPU time,
    and another request is answered while the compile still runs.
    """
    from rest_framework.authtoken.models import Token

    from grid.asgi import application

    token = Token.objects.create(user=alice.user).key
    headers = [
        (b"host", b"localhost"),
        (b"authorization", f"Token {token}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def scenario() -> tuple[bool, int, int]:
        body = json.dumps({"script": str(SPIN)}).encode()
        slow = HttpCommunicator(
            application,
            "POST",
            "/api/v1/scripts/validate",
            body=body,
            headers=[*headers, (b"content-length", str(len(body)).encode())],
        )
        slow_task = asyncio.ensure_future(slow.get_response(timeout=60))
        await asyncio.sleep(0.5)  # the compile is under way
        other = await HttpCommunicator(
            application, "GET", "/api/v1/farms", headers=headers[:1]
        ).get_response(timeout=60)
        slow_done_first = slow_task.done()
        slow_response = await slow_task
        return slow_done_first, other["status"], slow_response["status"]

    cpu_before = time.process_time()
    slow_done_first, other_status, slow_status = async_to_sync(scenario)()
    assert time.process_time() - cpu_before < SPIN / 2, "the compile ran in the server process"
    assert other_status == 200
    assert not slow_done_first, "the other request waited for the slow compile"
    assert slow_status == 200


@pytest.mark.django_db
@override_settings(ZOS_SCRIPT_CHECK=CHECKS + "whoami")
def test_scripts_are_compiled_in_another_process(alice):
    response = _validate(alice, "x")
    assert response.status_code == 200
    assert response.json()["functions"] != [str(os.getpid())]


@pytest.mark.django_db
@override_settings(ZOS_SCRIPT_CHECK=CHECKS + "slow", ZOS_COMPILE_TIMEOUT=1)
def test_a_compile_past_the_time_limit_is_refused_and_stopped(alice):
    response = _validate(alice, "60")
    assert response.status_code == 400
    assert response.json()["error"] == "script_too_complex"
    with override_settings(ZOS_SCRIPT_CHECK="contracts.scripts.check_script"):
        assert _validate(alice, 'log("still here")').json()["functions"] == ["log"]


@pytest.mark.django_db
@override_settings(ZOS_SCRIPT_CHECK=CHECKS + "greedy", ZOS_COMPILE_MEMORY_MB=256)
def test_a_compile_past_the_memory_limit_is_refused_and_the_server_keeps_nothing(alice):
    """The compile that peaked at 3.3 GB: refused, and none of it in the server's memory."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    response = _validate(alice, "1024")
    assert response.status_code == 400
    assert response.json()["error"] == "script_too_complex"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100 * 1024
    within = _validate(alice, "64")  # 64 MiB fits the limit; it is the worker's, not ours
    assert within.status_code == 200
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


@pytest.mark.django_db
@override_settings(ZOS_SCRIPT_CHECK=CHECKS + "slow", ZOS_COMPILE_TIMEOUT=1)
def test_a_deployment_whose_compile_takes_too_long_is_refused(alice, online_node):
    response = alice.submit(deployment_payload("60", target={"node": online_node.pk}))
    assert response.status_code == 400
    assert response.json()["error"] == "script_too_complex"
    assert not Deployment.objects.exists()


@pytest.mark.django_db
@override_settings(ZOS_SCRIPT_CHECK=CHECKS + "whoami", ZOS_COMPILE_MAX_TASKS=1)
def test_a_script_checked_again_is_answered_without_another_compile(alice):
    """Check, then Deploy: one compile. Every worker here serves one compile and is replaced,
    so a second compile would answer another pid."""
    first = _validate(alice, "the same script").json()["functions"]
    assert _validate(alice, "the same script").json()["functions"] == first
    assert _validate(alice, "another script").json()["functions"] != first


@pytest.mark.django_db
@override_settings(ZOS_SCRIPT_CHECK=CHECKS + "slow", ZOS_COMPILE_TIMEOUT=1)
def test_a_refusal_for_time_is_not_remembered(alice):
    """A compile cut off by the limit (a busy machine, a tighter setting) is tried again."""
    assert _validate(alice, "2").json()["error"] == "script_too_complex"
    with override_settings(ZOS_COMPILE_TIMEOUT=10):
        assert _validate(alice, "2").json()["functions"] == ["log"]
