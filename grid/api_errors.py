"""One JSON error shape for the whole API: ``{"error": code, "message": text, ...details}``.

Clients branch on `error`; people read `message`. Nothing reaches a client as an HTML page or a
500 for input that was merely wrong. A `grid.errors.ServiceError` raised anywhere below a view
becomes that body here, in one place each for DRF views (`exception_handler`) and for plain
Django views (`ServiceErrorMiddleware`); views never catch and re-raise them.
"""

import logging
import time

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from grid.errors import ServiceError
from signing import SignatureError

log = logging.getLogger(__name__)


class ApiError(ServiceError, exceptions.APIException):
    """A ServiceError raised by the HTTP layer itself (authentication, permissions, request
    parsing). It is also a DRF APIException because DRF resets the request's user only for
    those when authentication fails."""


def signature_error(exc: SignatureError, *, http_status: int = 401) -> ApiError:
    """A signed node request refused: the reply carries the server's clock to correct by."""
    return ApiError(
        exc.code,
        exc.message,
        http_status=http_status,
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
    """DRF's handler with every error in the shape above; a ServiceError keeps its own."""
    if isinstance(exc, ServiceError):
        return Response(exc.as_body(), status=exc.http_status)
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


class ServiceErrorMiddleware(MiddlewareMixin):
    """The exception handler's counterpart for plain Django views (boot downloads, pages)."""

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, ServiceError):
            return JsonResponse(exc.as_body(), status=exc.http_status)
        return None


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        {"error": "not_found", "message": f"no such path {request.path}"}, status=404
    )


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"error": "server_error", "message": "internal error; it has been logged"}, status=500
    )
