"""Reading JSON that clients send: one function for API bodies, signed payloads and link frames.

Python's json module recurses once per nesting level, so a body of 100,000 `[` raises
RecursionError (not ValueError) and used to reach clients as a 500. Here every way JSON can be
wrong — bad syntax, bad encoding, NaN/Infinity, too deep — is one `MalformedJSON`, and nesting is
capped at MAX_DEPTH, far above anything the API's shapes need, so no later step (serializers,
json.dumps when storing) recurses near the interpreter's limit either.
"""

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 64


class MalformedJSON(ValueError):
    """The input is not JSON this API accepts; the message says why."""


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed value, iteratively (the point is to avoid recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            stack.extend((child, level + 1) for child in item)
    return deepest


def loads(data: str | bytes) -> Any:
    """Parse client JSON, or raise MalformedJSON saying why it is refused."""
    try:
        value = json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise MalformedJSON(f"JSON is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise MalformedJSON(f"not valid JSON: {exc}") from None
    if _depth(value) > MAX_DEPTH:
        raise MalformedJSON(f"JSON is nested deeper than {MAX_DEPTH} levels")
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the rules above; a refusal is a ParseError (400 malformed_json)."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            return loads(stream.read())
        except MalformedJSON as exc:
            raise ParseError(str(exc)) from None
