"""The node agent: the identity loop, and the job machinery it starts once the node may work.

The identity loop registers, then reports uptime at the ledger's interval, forever. Errors never
end the loop: the ledger may be down, the network not up yet, or the operator still fixing a
token. The agent backs off exponentially (with jitter, capped) and tries again; SIGTERM ends it
between requests.

Around that loop runs the job side: the node's Redis (its own `redis-server` unless told to use
another), the runner processes, and the supervisor's link to the coordinator, which only connects
once the ledger knows and has approved this node. The loop sees the job side only through
`JobSide`, the few things a report needs from it (`NodeJobs` is the real one). `run_node` is the
one place that builds every part, in the order they need each other, so none is ever half-built.
"""

import contextlib
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import redis

from nodeagent import __version__, gateway, logring, overlay
from nodeagent.config import STATE_FILE, AgentConfig
from nodeagent.facts import CAPACITY_KEYS, NodeFacts, read_facts
from nodeagent.functions.registry import WorkloadRegistry
from nodeagent.functions.resources import hypervisor_available, node_resources
from nodeagent.functions.vms import restart_vms
from nodeagent.health import health_flags, seconds_since_boot
from nodeagent.identity import NodeIdentity
from nodeagent.image_fetch import cached_images
from nodeagent.jobstore import JobStore, connect
from nodeagent.ledger_client import LedgerClient, LedgerRefused, LedgerUnavailable
from nodeagent.redis_server import RedisServer
from nodeagent.runner import RunnerPool, RunnerSettings
from nodeagent.supervisor import Supervisor, ws_url_for
from nodeagent.updater import EXIT_UPDATE, Updater, updater_for
from nodeagent.verification import NodeAudience
from sal.command import SalError

log = logging.getLogger(__name__)

REREGISTER_EVERY = 24 * 3600
BACKOFF_FIRST = 2.0
BACKOFF_MAX = 300.0
# Refusals that mean "the ledger has forgotten us": register again rather than back off.
REREGISTER_CODES = {"unknown_node"}
# Ledger statuses in which the node may take jobs.
WORKING_STATUSES = {"online", "degraded", "offline"}
SUPERVISOR_RESTART_DELAY = 2.0


@dataclass
class LoopState:
    node_id: int | None = None
    status: str = ""
    interval: float = 60.0
    registered_at: float = 0.0
    registered_facts: dict | None = None
    failures: int = 0


class JobSide(Protocol):
    """What the identity loop needs from the job side of the agent, and nothing more.

    The loop registers and reports; what it says about Redis, workloads and the overlay, and what
    the ledger's reply means for agent updates, belong to the job side (`NodeJobs`).
    """

    redis_url: str  # shown by `python -m nodeagent status`, which reads the job queue there
    mycelium_address: str  # registered with the ledger; "" while the node has no overlay

    def health(self) -> list[str]:
        """Health flags only the job side can see (Redis, hypervisor, overlay, updates)."""
        ...

    def used(self) -> dict[str, int]:
        """Capacity reserved by workloads, reported with every uptime."""
        ...

    def publish(self, facts: NodeFacts, health: list[str]) -> None:
        """Make this report's facts and health what scripts' `node_info()` returns."""
        ...

    def on_uptime_reply(self, reply: dict) -> None:
        """The ledger's answer to a report (it names the agent release the node should run)."""
        ...


def read_node_facts(config: AgentConfig) -> NodeFacts:
    """The node's facts as configured: measured on the machine, overridden by `--facts`."""
    return read_facts(storage_paths=config.storage, overrides=config.facts_overrides)


