"""The identity loop: register, then report uptime at the ledger's interval, forever.

Errors never end the loop: the ledger may be down, the network not up yet, or the operator still
fixing a token. The agent backs off exponentially (with jitter, capped) and tries again; SIGTERM
ends it between requests.
"""

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from nodeagent import __version__
from nodeagent.config import AgentConfig
from nodeagent.facts import NodeFacts, read_facts
from nodeagent.health import health_flags, seconds_since_boot
from nodeagent.identity import NodeIdentity
from nodeagent.ledger_client import LedgerClient, LedgerRefused, LedgerUnavailable

log = logging.getLogger(__name__)

REREGISTER_EVERY = 24 * 3600
BACKOFF_FIRST = 2.0
BACKOFF_MAX = 300.0
# Refusals that mean "the ledger has forgotten us": register again rather than back off.
REREGISTER_CODES = {"unknown_node"}


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
    ) -> None:
        self.config = config
        self.identity = identity
        self.client = client
        self.stop = stop or threading.Event()
        self.state = LoopState()

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
        reply = self.client.register(registration)
        self.state.node_id = reply["id"]
        self.state.interval = float(reply.get("interval", self.state.interval))
        self.state.registered_at = time.monotonic()
        self.state.registered_facts = facts.to_dict()
        self._set_status(reply["status"])
        log.info("registered as node %s (%s)", reply["id"], reply["status"])
        self._save_state()

    def _report(self, facts: NodeFacts) -> None:
        report = {
            "uptime": seconds_since_boot(),
            "used": {"cru": 0, "mru": 0, "sru": 0, "hru": 0},
            "health": health_flags(data_dir=self.config.data_dir, capacity=facts.capacity),
        }
        reply = self.client.report_uptime(self.state.node_id, report)
        self.state.interval = float(reply.get("interval", self.state.interval))
        self._set_status(reply["status"])
        log.debug("uptime reported: %s", reply)

    def _set_status(self, status: str) -> None:
        if status != self.state.status:
            if status == "pending":
                log.warning("node is pending: an operator must approve it in the ledger")
            else:
                log.info("ledger status: %s", status)
            self.state.status = status
            self._save_state()

    def _save_state(self) -> None:
        """A small status file for operators and tests (`python -m nodeagent status`)."""
        path = Path(self.config.data_dir) / "agent-state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "public_key": self.identity.public_key_hex,
                    "node_id": self.state.node_id,
                    "status": self.state.status,
                    "ledger": self.config.ledger_url,
                    "farm": self.config.farm_id,
                }
            )
        )
        tmp.replace(path)
