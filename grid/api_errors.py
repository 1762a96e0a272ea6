"""One JSON error shape for the whole API: ``{"error": code, "message": text, ...details}``.

Clients branch on `error`; people read `message`. Nothing reaches a client as an HTML page or a
500 for input that was merely wrong. A `grid.errors.ServiceError` raised anywhere below a view
becomes that body here, in one place each for DRF views (`exception_handler`) and for plain
Django views (`ServiceErrorMiddleware`); views never catch and re-raise them.

A backing service that is down (PostgreSQL restarting, the control-plane Redis gone) is not the
client's fault nor a bug: it is answered 503 `{"error": "unavailable", ...}` with Retry-After, so
clients retry instead of reporting an internal error, and the worker keeps serving; its pool
reconnects by itself once the service is back (docs/deploy.md, "When a part fails").
"""

import logging
import time

import redis
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
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


# Seconds a client is told to wait before trying again while a backing service is down: about
# what the box's supervisor (or systemd) takes to restart PostgreSQL or Redis.
RETRY_AFTER = 5
_RETRY_HEADERS = {"Retry-After": str(RETRY_AFTER)}


def unavailable(exc: Exception) -> ServiceError | None:
    """The 503 for an error that says a backing service is down, None for any other error."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        what = "the database"
    elif isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        what = "the control plane's Redis"
    else:
        return None
    log.warning("answering 503: %s is unavailable: %s", what, exc)
    return ServiceError(
        "unavailable",
        f"{what} is unavailable for the moment; try again in a few seconds",
        http_status=503,
        retry_after=RETRY_AFTER,
    )


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler with every error in the shape above; a ServiceError keeps its own."""
    if isinstance(exc, ServiceError):
        return Response(exc.as_body(), status=exc.http_status)
    if (down := unavailable(exc)) is not None:
        return Response(down.as_body(), status=503, headers=_RETRY_HEADERS)
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
        if (down := unavailable(exc)) is not None:
            return JsonResponse(down.as_body(), status=503, headers=_RETRY_HEADERS)
        return None


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        {"error": "not_found", "message": f"no such path {request.path}"}, status=404
    )


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"error": "server_error", "message": "internal error; it has been logged"}, status=500
    )
