"""One JSON error shape for the whole API: ``{"error": code, "message": text, ...details}``.

Clients branch on `error`; people read `message`. Nothing reaches a client as an HTML page or a
500 for input that was merely wrong.
"""

import logging
import time

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from signing import SignatureError

log = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error a view raises on purpose, carrying its code, status and details."""

    def __init__(self, code: str, message: str, *, status_code: int = 400, **details: object):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.details = details


def signature_error(exc: SignatureError, *, status_code: int = 401) -> ApiError:
    return ApiError(
        exc.code,
        exc.message,
        status_code=status_code,
        **{"server_time": int(time.time()), **exc.details},
    )


_DRF_CODES = {
    exceptions.ParseError: "malformed_json",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.NotAcceptable: "not_acceptable",
}


def _first_message(detail: object) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            return f"{field}: {_first_message(value)}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApiError):
        body = {"error": exc.error_code, "message": exc.message, **exc.details}
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"error": "body_too_large", "message": "request body exceeds the size limit"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "error": "invalid",
            "message": _first_message(exc.detail),
            "fields": exc.detail,
        }
    else:
        code = next((c for t, c in _DRF_CODES.items() if isinstance(exc, t)), "error")
        response.data = {"error": code, "message": _first_message(exc.detail)}
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        {"error": "not_found", "message": f"no such path {request.path}"}, status=404
    )


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"error": "server_error", "message": "internal error; it has been logged"}, status=500
    )