@dataclass(eq=False)
class IdentityAgent:
    """The registration and uptime loop; all it needs of the jobs is `JobSide`."""

    config: AgentConfig
    identity: NodeIdentity
    client: LedgerClient
    jobs: JobSide
    stop: threading.Event
    state: LoopState = field(default_factory=LoopState, init=False)

    def audience(self) -> NodeAudience | None:
        """Who dispatches must be addressed to; None until the ledger has approved this node."""
        if self.state.node_id is None or self.state.status not in WORKING_STATUSES:
            return None
        return NodeAudience(
            public_key=self.identity.public_key_hex,
            node_id=self.state.node_id,
            farm_id=self.config.farm_id,
        )

    def read_facts(self) -> NodeFacts:
        return read_node_facts(self.config)

    def share_facts(self, facts: NodeFacts) -> list[str]:
        """Give the job side these facts with the node's health, and return that health."""
        health = health_flags(
            data_dir=self.config.data_dir, capacity=facts.capacity, extra=self.jobs.health()
        )
        self.jobs.publish(facts, health)
        return health

    def run(self) -> None:
        log.info(
            "node %s starting: ledger %s, farm %s",
            self.identity.public_key_hex,
            self.config.ledger_url,
            self.config.farm_id,
        )
        while not self.stop.is_set():
            delay = self.step()
            self.stop.wait(delay)
        log.info("stopped")

    def step(self) -> float:
        """One pass of the loop; returns how long to wait before the next."""
        try:
            facts = self.read_facts()
            if self._must_register(facts):
                self._register(facts)
            self._report(facts)
        except LedgerUnavailable as exc:
            return self._backoff(f"ledger unreachable: {exc}")
        except LedgerRefused as exc:
            if exc.code in REREGISTER_CODES:
                self.state.node_id = None
            hint = exc.body.get("message", "")
            return self._backoff(f"ledger refused ({exc.code}): {hint}")
        self.state.failures = 0
        return self.state.interval * random.uniform(0.9, 1.1)  # noqa: S311  (jitter, not crypto)

    def _backoff(self, reason: str) -> float:
        self.state.failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.state.failures - 1))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311
        log.warning("%s; retrying in %.0fs (attempt %d)", reason, delay, self.state.failures)
        return delay

    def _must_register(self, facts: NodeFacts) -> bool:
        return (
            self.state.node_id is None
            or facts.to_dict() != self.state.registered_facts
            or time.monotonic() - self.state.registered_at > REREGISTER_EVERY
        )

    def _register(self, facts: NodeFacts) -> None:
        registration = {
            "farm": self.config.farm_id,
            **facts.to_dict(),
            "agent_version": __version__,
            "image_version": self.config.image_version,
        }
        if self.config.enroll_token:
            registration["enroll_token"] = self.config.enroll_token
        if self.jobs.mycelium_address:
            registration["mycelium_address"] = self.jobs.mycelium_address
        reply = self.client.register(registration)
        self.state.node_id = reply["id"]
        self.state.interval = float(reply.get("interval", self.state.interval))
        self.state.registered_at = time.monotonic()
        self.state.registered_facts = facts.to_dict()
        self._set_status(reply["status"])
        log.info("registered as node %s (%s)", reply["id"], reply["status"])
        self.save_state()

    def _report(self, facts: NodeFacts) -> None:
        report = {
            "uptime": seconds_since_boot(),
            "used": self.jobs.used(),
            "health": self.share_facts(facts),
        }
        reply = self.client.report_uptime(self.state.node_id, report)
        self.state.interval = float(reply.get("interval", self.state.interval))
        self._set_status(reply["status"])
        log.debug("uptime reported: %s", reply)
        self.jobs.on_uptime_reply(reply)

    def _set_status(self, status: str) -> None:
        if status != self.state.status:
            if status == "pending":
                log.warning("node is pending: an operator must approve it in the ledger")
            else:
                log.info("ledger status: %s", status)
            self.state.status = status
            self.save_state()

    def save_state(self) -> None:
        """A small status file for operators and tests (`python -m nodeagent status`)."""
        path = Path(self.config.data_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "public_key": self.identity.public_key_hex,
                    "node_id": self.state.node_id,
                    "status": self.state.status,
                    "ledger": self.config.ledger_url,
                    "farm": self.config.farm_id,
                    "redis": self.jobs.redis_url,
                }
            )
        )
        tmp.replace(path)


def node_info(facts: NodeFacts, health: list[str], used: dict[str, int] | None = None) -> dict:
    """What a script's `node_info()` returns: capacity, what workloads reserved, what is free."""
    capacity = {key: getattr(facts.capacity, key) for key in CAPACITY_KEYS}
    used = used or dict.fromkeys(CAPACITY_KEYS, 0)
    return {
        "capacity": capacity,
        "used": used,
        "free": {key: capacity[key] - used[key] for key in CAPACITY_KEYS},
        "health": list(health),
    }


