"""A small HTTP/1.1 load generator that leaves the CPU to the server it measures.

Every request is built, signed and encoded before the clock starts (`fire` only writes bytes and
parses a status line, headers and a body), over `concurrency` keep-alive connections in one
asyncio loop. The caller reads `Result.cpu_seconds` — the generator's own CPU during the run —
so a report shows how much of the machine the load itself took.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


def http_request(method: str, path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The exact bytes of one request (keep-alive, Content-Length)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)  # in request order, when kept
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def merge(self, other: Result) -> None:
        """Add another run's requests, time and CPU to this one (runs sent one after another)."""
        self.latencies_ms += other.latencies_ms
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.seconds += other.seconds
        self.cpu_seconds += other.cpu_seconds

    def json_bodies(self) -> list[dict]:
        return [json.loads(b) for b in self.bodies]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() == "close"


async def _fire(
    host: str, port: int, requests: list[bytes], concurrency: int, keep_bodies: bool
) -> Result:
    result = Result(bodies=[b""] * len(requests) if keep_bodies else [])
    next_index = iter(range(len(requests)))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in next_index:
                started = time.perf_counter()
                writer.write(requests[index])
                status, body, close = await _read_response(reader)
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if keep_bodies:
                    result.bodies[index] = body
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - wall
    result.cpu_seconds = time.process_time() - cpu
    return result


def fire(
    host: str, port: int, requests: list[bytes], *, concurrency: int = 16, keep_bodies=False
) -> Result:
    """Send every request (each once, in order of the free connections); latency per request
    from its first byte written to its last byte read."""
    return asyncio.run(_fire(host, port, requests, concurrency, keep_bodies))
