"""Every service refusal reaches clients in one shape, mapped in one place (grid/api_errors.py)."""

import json

import pytest
import redis
from django.db import OperationalError
from django.test import RequestFactory

from grid.api_errors import ServiceErrorMiddleware, exception_handler
from grid.errors import ServiceError, signature_refused
from signing import SignatureError


def test_a_service_error_is_the_same_body_for_drf_and_plain_views():
    refused = ServiceError("no_capacity", "node 3 is full", http_status=409, node=3)
    api = exception_handler(refused, {})
    plain = ServiceErrorMiddleware(lambda request: None).process_exception(
        RequestFactory().get("/boot/1/zos.efi"), refused
    )
    body = {"error": "no_capacity", "message": "node 3 is full", "node": 3}
    assert (api.status_code, api.data) == (409, body)
    assert plain.status_code == 409
    assert json.loads(plain.content) == body


def test_other_exceptions_are_left_to_django():
    middleware = ServiceErrorMiddleware(lambda request: None)
    assert middleware.process_exception(RequestFactory().get("/"), ValueError("bug")) is None


def test_a_refused_signature_keeps_its_code_and_the_checks_own_details():
    forged = signature_refused(SignatureError("signature_invalid", "no key verifies"))
    malformed = signature_refused(SignatureError("bad_base64", "sig is not base64"))
    skewed = signature_refused(
        SignatureError("timestamp_skew", "too far", server_time=5), http_status=401, server_time=9
    )
    assert (forged.code, forged.http_status) == ("signature_invalid", 403)
    assert malformed.http_status == 400
    assert (skewed.http_status, skewed.details) == (401, {"server_time": 5})


@pytest.mark.parametrize(
    ("down", "what"),
    [
        (OperationalError("connection to server failed: Connection refused"), "the database"),
        (redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379"), "Redis"),
    ],
)
def test_a_backing_service_that_is_down_is_a_503_to_retry_not_an_internal_error(down, what):
    api = exception_handler(down, {})
    plain = ServiceErrorMiddleware(lambda request: None).process_exception(
        RequestFactory().get("/boot/1/zos.efi"), down
    )
    assert (api.status_code, api.data["error"]) == (503, "unavailable")
    assert what in api.data["message"]
    assert (plain.status_code, json.loads(plain.content)) == (503, api.data)
    assert api.headers["Retry-After"] == plain.headers["Retry-After"] == "5"
