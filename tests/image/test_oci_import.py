"""`python -m image oci-import`: an OCI image layout and a `docker save` tarball, both made here
without network (umoci and skopeo, a busybox layer from Debian's busybox-static and a second
layer that deletes a file), become a container image the node boots with the image's
entrypoint, env and working directory."""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bootimage.tools import BuildError
from image.oci import OciImportOptions, import_oci
from tests.image.conftest import ROOT
from tests.nodeagent.conftest import redis_server, store  # noqa: F401 - fixtures
from tests.nodeagent.test_runner import start_pool  # noqa: F401 - fixture
from tests.nodeagent.test_vm_functions import data_dir, netns, node, pool, run  # noqa: F401
from tests.sal.conftest import net_required, netns_factory  # noqa: F401 - fixtures
from tests.sal.guest import build_guest

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("skopeo", "umoci")) or not BUSYBOX.is_file(),
    reason="needs skopeo, umoci and busybox-static (scripts/setup.sh installs them)",
)
COMMAND = 'echo "$GREETING in $(pwd)"; ls /srv/app'


def sh(*argv: str | Path, cwd: Path) -> None:
    subprocess.run([str(a) for a in argv], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same two-layer image as an OCI layout (tag `demo`) and as a `docker save` tarball."""
    work = tmp_path_factory.mktemp("oci")
    sh("umoci", "init", "--layout", "layout", cwd=work)
    sh("umoci", "new", "--image", "layout:demo", cwd=work)
    sh("umoci", "unpack", "--image", "layout:demo", "bundle", cwd=work)
    rootfs = work / "bundle/rootfs"
    (rootfs / "bin").mkdir()
    (rootfs / "srv/app").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
    for applet in ("sh", "ls", "echo"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "srv/app/stale").write_text("removed by the next layer\n")
    sh("umoci", "repack", "--image", "layout:demo", "bundle", cwd=work)
    (rootfs / "srv/app/stale").unlink()
    (rootfs / "srv/app/data").write_text("kept\n")
    sh("umoci", "repack", "--image", "layout:demo", "bundle", cwd=work)
    sh(
        "umoci", "config", "--image", "layout:demo", "--config.entrypoint", "/bin/sh",
        "--config.cmd", "-c", "--config.cmd", COMMAND, "--config.env", "GREETING=hello",
        "--config.env", "PATH=/bin", "--config.workingdir", "/srv/app",
        cwd=work,
    )  # fmt: skip
    sh(
        "skopeo", "--insecure-policy", "copy", "-q", "oci:layout:demo",
        f"docker-archive:{work / 'saved.tar'}:demo:latest",
        cwd=work,
    )  # fmt: skip
    return {"layout": work / "layout", "docker": work / "saved.tar"}


def _import(archive: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "image", "oci-import", str(archive), "--out", str(out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(("kind", "extra"), [("layout", ("--ref", "demo")), ("docker", ())])
def test_an_image_becomes_a_rootfs_tarball_with_its_command_env_and_workdir(
    archives, tmp_path, kind, extra
):
    done = _import(archives[kind], tmp_path / "out", *extra)
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "out/image.json").read_text())
    assert meta["entrypoint"] == ["/bin/sh", "-c", COMMAND]  # Entrypoint + Cmd
    assert meta["env"] == {"GREETING": "hello", "PATH": "/bin"}
    assert meta["workdir"] == "/srv/app"
    with tarfile.open(tmp_path / "out/rootfs.tar") as tar:
        names = {n.removeprefix("./") for n in tar.getnames()}
        owners = {(m.uid, m.gid) for m in tar.getmembers()}
    assert {"bin/busybox", "bin/sh", "srv/app/data"} <= names
    assert "srv/app/stale" not in names  # the second layer's whiteout was applied
    assert owners == {(0, 0)}


def test_what_is_not_an_image_is_refused_with_the_reason(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(BuildError, match="not an OCI image layout"):
        import_oci(OciImportOptions(archive=tmp_path / "plain", out=tmp_path / "o"))
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 64)
    with pytest.raises(BuildError, match="is not a tar archive"):
        import_oci(OciImportOptions(archive=tmp_path / "junk.tar", out=tmp_path / "o"))
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        tar.add(tmp_path / "plain", arcname="something")
    with pytest.raises(BuildError, match="neither an OCI image layout"):
        import_oci(OciImportOptions(archive=tmp_path / "other.tar", out=tmp_path / "o"))


@pytest.mark.slow
def test_the_node_boots_an_imported_image_with_its_env_and_workdir(
    archives,
    node,  # noqa: F811
    pool,  # noqa: F811
    tmp_path: Path,
):
    jobs, resources = node
    assert _import(archives["docker"], tmp_path / "demo").returncode == 0
    installed = subprocess.run(
        [sys.executable, "-m", "nodeagent", "images", "--storage", str(pool.mountpoint),
         "install", "demo", "--from", str(tmp_path / "demo")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    guest = build_guest()
    resources.vms.images.install("zos-machine", kernel=guest.kernel, initrd=guest.initrd)

    def boot(name: str, env: str) -> str:
        script = f"""
            vm_create(#{{name: "{name}", kind: "container", image: "demo", disk_gb: 1,
                         mycelium: false, env: {env}}});
            let info = vm_info("{name}");
            while !info.console.contains("ZOS-CONTAINER-EXIT") {{
                sleep(100);
                info = vm_info("{name}");
            }}
            info.console
        """
        state = run(jobs, 1, script)
        assert state["state"] == "succeeded", state
        assert "ZOS-CONTAINER-EXIT 0" in state["value"]
        return state["value"].replace("\r\n", "\n")

    assert "hello in /srv/app\ndata" in boot("plain", "#{}")  # the image's env and workdir
    assert "hi from the script in /srv/app" in boot("over", '#{GREETING: "hi from the script"}')
