"""Uploads from an operator's machine to the ledger: where it is, who we are, a streamed body.

`python -m image push` sends a build of 100+ MB; the body is a multipart/form-data stream read
from the files as the socket takes it (never whole in memory), with a Content-Length so the
server's multipart parser can check it. The ledger URL and API token are the `zos` CLI's
(`zos login` stores both) unless a flag or ZOS_LEDGER says otherwise; error answers are the
CLI's too, with hints for this tool.
"""

import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from client.api import Api, ApiError
from client.config import load_config
from client.errors import EXIT_FAILED, CliError

CHUNK = 1 << 20
UPLOAD_TIMEOUT = 300.0  # per socket operation; the ledger hashes and stores before it answers

# The next step for an answer, in this tool's terms (the CLI's hints name its own flags).
HINTS = {
    "unreachable": "is the ledger running at {url}? Set --ledger or ZOS_LEDGER",
    "not_authenticated": "set ZOS_TOKEN (a staff account's API token), or run `zos login`",
    "authentication_failed": "the API token was refused: run `zos login` again or fix ZOS_TOKEN",
    "permission_denied": "uploads need a staff account's API token: log in with `zos login` "
    "as a staff user, or set ZOS_TOKEN to one (the admin makes a user staff)",
    "version_exists": "versions are never reused: pass another --version",
}

# A progress callback: (file name, bytes of it sent, its size).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Ledger:
    """The ledger's URL and a staff API token, resolved like the `zos` CLI's settings."""

    url: str
    token: str

    def api(self, *, timeout: float = UPLOAD_TIMEOUT) -> Api:
        return Api(self.url, self.token, timeout=timeout)


def resolve_ledger(
    url: str | None, token: str | None, env: Mapping[str, str] | None = None
) -> Ledger:
    """--ledger, else ZOS_LEDGER, else the CLI's URL; --token, else the CLI's (ZOS_TOKEN, login)."""
    env = os.environ if env is None else env
    config = load_config(env, url=url or env.get("ZOS_LEDGER") or None)
    token = token or config.token
    if not token:
        raise CliError(
            "no API token for the ledger",
            hint="run `zos login` as a staff user, or set ZOS_TOKEN (see docs/cli.md)",
        )
    return Ledger(config.url, token)


@contextmanager
def ledger_errors(url: str) -> Iterator[None]:
    """The ledger's refusals as errors that say what to do in this tool's terms."""
    try:
        yield
    except ApiError as exc:
        hint = HINTS.get(exc.code, "").format(url=url) or exc.hint
        raise CliError(exc.describe(), hint=hint, exit_code=exc.exit_code) from exc


class UploadError(CliError):
    """A file changed while it was being sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="rebuild, then push again", exit_code=EXIT_FAILED)


@dataclass
class _Segment:
    data: bytes = b""
    path: Path | None = None
    size: int = 0
    name: str = ""


class MultipartBody:
    """A multipart/form-data body read in chunks, with its length known before it is sent.

    requests sends any object with `read` and `__len__` as a stream with that Content-Length.
    Files are opened as they are reached and must not change size while they are sent.
    """

    def __init__(
        self,
        fields: Mapping[str, str],
        files: list[tuple[str, str, Path | bytes]],
        *,
        progress: Progress | None = None,
    ) -> None:
        self.boundary = f"zos-{secrets.token_hex(16)}"
        self.progress = progress
        self._segments: list[_Segment] = []
        for name, value in fields.items():
            self._text(self._head(name) + b"\r\n" + value.encode() + b"\r\n")
        for field, filename, source in files:
            head = self._head(field, filename) + b"Content-Type: application/octet-stream\r\n\r\n"
            self._text(head)
            if isinstance(source, bytes):
                self._segments.append(_Segment(data=source, size=len(source), name=filename))
            else:
                size = source.stat().st_size
                self._segments.append(_Segment(path=source, size=size, name=filename))
            self._text(b"\r\n")
        self._text(f"--{self.boundary}--\r\n".encode())
        self._length = sum(s.size for s in self._segments)
        self._index = 0
        self._offset = 0
        self._stream: BinaryIO | None = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self, field: str, filename: str | None = None) -> bytes:
        disposition = f'Content-Disposition: form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        return f"--{self.boundary}\r\n{disposition}\r\n".encode()

    def _text(self, data: bytes) -> None:
        self._segments.append(_Segment(data=data, size=len(data)))

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative); b"" at the end."""
        wanted = self._length if size is None or size < 0 else size
        out = bytearray()
        while len(out) < wanted and self._index < len(self._segments):
            segment = self._segments[self._index]
            take = min(wanted - len(out), segment.size - self._offset)
            out += self._piece(segment, take)
            self._offset += take
            if segment.name and self.progress:
                self.progress(segment.name, self._offset, segment.size)
            if self._offset == segment.size:
                self._finish(segment)
        return bytes(out)

    def _piece(self, segment: _Segment, take: int) -> bytes:
        if segment.path is None:
            return segment.data[self._offset : self._offset + take]
        if self._stream is None:
            self._stream = open(segment.path, "rb")  # noqa: SIM115  (closed in _finish)
        piece = self._stream.read(take)
        if len(piece) != take:
            self.close()
            raise UploadError(f"{segment.path} shrank while it was being sent")
        return piece

    def _finish(self, segment: _Segment) -> None:
        if self._stream is not None:
            grew = self._stream.read(1)
            self.close()
            if grew:
                raise UploadError(f"{segment.path} grew while it was being sent")
        self._index += 1
        self._offset = 0

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def post_multipart(api: Api, path: str, body: MultipartBody) -> dict:
    """POST the streamed body; the parsed JSON answer, or an ApiError."""
    try:
        return api.request("POST", path, data=body, headers={"Content-Type": body.content_type})
    finally:
        body.close()


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
