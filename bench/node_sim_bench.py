"""Many simulated nodes holding real links to the production profile, from one asyncio process.

Issue 19's link figures. Starts the production profile (no real node), registers `--nodes` fresh
keys in the bootstrap farm with an enrollment token (approved at once), then every simulated node:

- opens `/ws/node/` through HAProxy and does the real handshake: the control plane's challenge
  signed with the node's ed25519 key, `hello` with the `beat` and `pong` features, `welcome`;
- sends a `beat` at the interval the `welcome` names (as the agent does), answers pings (from
  coordinators older than beats), and sends a signed uptime report every `--report-every`
  seconds (spread out);
- answers each dispatch with `accepted`, then the outbox events `running` and `succeeded`, as an
  agent whose runner finished at once would (the dispatch is parsed, not verified: the node's own
  checks cost the node, not the control plane, and are in deploy_bench's figures).

Measured: handshake time and refusals while all links come up at once; the control plane's CPU
(ASGI workers, HAProxy, PostgreSQL, Redis, coordinator workers, ledger monitor) and the ASGI
workers' memory with every link idle, and while `--deployments` trivial deployments are submitted
at `--rate` per second to random nodes: submit → dispatch received, → `accepted` and →
`succeeded` on the owner's live feed.

Then reconnect storms, each followed by a few deployments: `storm-kill` kills one ASGI worker
(SIGKILL; its links come back through HAProxy to the other worker or the restarted one) and
`storm-blip` cuts every link at once (a network blip, or what nodes see when the control plane
restarts). Every node reconnects as the agent does — its backoff and jitter, no gate — and the
figures are the storm's: refused or failed handshakes (retried) apart from links that never came
back, time until all are back, handshake p50/p99, CPU and peak memory of the control plane.

    .venv/bin/python bench/node_sim_bench.py [--nodes 1000] [--deployments 300] [--rate 20]
        [--storms storm-kill storm-blip] [--after-storm 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import fire, http_request  # noqa: E402
from bench.production_box import ProductionBox, cpu_delta  # noqa: E402
from bench.report import Report  # noqa: E402
from bench.stats import percentile  # noqa: E402
from bench.uptime_bench import CAPACITY, signed  # noqa: E402
from nodeagent.supervisor import HANDSHAKE_TIMEOUT, reconnect_delay  # noqa: E402
from signing.keys import b64encode, public_key_hex  # noqa: E402
from signing.node_request import sign_request  # noqa: E402
from zoscli.envelope import build_payload, sign_deployment  # noqa: E402

WS_CONTEXT = b"zos-ws-v1\n"


def _payload(envelope: dict) -> dict:
    return json.loads(base64.b64decode(envelope["payload"]))


class Fleet:
    """The simulated nodes and what they saw.

    Each node keeps its link up as the agent does (nodeagent.supervisor): after a link that was
    up it waits the agent's reconnect delay, after a refused or failed attempt a doubling one,
    both with the agent's jitter. Handshakes and refusals are counted per phase (`phase`), so a
    storm's figures are its own."""

    def __init__(self, url: str, keys: list[SigningKey], report_every: float = 60) -> None:
        self.port = int(url.rsplit(":", 1)[1])  # the control plane at http://127.0.0.1:PORT
        self.keys = keys
        self.report_every = report_every
        self.ws_url = url.replace("http://", "ws://") + "/ws/node/"
        self.phase = "link-up"
        self.handshakes: dict[str, list[float]] = {}
        self.refused: dict[str, list[str]] = {}
        self.links: dict[int, ClientConnection] = {}  # node index → its open link
        self.sessions = [0] * len(keys)  # links each node has had welcomed
        self.dropped = 0  # links the control plane (or a storm) closed under a node
        self.dispatched: dict[str, float] = {}  # deployment name → when its dispatch arrived
        self.reports = 0
        # Nodes that have reported uptime: registered nodes go offline if they do not report
        # within three intervals (5,000 registrations take minutes), and only online ones take
        # deployments.
        self.reported: set[int] = set()
        self.stop = asyncio.Event()

    @property
    def linked(self) -> int:
        return len(self.links)

    async def node(self, index: int, gate: asyncio.Semaphore) -> None:
        """One node's link, kept up until `stop`: the first attempt through `gate` (the link-up
        phase's handshakes at a time), every later one when the agent's backoff says."""
        key, failures, first = self.keys[index], 0, True
        while not self.stop.is_set():
            if first:
                async with gate:
                    ws, welcome = await self._handshake(key)
                first = False
            else:
                ws, welcome = await self._handshake(key)
            if ws is None:
                failures += 1
            else:
                failures = 1  # the agent's count after a link that was up
                self.links[index] = ws
                self.sessions[index] += 1
                try:
                    await self._serve(ws, welcome.get("beat"))
                except ConnectionClosed:
                    pass
                finally:
                    del self.links[index]
                if self.stop.is_set():
                    return
                self.dropped += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), reconnect_delay(failures))

    async def _handshake(self, key: SigningKey):
        """(link, welcome), or (None, None) with the refusal recorded for this phase."""
        started = time.perf_counter()
        phase, ws = self.phase, None
        try:
            ws = await connect(
                self.ws_url,
                open_timeout=HANDSHAKE_TIMEOUT,
                max_size=2**22,
                ping_interval=None,  # the link's beats are its keepalive, as the agent's
            )
            challenge = json.loads(await asyncio.wait_for(ws.recv(), HANDSHAKE_TIMEOUT))
            sig = key.sign(WS_CONTEXT + challenge["nonce"].encode()).signature
            hello = {
                "type": "hello",
                "key": public_key_hex(key),
                "sig": b64encode(sig),
                "features": ["beat", "pong"],
            }
            await ws.send(json.dumps(hello))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), HANDSHAKE_TIMEOUT))
            if welcome.get("type") != "welcome":
                raise ValueError(f"expected welcome, got {welcome}")
        except (OSError, TimeoutError, InvalidStatus, ConnectionClosed, ValueError) as exc:
            if ws is not None:
                ws.transport.abort()
            reason = str(exc).split("\n")[0][:120]
            self.refused.setdefault(phase, []).append(f"{type(exc).__name__}: {reason}")
            return None, None
        self.handshakes.setdefault(phase, []).append((time.perf_counter() - started) * 1000)
        return ws, welcome

    async def _beat(self, ws: ClientConnection, beat: float) -> None:
        # The first beat at a random point of the interval, as a fleet's links come up apart.
        await asyncio.sleep(random.uniform(0, beat))
        while True:
            await ws.send('{"type":"beat"}')
            await asyncio.sleep(beat)

    async def _serve(self, ws: ClientConnection, beat: float | None) -> None:
        events = 0
        beater = asyncio.create_task(self._beat(ws, beat)) if beat else None
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await ws.send(json.dumps({"type": "pong", "id": message.get("id")}))
                elif kind == "dispatch":
                    dispatch = _payload(message["envelope"])
                    name = _payload(dispatch["deployment"]).get("name", "")
                    self.dispatched[name] = time.perf_counter()
                    job = {"job_id": dispatch["job_id"], "attempt": dispatch["attempt"]}
                    await ws.send(json.dumps({"type": "accepted", **job}))
                    for status, extra in (("running", {}), ("succeeded", {"result": 42})):
                        events += 1
                        event = {"type": "event", "id": f"{int(time.time() * 1000)}-{events}"}
                        event.update(job, status=status, ts=time.time(), **extra)
                        await ws.send(json.dumps(event))
        finally:
            if beater:
                beater.cancel()

    def drop_all(self) -> int:
        """A network blip: every link's connection cut at once (no close handshake)."""
        links = list(self.links.values())
        for ws in links:
            ws.transport.abort()
        return len(links)

    async def close_all(self) -> None:
        self.stop.set()
        await asyncio.gather(*(ws.close() for ws in list(self.links.values())))

    async def reporter(self, node_ids: list[int]) -> None:
        """Uptime reports, one node after another, each node every `report_every` seconds."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        host = f"127.0.0.1:{self.port}"
        gap = self.report_every / len(node_ids)
        body = json.dumps({"uptime": 3600, "health": []}, separators=(",", ":")).encode()
        index = 0
        while not self.stop.is_set():
            key, node = self.keys[index], node_ids[index]
            path = f"/api/v1/nodes/{node}/uptime"
            headers = {
                "Authorization": sign_request(key, "POST", path, body),
                "Content-Type": "application/json",
            }
            writer.write(http_request("POST", path, host, body, headers))
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            self.reports += 1
            self.reported.add(node_ids[index])
            index = (index + 1) % len(node_ids)
            await asyncio.sleep(gap)
        writer.close()


class OwnerFeed:
    """The owner's live feed: when each deployment was accepted and succeeded."""

    def __init__(self, box: ProductionBox) -> None:
        self.url = box.url.replace("http://", "ws://") + "/ws/deployments/"
        self.headers = box.headers
        self.seen: dict[tuple[int, str], float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the feed until `stop`, connecting again when its worker dies (a storm)."""
        while not stop.is_set():
            try:
                async with connect(self.url, additional_headers=self.headers) as ws:
                    while not stop.is_set():
                        try:
                            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=1))
                        except TimeoutError:
                            continue
                        key = (event.get("deployment"), event.get("status"))
                        self.seen.setdefault(key, time.perf_counter())
            except (OSError, InvalidStatus, ConnectionClosed):
                await asyncio.sleep(0.5)


async def submit_all(
    box: ProductionBox, node_ids: list[int], count: int, rate: float, prefix: str = "sim"
):
    """POST `count` signed deployments at `rate` per second: (name, id, posted at) of each
    accepted one, and the error code of each refused one."""
    host = f"127.0.0.1:{box.port}"
    bodies = []
    for i in range(count):
        target = {"node": random.choice(node_ids)}
        payload = build_payload(script="40 + 2", target=target, name=f"{prefix}-{i}")
        envelope = sign_deployment(box.key, payload)
        bodies.append(json.dumps({"envelope": envelope}).encode())
    headers = {**box.headers, "Content-Type": "application/json"}
    submitted, rejected = [], []
    reader, writer = await asyncio.open_connection("127.0.0.1", box.port)
    for i, body in enumerate(bodies):
        posted = time.perf_counter()
        writer.write(http_request("POST", "/api/v1/deployments", host, body, headers))
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        answer = json.loads(await reader.readexactly(length))
        if "id" in answer:
            submitted.append((f"{prefix}-{i}", answer["id"], posted))
        else:
            rejected.append(answer.get("error", str(answer)[:80]))
        await asyncio.sleep(max(0.0, posted + 1 / rate - time.perf_counter()))
    writer.close()
    return submitted, rejected


def register(port: int, farm: int, enroll_token: str, keys: list[SigningKey]) -> list[int]:
    """Register every key as a node of `farm` (approved at once by the token); their ids."""
    body = {
        "farm": farm,
        "enroll_token": enroll_token,
        "capacity": CAPACITY,
        "interfaces": [],
        "agent_version": "sim",
    }
    host = f"127.0.0.1:{port}"
    requests = [signed(k, "POST", "/api/v1/nodes", host, body) for k in keys]
    result = fire("127.0.0.1", port, requests, concurrency=8, keep_bodies=True)
    bad = {s: n for s, n in result.statuses.items() if s >= 300}
    if bad:
        raise SystemExit(f"registration failed: {bad}: {result.bodies[0][:300]!r}")
    return [body["id"] for body in result.json_bodies()]


def _asgi(values: dict[str, float]) -> float:
    return sum(v for k, v in values.items() if k.startswith("asgi-"))


async def link_up(fleet: Fleet, args: argparse.Namespace, report: Report) -> list[asyncio.Task]:
    """Every node links, `--handshakes` at a time; the figures of the link-up."""
    print(f"linking {args.nodes} nodes ({args.handshakes} handshakes at a time)", file=sys.stderr)
    gate = asyncio.Semaphore(args.handshakes)
    started = time.perf_counter()
    tasks = [asyncio.create_task(fleet.node(i, gate)) for i in range(args.nodes)]
    deadline = time.monotonic() + args.storm_deadline
    while fleet.linked < args.nodes and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    linked_in = time.perf_counter() - started
    # The fleet's links live until the end: a full collection walking them stalled the
    # simulator 40-85 ms, and with it the timestamps of the dispatches it was receiving.
    gc.freeze()
    refused = fleet.refused.get("link-up", [])
    report.add("links up", fleet.linked, "links", f">= {args.nodes}")
    report.add(
        "refused handshakes",
        len(refused),
        "",
        "<= 0",
        note="each retried after the agent's backoff",
    )
    if refused:
        report.notes.append(f"first refusal at link-up: {refused[0]}")
    report.add("all links up in", linked_in, "s")
    handshakes = fleet.handshakes.get("link-up") or [0]
    report.add("handshake p50", percentile(handshakes, 0.5), "ms")
    report.add("handshake p99", percentile(handshakes, 0.99), "ms")
    return tasks


async def storm(
    fleet: Fleet, box: ProductionBox, phase: str, cut, args: argparse.Namespace, report: Report
) -> None:
    """Drop links with `cut()` (it returns how many it dropped, or None when it cannot tell) and
    wait until every node has linked again, each the way the agent would; the figures of it."""
    fleet.phase = phase
    pids = box.pids("asgi-")
    before, sim_cpu = box.control_plane_cpu(), time.process_time()
    dropped_before = fleet.dropped
    rss_peak = [0.0, 0.0]  # ASGI workers, the whole control plane

    async def sample_memory() -> None:
        while True:
            rss = box.control_plane_rss()
            rss_peak[0] = max(rss_peak[0], _asgi(rss))
            rss_peak[1] = max(rss_peak[1], sum(rss.values()))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample_memory())
    started = time.perf_counter()
    cut()
    deadline = time.monotonic() + args.storm_deadline
    # The dropped links are seen closed first (a killed worker's by HAProxy), then come back.
    while fleet.dropped == dropped_before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    while fleet.linked < args.nodes and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    back_in = time.perf_counter() - started
    seconds = time.perf_counter() - started
    after = box.control_plane_cpu()
    sampler.cancel()
    # A worker killed and restarted is a new process: its CPU counts from its start.
    restarted = {name for name, pid in box.pids("asgi-").items() if pids.get(name) != pid}
    cpu = {
        name: (value if name in restarted else value - before.get(name, 0.0)) / seconds
        for name, value in after.items()
    }
    refused = fleet.refused.get(phase, [])
    handshakes = fleet.handshakes.get(phase) or [0]
    report.add(f"{phase}: links dropped", fleet.dropped - dropped_before, "links")
    report.add(f"{phase}: links back", fleet.linked, "links", f">= {args.nodes}")
    report.add(
        f"{phase}: never came back (within {args.storm_deadline:g} s)",
        args.nodes - fleet.linked,
        "links",
        "<= 0",
    )
    report.add(
        f"{phase}: refused or failed handshakes",
        len(refused),
        "",
        note="each retried by the node after the agent's backoff",
    )
    if refused:
        kinds: dict[str, int] = {}
        for reason in refused:
            kinds[reason.split(":")[0]] = kinds.get(reason.split(":")[0], 0) + 1
        report.notes.append(f"{phase} refusals by kind: {kinds}; first: {refused[0]}")
    report.add(f"{phase}: all links back in", back_in, "s")
    report.add(f"{phase}: handshake p50", percentile(handshakes, 0.5), "ms")
    report.add(f"{phase}: handshake p99", percentile(handshakes, 0.99), "ms")
    report.add(f"{phase}: ASGI workers CPU", _asgi(cpu) * 100, "% of a core")
    report.add(f"{phase}: control plane CPU", sum(cpu.values()) * 100, "% of a core")
    report.add(f"{phase}: ASGI workers memory, peak", rss_peak[0], "MiB")
    report.add(f"{phase}: control plane memory, peak", rss_peak[1], "MiB")
    report.add(f"{phase}: simulator CPU", (time.process_time() - sim_cpu) / seconds * 100, "%")


async def deployments(
    box: ProductionBox,
    fleet: Fleet,
    feed: OwnerFeed,
    node_ids: list[int],
    label: str,
    count: int,
    rate: float,
    report: Report,
) -> None:
    """`count` trivial deployments at `rate` per second to random nodes; their latencies."""
    print(f"{label}: submitting {count} at {rate:g}/s", file=sys.stderr)
    before, t0 = box.control_plane_cpu(), time.perf_counter()
    targets = sorted(fleet.reported) or node_ids
    submitted, rejected = await submit_all(box, targets, count, rate, prefix=label)
    if rejected:
        report.notes.append(f"{label}: {len(rejected)} submissions refused: {set(rejected)}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(
        (dep, "succeeded") not in feed.seen for _, dep, _ in submitted
    ):
        await asyncio.sleep(0.2)
    busy = cpu_delta(before, box.control_plane_cpu(), time.perf_counter() - t0)
    dispatch = [(fleet.dispatched[n] - t) * 1000 for n, _, t in submitted if n in fleet.dispatched]
    accepted = [
        (feed.seen[(d, "accepted")] - t) * 1000
        for _, d, t in submitted
        if (d, "accepted") in feed.seen
    ]
    done = [
        (feed.seen[(d, "succeeded")] - t) * 1000
        for _, d, t in submitted
        if (d, "succeeded") in feed.seen
    ]
    prefix = "" if label == "busy" else f"{label}: "
    report.add(f"{prefix}deployments succeeded", len(done), "", f">= {count}")
    report.add(f"{prefix}submit -> dispatch p50", percentile(dispatch or [0], 0.5), "ms")
    report.add(f"{prefix}submit -> dispatch p99", percentile(dispatch or [0], 0.99), "ms", "< 100")
    if label != "busy":
        return
    report.add("submit -> accepted p50", percentile(accepted or [0], 0.5), "ms")
    report.add("submit -> accepted p99", percentile(accepted or [0], 0.99), "ms")
    report.add("submit -> succeeded p50", percentile(done or [0], 0.5), "ms")
    report.add("submit -> succeeded p99", percentile(done or [0], 0.99), "ms")
    report.add(f"busy ({rate:g} deployments/s): ASGI workers CPU", _asgi(busy) * 100, "% of a core")
    report.add(
        f"busy ({rate:g} deployments/s): control plane CPU", sum(busy.values()) * 100, "% of a core"
    )


def kill_worker(box: ProductionBox, name: str = "asgi-1"):
    """Storm (a): kill -9 one ASGI worker; the box restarts it, its links relink through HAProxy."""
    return lambda: os.kill(box.pids(name)[name], signal.SIGKILL)


async def simulate(box: ProductionBox, args: argparse.Namespace, report: Report) -> None:
    keys = [SigningKey.generate() for _ in range(args.nodes)]
    print(f"registering {args.nodes} nodes", file=sys.stderr)
    token = box.manage("create_enrollment_token", str(box.farm), "--uses", str(len(keys)))
    node_ids = await asyncio.to_thread(register, box.port, box.farm, token.split()[-1], keys)
    fleet = Fleet(box.url, keys, args.report_every)
    rss_before = _asgi(box.control_plane_rss())
    sim_cpu = time.process_time()
    tasks = await link_up(fleet, args, report)
    await asyncio.sleep(args.settle)  # the link-up writes and first pings are over
    print(f"idle: {fleet.linked} links for {args.idle:g} s", file=sys.stderr)
    before, t0 = box.control_plane_cpu(), time.perf_counter()
    await asyncio.sleep(args.idle)
    idle = cpu_delta(before, box.control_plane_cpu(), time.perf_counter() - t0)
    rss_idle = _asgi(box.control_plane_rss())
    report.add(
        f"{fleet.linked} idle links: ASGI workers CPU",
        _asgi(idle) * 100,
        "% of a core",
        "< 5",
        note="a beat from each node every ZOS_LINK_PING_INTERVAL; no uptime reports (next)",
    )
    report.add(
        f"{fleet.linked} idle links: control plane CPU", sum(idle.values()) * 100, "% of a core"
    )
    report.add("ASGI workers memory with links", rss_idle, "MiB")
    report.add("memory per link", (rss_idle - rss_before) * 1024 / max(1, fleet.linked), "KiB")

    # The same links, now also reporting uptime as agents do (a signed HTTP request each).
    reporter = asyncio.create_task(fleet.reporter(node_ids))
    before, t0 = box.control_plane_cpu(), time.perf_counter()
    await asyncio.sleep(args.idle)
    reporting = cpu_delta(before, box.control_plane_cpu(), time.perf_counter() - t0)
    report.add(
        f"{fleet.linked} idle links + uptime reports every {args.report_every:g} s: ASGI CPU",
        _asgi(reporting) * 100,
        "% of a core",
    )

    feed = OwnerFeed(box)
    feed_task = asyncio.create_task(feed.run(fleet.stop))
    await asyncio.sleep(1)
    await deployments(box, fleet, feed, node_ids, "busy", args.deployments, args.rate, report)
    storms = {"storm-kill": kill_worker(box), "storm-blip": fleet.drop_all}
    for phase in args.storms:
        print(f"{phase}: dropping links", file=sys.stderr)
        await storm(fleet, box, phase, storms[phase], args, report)
        await asyncio.sleep(args.settle)
        await deployments(box, fleet, feed, node_ids, phase, args.after_storm, 10, report)
    report.add("uptime reports sent", fleet.reports, "")
    report.add("simulator CPU (whole run)", time.process_time() - sim_cpu, "s")
    await fleet.close_all()
    await asyncio.gather(*tasks, reporter, feed_task, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20, help="deployments per second")
    parser.add_argument("--workers", type=int, default=2, help="ASGI workers behind HAProxy")
    parser.add_argument("--handshakes", type=int, default=100, help="handshakes at a time")
    parser.add_argument("--report-every", type=float, default=60, help="uptime interval, s")
    parser.add_argument("--settle", type=float, default=10, help="s after link-up, not measured")
    parser.add_argument("--idle", type=float, default=30, help="s of idle links measured")
    parser.add_argument(
        "--storms",
        nargs="*",
        default=["storm-kill", "storm-blip"],
        choices=["storm-kill", "storm-blip"],
        help="storm-kill: kill -9 one ASGI worker; storm-blip: every link cut at once",
    )
    parser.add_argument("--after-storm", type=int, default=20, help="deployments after each storm")
    parser.add_argument(
        "--storm-deadline", type=float, default=300, help="s a link may take to come back"
    )
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    args = parser.parse_args(argv)
    # Two descriptors a link (the simulator's socket, and the reporter's and feed's): raise the
    # soft limit (often 1,024) to the hard one, or 5,000 links fail with EMFILE here.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir = Path(tempfile.mkdtemp(prefix="zos-sim-"))
    report = Report("node_sim", params=vars(args) | {"json": None, "keep": None})
    try:
        with ProductionBox(workdir, 0, 0, workers=args.workers, coordinators=2) as box:
            asyncio.run(simulate(box, args, report))
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report.print()
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
