"""Faults of the node's surroundings (ISSUE 19, Faults): its clock skewed by minutes, its
network to the control plane cut, its pool full.

Real processes throughout (daphne, the coordinator worker, the agent with its redis-server and
runners); the skewed clock is an LD_PRELOAD shim under the real agent (clockshift/), the cut a
real veth pair into a network namespace taken down, the full pool a real btrfs file system on a
loop device. After each fault: every accepted deployment ends in a final state, its events are
complete and in order, its side effect (test_mark) happened once, and the node serves again
without anyone stepping in.
"""

import contextlib
import errno
import ipaddress
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from sal import net
from sal.btrfs import Pool
from sal.command import SalError
from tests.integration.conftest import wait_for
from tests.integration.test_deployments import _link, _link_down, running_grid
from tests.integration.test_process_faults import (
    SCRIPT,
    check_effect_once,
    check_history,
    check_succeeded,
    past_effect,
)
from tests.sal.conftest import loop_pool, net_required, netns_factory  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

MIB = 2**20
SKEW = 7 * 60  # beyond the 300 s window of signed node requests and of envelope checks
CLOCKSHIFT = Path(__file__).parent / "clockshift" / "clockshift.c"


def clock_shifted(tmp_path: Path, seconds: int) -> dict[str, str]:
    """The environment under which a process (and what it starts) reads a wall clock
    `seconds` off: the shim built here with gcc (scripts/setup.sh installs it)."""
    shim = tmp_path / "clockshift.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(CLOCKSHIFT), "-ldl"],
        check=True,
        capture_output=True,
    )
    return {"LD_PRELOAD": str(shim), "CLOCKSHIFT_SECONDS": str(seconds)}


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("skew", [SKEW, -SKEW], ids=["ahead", "behind"])
def test_a_node_whose_clock_is_minutes_off_still_takes_work_and_says_so(
    control_plane, start_agent, tmp_path, skew
):
    """The agent learns the ledger's clock from its `timestamp_skew` refusal and the
    coordinator's from `welcome`: it registers, reports, accepts an envelope that is valid by the
    control plane's clock (one that lives 5 minutes, so a node 7 minutes ahead would call it
    expired, and one 7 minutes behind would call it not yet valid), stamps its events with the
    control plane's time, and warns in its log that its clock is off."""
    env = clock_shifted(tmp_path, skew)
    with running_grid(control_plane, start_agent, tmp_path, env=env) as grid:
        user, agent = grid
        deployment = user.deploy(SCRIPT, expires_at=int(time.time()) + 300)
        events = check_succeeded(user, agent, deployment)
        for event in events:  # the node's events too: within a minute, not seven
            assert abs(_seconds(event["ts"]) - _seconds(event["created"])) < 60, event
        side = "ahead of" if skew > 0 else "behind"
        assert f"clock is {side} the control plane's by" in agent.log()
        assert f"clock is {side} the ledger's by" in agent.log()


