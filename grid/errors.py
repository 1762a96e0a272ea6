"""The one kind of error a service raises when it refuses a request on purpose.

Services (ledger, coordinator) raise a `ServiceError` — or an app's subclass of it — with the
API's error code, a message for people, the HTTP status and any details clients branch on. They
never build responses: `grid.api_errors` turns every ServiceError into the JSON error body
`{"error": code, "message": text, **details}` once for DRF views (the exception handler) and once
for plain Django views (a middleware), so no view translates errors itself.

No DRF here: this module is imported by services, consumers and management commands alike.
"""

from typing import Any

from signing import SignatureError


class ServiceError(Exception):
    """A refusal with its API error code, message, HTTP status and details."""

    def __init__(self, code: str, message: str, *, http_status: int = 400, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details = details

    def as_body(self) -> dict[str, Any]:
        """The JSON error body every client reads: code first, message, then the details."""
        return {"error": self.code, "message": self.message, **self.details}


def signature_refused(
    exc: SignatureError, *, http_status: int | None = None, **details: Any
) -> ServiceError:
    """A signature the grid does not accept, as a ServiceError keeping its code and details.

    By default a signature that does not verify is 403 (the signer is known, the proof is
    wrong) and anything malformed about it is 400, which is what users' envelopes get; signed
    node requests pass 401. `details` are defaults: the signature check's own (the server time
    it judged a clock skew by) win.
    """
    if http_status is None:
        http_status = 403 if exc.code == "signature_invalid" else 400
    details = {**details, **exc.details}
    return ServiceError(exc.code, exc.message, http_status=http_status, **details)