@dataclass(kw_only=True, eq=False)
class NodeJobs:
    """The job side as the identity loop sees it (`JobSide`), and its start-up steps.

    Its parts come built and started from `run_node`.
    """

    config: AgentConfig
    identity: NodeIdentity
    stop: threading.Event
    redis_url: str
    redis_server: RedisServer | None  # None: the node was given a Redis
    store: JobStore
    workloads: WorkloadRegistry
    updater: Updater | None  # None unless the launcher runs us: nobody else starts a new release
    mycelium_address: str = field(default="", init=False)
    overlay_down: bool = field(default=False, init=False)
    restart_for_update: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        # Its own short timeouts: a hung Redis must not hold up the uptime report.
        self._probe = redis.Redis.from_url(
            self.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )

    def on_uptime_reply(self, reply: dict) -> None:
        self.follow_gateway(reply.get("gateway"))
        if self.updater is None:
            return
        try:
            if self.updater.on_reply(reply):
                self.restart_for_update = True
                self.stop.set()
        except Exception:
            log.exception("the agent update failed unexpectedly; trying again next report")

    def health(self) -> list[str]:
        update = self.updater.health() if self.updater else []
        flags = ["redis_down"] if self.redis_down() else []
        if not hypervisor_available(self.config.hypervisor):
            flags.append("hypervisor_missing")
        if self.overlay_down:
            flags.append("mycelium_down")
        return flags + update

    def redis_down(self) -> bool:
        if self.redis_server is not None and self.redis_server.down:
            return True
        try:
            return not self._probe.ping()
        except redis.RedisError:
            return True

    def _resources(self):
        return node_resources(
            self.config.data_dir,
            self.config.storage,
            RunnerSettings.workload_bind,
            hypervisor=self.config.hypervisor,
            netns=self.config.workload_netns,
        )

    def start_overlay(self) -> None:
        """Start the Mycelium overlay when the node has the binary; workloads read it from Redis."""
        overlay.clear(self.store.redis)
        if self.config.mycelium is None:
            return
        if self.config.mycelium == overlay.LOCAL:
            try:
                found = overlay.start_local(self.identity.seed, self.config.workload_netns)
            except SalError as exc:
                self.overlay_down = True
                log.error("the node-local VM network did not start: %s", exc)
                return
            overlay.publish(self.store.redis, found)
            log.info(
                "node-local VM network %s (no Mycelium: not reachable from elsewhere)", found.subnet
            )
            return
        settings = overlay.OverlaySettings(
            binary=self.config.mycelium,
            api=self.config.mycelium_api,
            peers=self.config.mycelium_peers,
            netns=self.config.workload_netns,
        )
        try:
            found = overlay.start_overlay(settings, self.config.data_dir, self.identity.seed)
        except SalError as exc:
            self.overlay_down = True
            log.error("the Mycelium overlay did not start; VMs get no overlay address: %s", exc)
            return
        self.overlay_down = False
        overlay.publish(self.store.redis, found)
        self.mycelium_address = str(found.address)
        log.info("mycelium overlay %s, node address %s", found.subnet, found.address)

    def _proxy(self):
        return gateway.proxy(
            self.config.data_dir, self.config.gateway_proxy, self.config.workload_netns
        )

    def follow_gateway(self, settings: dict | None) -> None:
        """Keep the ledger's word on whether this node is a gateway, and a gateway's proxy up:
        started when the operator makes the node one, restarted if it died."""
        try:
            gateway.publish(self.store.redis, settings)
            proxy = self._proxy()
            if settings is not None and not proxy.running():
                count = gateway.restore(proxy, self.workloads)
                log.info("gateway %s: proxy started with %d route(s)", settings["domain"], count)
        except (SalError, redis.RedisError) as exc:
            log.error("the gateway proxy could not be started: %s", exc)

    def restart_workloads(self) -> None:
        """After an agent restart or a reboot: adopt what still runs, start what should."""
        try:
            count = gateway.restore(self._proxy(), self.workloads)
            if count:
                log.info("gateway proxy serves %d route(s) from the registry", count)
        except SalError as exc:
            log.error("the gateway proxy could not be restored: %s", exc)
        resources = self._resources()
        if resources.herodb is None:
            return
        try:
            resources.herodb.adopt()
            for info in resources.herodb.ensure_running():
                log.info("restarted herodb %s at %s", info.db_id, info.address)
        except SalError as exc:
            log.error("some workloads could not be restarted: %s", exc)
        if resources.vms is not None:
            for vm_id in restart_vms(resources.vms, self.workloads):
                log.info("restarted VM %s", vm_id)

    def used(self) -> dict[str, int]:
        """Capacity reserved by workloads; zero while Redis cannot say (reported as redis_down)."""
        with contextlib.suppress(redis.RedisError):
            return self.workloads.used()
        return dict.fromkeys(CAPACITY_KEYS, 0)

    def inventory(self) -> list[dict]:
        """The node's workloads for the coordinator; none while Redis cannot say."""
        try:
            return self.workloads.inventory()
        except redis.RedisError:
            return []

    def images(self) -> list[dict]:
        """The image cache's content (never made here: a node without VMs has none)."""
        try:
            pool = self._resources().pool
            return [] if pool is None else cached_images(pool.path("images"))
        except (OSError, SalError) as exc:  # a report goes out all the same
            log.warning("cannot list the image cache: %s", exc)
            return []

    def publish(self, facts: NodeFacts, health: list[str]) -> None:
        info = node_info(facts, health, self.used())
        info["images"] = self.images()
        with contextlib.suppress(redis.RedisError):
            self.store.publish_node_info(info)


