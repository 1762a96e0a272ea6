"""Every service refusal reaches clients in one shape, mapped in one place (grid/api_errors.py)."""

import json

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
