"""An image published to the hub reaches a node that has never seen it (issue 13).

Real processes throughout: daphne, the coordinator worker, the agent with its redis-server and two
runner processes, QEMU (TCG here) booting the test guest (tests/sal/guest.py: Debian's kernel and
a busybox initramfs), btrfs on a loop device. The image is published with `zos image push` as a
user would; the node fetches it with signed requests, verifies it and boots VMs from it.
"""

import hashlib
import io
import os
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from nodeagent.image_fetch import HUB_FILE
from sal.command import run
from tests.integration.conftest import wait_for
from tests.integration.test_deployments import running_grid
from tests.sal.conftest import loop_pool
from tests.sal.guest import READY_MARKER, build_guest
from zoscli.main import main as zos

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu"),
]

GIB = 2**30

BOOT = """
while now() < {start} {{ sleep(100); }}
log("asking for the image");
let vm = vm_create(#{{name: "{name}", image: "tiny", cpus: 1, memory_mb: 256, disk_gb: 1,
                     mycelium: false}});
log("vm created");
let info = vm_info("{name}");
while !info.console.contains("{ready}") {{
    if info.state != "running" {{ throw `the VM stopped: ${{info.state}}`; }}
    sleep(200);
    info = vm_info("{name}");
}}
vm
"""


@pytest.fixture
def data_dir():
    """Short on purpose: QMP socket paths under it must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="zi-", dir="/tmp"))
    yield path
    run(["pkill", "-KILL", "-f", str(path)], check=False)  # a failed test leaks no QEMU
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pool(tmp_path):
    with loop_pool(tmp_path / "btrfs", size=4 * GIB) as pool:
        yield pool


def _image_dir(tmp_path: Path) -> Path:
    """The test guest as an image directory, the format `python -m image vm-image` writes."""
    guest = build_guest()
    image = tmp_path / "tiny-image"
    image.mkdir()
    (image / "kernel").symlink_to(guest.kernel)
    (image / "initrd").symlink_to(guest.initrd)
    (image / "image.json").write_text('{"cmdline": "", "min_disk_gb": 1}\n')
    return image


def _zos(user, key_file: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {
        "ZOS_URL": user.plane.url,
        "ZOS_TOKEN": user.token,
        "ZOS_KEY": str(key_file),
        "ZOS_CONFIG": str(key_file.parent / "config.toml"),
    }
    code = zos(list(args), env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _key_file(user, tmp_path: Path) -> Path:
    keys = tmp_path / "zos-keys"
    keys.mkdir(mode=0o700)
    (keys / "config.toml").write_text("")
    private = keys / "laptop"
    private.write_text(bytes(user.key).hex() + "\n")
    private.chmod(0o600)
    return private


def _log_time(user, deployment: dict, line: str) -> datetime:
    (event,) = [e for e in user.events(deployment["id"]) if e["log"] == line]
    return datetime.fromisoformat(event["ts"])


def _fetched(agent) -> int:
    return agent.log().count("fetched image tiny:")


def test_a_published_image_is_fetched_verified_cached_once_and_boots(
    control_plane, start_agent, tmp_path, data_dir, pool
):
    agent_args = ("--storage", str(pool.mountpoint), "--mycelium", "off")
    with running_grid(control_plane, start_agent, tmp_path, *agent_args, data_dir=data_dir) as (
        user,
        agent,
    ):
        key_file = _key_file(user, tmp_path)
        image_dir = _image_dir(tmp_path)

        # publish: both parts go up with a progress bar; a re-push uploads nothing
        code, out, err = _zos(user, key_file, "image", "push", str(image_dir), "--name", "tiny",
                              "--version", "1")  # fmt: skip
        assert code == 0, err
        assert "uploaded 2 of 2 parts" in out and "100%" in err
        code, out, err = _zos(user, key_file, "image", "push", str(image_dir), "--name", "tiny",
                              "--version", "2")  # fmt: skip
        assert code == 0, err
        assert "uploaded 0 of 2 parts" in out and "already on the hub" in err
        code, out, _ = _zos(user, key_file, "image", "show", "tiny")
        assert code == 0 and "tiny:2" in out and "tiny:1" in out

        # the hub's copy of the initrd is corrupted: the node refuses it and creates nothing
        good = build_guest().initrd.read_bytes()
        digest = hashlib.sha256(good).hexdigest()
        stored = control_plane.var_dir / "blobs" / "sha256" / digest[:2] / digest
        assert stored.read_bytes() == good
        os.chmod(stored, 0o644)
        stored.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])
        bad = user.deploy(BOOT.format(name="bad", ready=READY_MARKER, start=0))
        refused = user.wait_final(bad["id"], timeout=180)
        assert refused["status"] == "failed"
        assert "did not arrive intact in 3 attempts" in refused["job"]["error"], refused["job"]
        images = pool.mountpoint / "images"
        assert not (images / "tiny").exists()
        assert [p.name for p in images.iterdir() if p.name != ".locks"] == []
        assert agent.log().count("part initrd refused") == 3

        # repaired: two jobs at once boot a VM each from one download
        stored.write_bytes(good)
        start = int(time.time()) + 6  # both jobs are running by then and ask at once
        first = user.deploy(BOOT.format(name="one", ready=READY_MARKER, start=start))
        second = user.deploy(BOOT.format(name="two", ready=READY_MARKER, start=start))
        for deployment in (first, second):
            done = user.wait_final(deployment["id"], timeout=300)
            assert done["status"] == "succeeded", (done["job"].get("error"), agent.log()[-3000:])
            assert done["job"]["result"]["state"] == "running"
            assert done["job"]["result"]["image"] == "tiny"
        assert _fetched(agent) == 1, agent.log()[-3000:]
        # ...and they really were at it together: both asked before either VM existed
        asked = [_log_time(user, d, "asking for the image") for d in (first, second)]
        created = [_log_time(user, d, "vm created") for d in (first, second)]
        assert max(asked) < min(created), (asked, created)
        # a private image is cached for its owner only
        (key,) = [p.name for p in images.iterdir() if not p.name.startswith(".")]
        assert re.fullmatch(r"tiny\.u\d+", key) and done["job"]["result"]["image_key"] == key
        assert (images / key / HUB_FILE).is_file()
        assert (images / key / "initrd").read_bytes() == good

        # node_info shows what is cached (the agent republishes it every report)
        def cached():
            info = user.wait_final(user.deploy("node_info().images")["id"], timeout=60)
            return info["job"]["result"]

        listing = wait_for(cached, timeout=30, what="node_info() to list the fetched image")
        assert [(i["name"], i["version"], i["source"]) for i in listing] == [("tiny", "2", "hub")]

        done = user.wait_final(user.deploy('vm_delete("one"); vm_delete("two")')["id"], timeout=60)
        assert done["status"] == "succeeded", done["job"].get("error")
        assert agent.stop() == 0
