"""Blob bytes on disk, content-addressed: `<ZOS_BLOB_DIR>/sha256/ab/abcdef…`.

An upload is written to a temporary file in the same directory tree, hashed while it streams,
and renamed into place only once its sha256 and length are what the client named. So a blob
path either holds exactly the bytes its name promises or does not exist: an interrupted or
wrong upload leaves nothing visible, and a restarted upload simply starts again. Two uploads of
the same bytes at once are harmless, the second rename replaces identical content.
"""

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

CHUNK = 1 << 20


class BlobMismatch(Exception):
    """The streamed bytes are not what the client said: (what, expected, got)."""

    def __init__(self, what: str, expected: object, got: object) -> None:
        super().__init__(f"{what}: expected {expected}, got {got}")
        self.what = what
        self.expected = expected
        self.got = got


def root() -> Path:
    return Path(settings.ZOS_BLOB_DIR)


def blob_path(sha256: str) -> Path:
    return root() / "sha256" / sha256[:2] / sha256


def exists(sha256: str, size: int) -> bool:
    path = blob_path(sha256)
    return path.is_file() and path.stat().st_size == size


def write(sha256: str, stream: BinaryIO, size: int) -> None:
    """Store `size` bytes from `stream` as blob `sha256`, or raise BlobMismatch and keep nothing."""
    tmp_dir = root() / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    received = 0
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=f"{sha256[:12]}-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(min(CHUNK, size - received + 1)):
                received += len(chunk)
                if received > size:
                    raise BlobMismatch("length", size, f"more than {size} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if received != size:
            raise BlobMismatch("length", size, received)
        if digest.hexdigest() != sha256:
            raise BlobMismatch("sha256", sha256, digest.hexdigest())
        final = blob_path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def stored() -> Iterator[Path]:
    """Every blob file on disk."""
    yield from (root() / "sha256").glob("??/*")


def size_if_older(path: Path, older_than: float) -> int | None:
    """`path`'s size if it was last written before `older_than` (epoch seconds), else None."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size if stat.st_mtime < older_than else None


def upload_files() -> Iterator[Path]:
    """Temporary files of uploads in progress, or of uploads that died before their rename."""
    yield from (root() / "tmp").glob("*")
