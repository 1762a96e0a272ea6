"""The one error type of the signing layer."""


class SignatureError(Exception):
    """A signature or signed header failed a check.

    `code` is a stable machine-readable name (it becomes the API's `error` field), so a client
    can tell *which* check failed without parsing prose.
    """

    def __init__(self, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
