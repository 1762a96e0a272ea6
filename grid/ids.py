"""Database ids taken from URLs and query strings, bounded to what the database can hold.

Django's `<int:…>` converter and `str.isdigit()` accept any number of digits, and a lookup of
a foreign key with a 30-digit id raised OverflowError inside the database driver (a 500 on
SQLite; PostgreSQL refuses it too). Ids go through here first: one beyond a 64-bit signed
integer cannot name a row, so a path with one does not match (404) and a query parameter with
one is a 400 that names the parameter.
"""

from django.urls import register_converter

from grid.errors import ServiceError

MAX_ID = 2**63 - 1


class IdConverter:
    """`<id:name>` in a URL pattern: a row id, at most MAX_ID."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError(f"{value} is beyond any row id")  # Django: the path does not match
        return number

    def to_url(self, value: int) -> str:
        return str(value)


def query_id(value: str, *, name: str) -> int:
    """A row id given as query parameter `name`, or a 400 saying what was wrong with it."""
    if not value.isdigit() or int(value) > MAX_ID:
        raise ServiceError(
            "invalid", f"{name} must be an id (a whole number up to {MAX_ID}), not {value!r}"
        )
    return int(value)


register_converter(IdConverter, "id")  # once, when the first URL conf using it imports this
