"""The version rule for boot images and agent releases: a path component on disk and in URLs.

The ledger validates it on upload (`ledger.models.version_validator`), the operator tools check
it before building or sending anything, so a version that one side accepts the other serves.
"""

import re

VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


class VersionError(ValueError):
    """The string is not a version by the rule above; the message says what one is."""


def check_version(version: str) -> str:
    """`version` unchanged, or VersionError saying what a version may hold."""
    if not VERSION.fullmatch(version):
        raise VersionError(
            f"version {version!r}: a version is letters, digits and . _ + - (not first), up to 64"
        )
    return version