def _supervise(supervisor: Supervisor, stop: threading.Event) -> None:
    """Run the coordinator link until stopped; a crash of it is logged and it starts again."""
    while not stop.is_set():
        try:
            supervisor.run()
        except Exception:
            log.exception("the supervisor stopped unexpectedly; restarting it")
            stop.wait(SUPERVISOR_RESTART_DELAY)


def run_node(config: AgentConfig, identity: NodeIdentity, stop: threading.Event) -> None:
    """Build the agent's parts once, start them in order and run the identity loop until `stop`.

    Redis comes first: the job store, the workload registry and the runners all live in it. The
    status file follows at once, so `python -m nodeagent status` finds the queue while the rest
    starts. The parts stop in reverse order when the loop ends (SIGTERM): the supervisor first
    (no new jobs), then the runners, then Redis. Exits with EXIT_UPDATE when a new release is in
    place, for the launcher to start it.
    """
    client = LedgerClient(config.ledger_url, identity)
    updater = updater_for(config.data_dir, config.ledger_url, config.extra)
    with contextlib.ExitStack() as stack:
        redis_server = None
        redis_url = config.redis_url
        if redis_url is None:
            redis_server = stack.enter_context(RedisServer(config.data_dir / "redis"))
            redis_url = redis_server.url
        store = JobStore(connect(redis_url))
        ring = logring.install(redis_url, source="agent")
        stack.callback(ring.close)
        stack.callback(logging.getLogger().removeHandler, ring)
        jobs = NodeJobs(
            config=config,
            identity=identity,
            stop=stop,
            redis_url=redis_url,
            redis_server=redis_server,
            store=store,
            workloads=WorkloadRegistry(store.redis),
            updater=updater,
        )
        loop = IdentityAgent(config, identity, client, jobs, stop)
        supervisor = Supervisor(
            ws_url=ws_url_for(config.ledger_url),
            identity=identity,
            store=store,
            client=client,
            audience=loop.audience,
            stop=stop,
            inventory=jobs.inventory,
            known_secrets=tuple(filter(None, [config.enroll_token])),
        )
        loop.save_state()
        jobs.start_overlay()
        jobs.restart_workloads()
        loop.share_facts(loop.read_facts())
        runners = RunnerSettings(
            redis_url=redis_url,
            data_dir=str(config.data_dir),
            storage=tuple(str(p) for p in config.storage),
            hypervisor=config.hypervisor,
            workload_netns=config.workload_netns,
            memory_mb=config.runner_memory_mb,
            ledger_url=config.ledger_url,
            image_cache_bytes=config.image_cache_gb * 2**30,
            gateway_proxy=config.gateway_proxy,
        )
        stack.enter_context(RunnerPool(runners, workers=config.runners))
        link = threading.Thread(
            target=_supervise, args=(supervisor, stop), name="supervisor", daemon=True
        )
        link.start()
        stack.callback(link.join, 10)
        loop.run()
    if jobs.restart_for_update:
        raise SystemExit(EXIT_UPDATE)
