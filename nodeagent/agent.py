"""The node agent: the identity loop, and the job machinery it starts once the node may work.

The identity loop registers, then reports uptime at the ledger's interval, forever. Errors never
end the loop: the ledger may be down, the network not up yet, or the operator still fixing a
token. The agent backs off exponentially (with jitter, capped) and tries again; SIGTERM ends it
between requests.

`NodeAgent` adds the job side around that loop: the node's Redis (its own `redis-server` unless
told to use another), the runner processes, and the supervisor's link to the coordinator, which
only connects once the ledger knows and has approved this node.
"""

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis

from nodeagent import __version__, overlay
from nodeagent.config import STATE_FILE, AgentConfig
from nodeagent.facts import CAPACITY_KEYS, NodeFacts, read_facts
from nodeagent.functions.registry import WorkloadRegistry
from nodeagent.functions.resources import hypervisor_available, node_resources
from nodeagent.functions.vms import restart_vms
from nodeagent.health import health_flags, seconds_since_boot
from nodeagent.identity import NodeIdentity
from nodeagent.jobstore import JobStore, connect
from nodeagent.ledger_client import LedgerClient, LedgerRefused, LedgerUnavailable
from nodeagent.redis_server import RedisServer
from nodeagent.runner import RunnerPool, RunnerSettings
from nodeagent.supervisor import Supervisor, ws_url_for
from nodeagent.updater import EXIT_UPDATE, updater_for
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


