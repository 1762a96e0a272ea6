"""Faults of the node's surroundings (ISSUE 19, Faults): its clock skewed by minutes, its
network to the control plane cut, its pool full.

Real processes throughout (daphne, the coordinator worker, the agent with its redis-server and
runners); the skewed clock is an LD_PRELOAD shim under the real agent (clockshift/), the cut a
real veth pair into a network namespace taken down, the full pool a real btrfs file system on a
loop device. After each fault: every accepted deployment ends in a final state, its events are
complete and in order, its side effect (test_mark) happened once, and the node serves again
without anyone stepping in.
"""

import errno
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from sal.btrfs import Pool
from tests.integration.conftest import wait_for
from tests.integration.test_deployments import running_grid
from tests.integration.test_process_faults import (
    SCRIPT,
    check_effect_once,
    check_history,
    check_succeeded,
)
from tests.sal.conftest import loop_pool

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
