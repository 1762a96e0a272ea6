"""Faults of the node's surroundings (ISSUE 19, Faults): its clock skewed by minutes, its
network to the control plane cut, its pool full.

Real processes throughout (daphne, the coordinator worker, the agent with its redis-server and
runners); the skewed clock is an LD_PRELOAD shim under the real agent (clockshift/), the cut a
real veth pair into a network namespace taken down, the full pool a real btrfs file system on a
loop device. After each fault: every accepted deployment ends in a final state, its events are
complete and in order, its side effect (test_mark) happened once, and the node serves again
without anyone stepping in.
"""

import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.test_deployments import running_grid
from tests.integration.test_process_faults import SCRIPT, check_succeeded

pytestmark = pytest.mark.integration

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