class IdentityAgent:
    def __init__(
        self,
        config: AgentConfig,
        identity: NodeIdentity,
        client: LedgerClient,
        stop: threading.Event | None = None,
        *,
        health_extra: Callable[[], Iterable[str]] | None = None,
        on_report: Callable[[NodeFacts, list[str]], None] | None = None,
        state_extra: dict | None = None,
        used: Callable[[], dict[str, int]] | None = None,
        on_reply: Callable[[dict], None] | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.client = client
        self.stop = stop or threading.Event()
        self.state = LoopState()
        self.health_extra = health_extra
        self.on_report = on_report
        self.state_extra = state_extra or {}
        self.used = used
        self.on_reply = on_reply
        self.mycelium_address = ""  # the node's overlay address once the overlay runs

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
        return read_facts(storage_paths=self.config.storage, overrides=self.config.facts_overrides)

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
        if self.mycelium_address:
            registration["mycelium_address"] = self.mycelium_address
        reply = self.client.register(registration)
        self.state.node_id = reply["id"]
        self.state.interval = float(reply.get("interval", self.state.interval))
        self.state.registered_at = time.monotonic()
        self.state.registered_facts = facts.to_dict()
        self._set_status(reply["status"])
        log.info("registered as node %s (%s)", reply["id"], reply["status"])
        self.save_state()

    def _report(self, facts: NodeFacts) -> None:
        extra = self.health_extra() if self.health_extra else ()
        health = health_flags(data_dir=self.config.data_dir, capacity=facts.capacity, extra=extra)
        if self.on_report:
            self.on_report(facts, health)
        report = {
            "uptime": seconds_since_boot(),
            "used": self.used() if self.used else dict.fromkeys(CAPACITY_KEYS, 0),
            "health": health,
        }
        reply = self.client.report_uptime(self.state.node_id, report)
        self.state.interval = float(reply.get("interval", self.state.interval))
        self._set_status(reply["status"])
        log.debug("uptime reported: %s", reply)
        if self.on_reply:
            self.on_reply(reply)

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
                    **self.state_extra,
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


class NodeAgent:
    """The whole agent: Redis, runners and supervisor around the identity loop.

    Everything is started in `run()` and stopped, in reverse order, when the loop ends (SIGTERM):
    the supervisor first (no new jobs), then the runners, then Redis.
    """

    def __init__(
        self,
        config: AgentConfig,
        identity: NodeIdentity,
        client: LedgerClient,
        *,
        runner_settings: dict | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.client = client
        self.stop = threading.Event()
        self.runner_settings = runner_settings or {}
        self.redis_server: RedisServer | None = None
        self.redis_url = config.redis_url
        self.store: JobStore | None = None
        self._probe: redis.Redis | None = None
        self.loop = IdentityAgent(
            config,
            identity,
            client,
            self.stop,
            health_extra=self._health,
            on_report=self._publish_facts,
            used=self._used,
            on_reply=self._on_uptime_reply,
        )
        self.workloads: WorkloadRegistry | None = None
        self.overlay_down = False
        # Agent updates (nodeagent/updater.py): only under the launcher, which restarts us.
        self.updater = updater_for(config.data_dir, config.ledger_url, config.extra)
        self.restart_for_update = False

    def _on_uptime_reply(self, reply: dict) -> None:
        if self.updater is None:
            return
        try:
            if self.updater.on_reply(reply):
                self.restart_for_update = True
                self.stop.set()
        except Exception:
            log.exception("the agent update failed unexpectedly; trying again next report")

    def read_facts(self) -> NodeFacts:
        return self.loop.read_facts()

    def _health(self) -> list[str]:
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
        if self._probe is None:
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

    def _start_overlay(self) -> None:
        """Start the Mycelium overlay when the node has the binary; workloads read it from Redis."""
        assert self.store is not None
        overlay.clear(self.store.redis)
        if self.config.mycelium is None:
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
        self.loop.mycelium_address = str(found.address)
        log.info("mycelium overlay %s, node address %s", found.subnet, found.address)

    def _restart_workloads(self) -> None:
        """After an agent restart or a reboot: adopt what still runs, start what should."""
        resources = self._resources()
        if resources.herodb is None:
            return
        try:
            resources.herodb.adopt()
            for info in resources.herodb.ensure_running():
                log.info("restarted herodb %s at %s", info.db_id, info.address)
        except SalError as exc:
            log.error("some workloads could not be restarted: %s", exc)
        if resources.vms is not None and self.workloads is not None:
            for vm_id in restart_vms(resources.vms, self.workloads):
                log.info("restarted VM %s", vm_id)

    def _used(self) -> dict[str, int]:
        """Capacity reserved by workloads; zero while Redis cannot say (reported as redis_down)."""
        if self.workloads is not None:
            with contextlib.suppress(redis.RedisError):
                return self.workloads.used()
        return dict.fromkeys(CAPACITY_KEYS, 0)

    def _inventory(self) -> list[dict]:
        if self.workloads is None:
            return []
        try:
            return self.workloads.inventory()
        except redis.RedisError:
            return []

    def _publish_facts(self, facts: NodeFacts, health: list[str]) -> None:
        if self.store is None:
            return
        with contextlib.suppress(redis.RedisError):
            self.store.publish_node_info(node_info(facts, health, self._used()))

    def run(self) -> None:
        with contextlib.ExitStack() as stack:
            if self.redis_url is None:
                self.redis_server = stack.enter_context(RedisServer(self.config.data_dir / "redis"))
                self.redis_url = self.redis_server.url
            self._probe = redis.Redis.from_url(
                self.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
            self.loop.state_extra["redis"] = self.redis_url
            self.loop.save_state()
            self.store = JobStore(connect(self.redis_url))
            self.workloads = WorkloadRegistry(self.store.redis)
            self._start_overlay()
            self._restart_workloads()
            facts = self.read_facts()
            self._publish_facts(
                facts,
                health_flags(
                    data_dir=self.config.data_dir, capacity=facts.capacity, extra=self._health()
                ),
            )
            settings = RunnerSettings(
                redis_url=self.redis_url,
                data_dir=str(self.config.data_dir),
                storage=tuple(str(p) for p in self.config.storage),
                hypervisor=self.config.hypervisor,
                workload_netns=self.config.workload_netns,
                memory_mb=self.config.runner_memory_mb,
                **self.runner_settings,
            )
            stack.enter_context(RunnerPool(settings, workers=self.config.runners))
            supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
            supervisor.start()
            stack.callback(supervisor.join, 10)
            self.loop.run()
        if self.restart_for_update:
            raise SystemExit(EXIT_UPDATE)  # the launcher starts the new release

    def _supervise(self) -> None:
        """Run the coordinator link until stopped; a crash of it is logged and it starts again."""
        supervisor = Supervisor(
            ws_url=ws_url_for(self.config.ledger_url),
            identity=self.identity,
            store=self.store,
            client=self.client,
            audience=self.loop.audience,
            stop=self.stop,
            inventory=self._inventory,
        )
        while not self.stop.is_set():
            try:
                supervisor.run()
            except Exception:
                log.exception("the supervisor stopped unexpectedly; restarting it")
                self.stop.wait(SUPERVISOR_RESTART_DELAY)