def fill(pool: Pool, path: Path) -> None:
    """Take (nearly) all the pool's free space with one preallocated file."""
    with open(path, "wb") as filler:
        chunk = pool.pool_usage().free
        while chunk >= MIB:
            try:
                os.posix_fallocate(filler.fileno(), filler.seek(0, os.SEEK_END), chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    os.sync()


def test_a_full_pool_refuses_creates_clearly_makes_nothing_and_serves_once_freed(
    control_plane, start_agent, tmp_path
):
    """The node's pool filled by something outside the reservations (here a farmer's file):
    a volume and a database fail at once naming the cause and the sizes, leave no subvolume,
    record or reservation behind; once the space is freed the same script succeeds."""
    with loop_pool(tmp_path / "btrfs") as pool:
        agent_args = ("--storage", str(pool.mountpoint), "--mycelium", "off")
        with running_grid(control_plane, start_agent, tmp_path, *agent_args) as (user, agent):
            filler = pool.mountpoint / "filler"
            fill(pool, filler)
            script = 'test_mark("effect"); volume_create("data", 1); 42'
            full = user.deploy(script)
            done = user.wait_final(full["id"], timeout=120)
            assert done["status"] == "failed", done
            error = done["job"]["error"]
            assert "volume_create: no space left on this node's storage pool: 1.0 GiB needed" in (
                error
            ), error
            assert "Traceback" not in error
            database = user.deploy('herodb_create(#{ name: "cache", disk_gb: 1 })')
            db_error = user.wait_final(database["id"], timeout=120)["job"]["error"]
            assert "herodb_create: no space left on this node's storage pool" in db_error
            assert [s.name for s in pool.list_subvolumes()] == []  # nothing half-made
            check_history(user.events(full["id"]))
            check_effect_once(agent, done)  # it ran, and only once

            filler.unlink()
            subprocess.run(["btrfs", "filesystem", "sync", str(pool.mountpoint)], check=True)
            again = user.deploy(script)
            check_succeeded(user, agent, again)
            assert [s.name for s in pool.list_subvolumes()] == ["vol-u1-data"]
            wait_for(
                lambda: (
                    [
                        (w["kind"], w["name"], w["state"])
                        for w in control_plane.get("/api/v1/workloads", headers=user.headers)[
                            "results"
                        ]
                    ]
                    == [("volume", "data", "ready")]
                ),
                timeout=30,
                what="the control plane to list the one volume, and nothing else",
            )


def _relay(port: int, listen: str, to: str, ns: str | None = None) -> subprocess.Popen:
    """socat from listen:port to to:port, in namespace `ns` when given."""
    inside = ("ip", "netns", "exec", ns) if ns else ()
    return subprocess.Popen(
        [*inside, "socat", f"TCP-LISTEN:{port},bind={listen},reuseaddr,fork", f"TCP:{to}:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def node_behind_a_wire(ns: str, port: int) -> Iterator[Callable[[bool], None]]:
    """Namespace `ns` joined to the host by a veth pair, its only way to the control plane on
    the host's 127.0.0.1:`port`: inside, 127.0.0.1:`port` is a relay over the wire to the host
    end, relayed again to the control plane (so the node's URL and Host header are what they
    are on one box). Yields `wire(up)`, which plugs or cuts the wire at the host end."""
    host_end, node_end = f"zh{ns[3:]}", f"zn{ns[3:]}"
    net.create_veth(host_end, node_end, peer_netns=ns)
    block = ipaddress.IPv4Network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/30")
    host_ip, node_ip = (str(a) for a in block.hosts())
    net.add_address(host_end, f"{host_ip}/30")
    net.add_address(node_end, f"{node_ip}/30", netns=ns)
    net.set_up(host_end)
    net.set_up(node_end, netns=ns)
    relays = [_relay(port, host_ip, "127.0.0.1"), _relay(port, "127.0.0.1", host_ip, ns)]
    try:
        yield lambda up: (net.set_up if up else net.set_down)(host_end)
    finally:
        for relay in relays:
            relay.kill()
            relay.wait(timeout=10)
        with contextlib.suppress(SalError):
            net.delete_link(host_end)


def test_a_network_cut_longer_than_the_ping_timeout_loses_and_doubles_nothing(
    control_plane,
    start_agent,
    tmp_path,
    netns_factory,  # noqa: F811
):
    """The agent in its own namespace, its wire to the control plane cut while jobs run and
    more are submitted: the link is marked down (no answer to pings), the node reconnects once
    the wire is back, and every deployment ends once, its history whole, its side effect once."""
    ns = netns_factory()
    with (
        node_behind_a_wire(ns, control_plane.port) as wire,
        running_grid(control_plane, start_agent, tmp_path, wrap=("ip", "netns", "exec", ns)) as (
            user,
            agent,
        ),
    ):
        deployments = [user.deploy(SCRIPT) for _ in range(3)]
        wait_for(
            lambda: past_effect(user, agent, deployments),
            timeout=60,
            what="a job of the stream to be running past its side effect",
        )
        wire(False)
        deployments += [user.deploy(SCRIPT) for _ in range(2)]  # while the node is cut off
        lost = wait_for(
            lambda: _link_down(control_plane, user.node),
            timeout=60,
            what="the control plane to mark the node's link down",
        )
        assert "no beat for" in lost[1], lost  # the agent beats; silence past the limit ends it
        wire(True)
        for deployment in deployments:
            check_succeeded(user, agent, deployment)
        wait_for(
            lambda: _link(control_plane, user.node)[0] is None,
            timeout=60,
            what="the node's link to be up again",
        )
        after = user.deploy("1 + 1")  # served again, nobody stepped in
        assert user.wait_final(after["id"])["job"]["result"] == 2
