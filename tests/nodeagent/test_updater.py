"""Agent updates on the node: verified installs, refusals, the launcher's restarts and rollbacks.

Releases come from a real HTTP server on loopback; the launcher starts real processes (small
stand-in agents whose behaviour each test chooses: report, crash, stay silent, ask for a restart).
"""

import hashlib
import io
import json
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from contracts.payload_types import RELEASE_TYPE
from nodeagent.launcher import Launcher, data_dir_of
from nodeagent.updater import EXIT_UPDATE, REFUSED_FLAG, ROLLBACK_FLAG, AgentHome, Updater
from signing.dsse import sign_envelope
from signing.keys import public_key_hex

pytestmark = pytest.mark.timeout(60)

AGENT_MAIN = """
import pathlib, signal, sys, time
args = sys.argv[1:]
data = pathlib.Path(args[args.index("--data") + 1])
with open(data / "ran.log", "a") as log:
    log.write("@VERSION@\\n")
behaviour = "@BEHAVIOUR@"
if behaviour == "crash":
    sys.exit(1)
if behaviour == "report":
    (data / "agent" / "reported").write_text("@VERSION@")
if behaviour == "update":
    home = data / "agent"
    (home / "trial").write_text("v3")
    (home / "current").unlink()
    (home / "current").symlink_to("releases/v3")
    sys.exit(75)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
"""


def package_files(version: str, behaviour: str = "report") -> dict[str, bytes]:
    """A stand-in agent: the four packages, with a __main__ doing what the test needs."""
    main = AGENT_MAIN.replace("@VERSION@", version).replace("@BEHAVIOUR@", behaviour)
    return {
        "nodeagent/__init__.py": f'__version__ = "{version}"\n'.encode(),
        "nodeagent/__main__.py": main.encode(),
        "signing/__init__.py": b"",
        "rhai/__init__.py": b"",
        "sal/__init__.py": b"",
    }


def make_bundle(files: dict[str, bytes], *, extra: tarfile.TarInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size))
    return buffer.getvalue()


def install_tree(root: Path, version: str, behaviour: str) -> Path:
    for name, data in package_files(version, behaviour).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


class ReleaseServer:
    """The three ledger paths the updater reads, served from a dict; counts requests."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.hits: list[str] = []
        self.routes["/api/v1/releases/key"] = (
            200,
            json.dumps({"public_key": public_key_hex(key)}).encode(),
        )

    def publish(self, version: str, bundle: bytes, *, signer: SigningKey | None = None) -> None:
        statement = {
            "version": version,
            "sha256": hashlib.sha256(bundle).hexdigest(),
            "size": len(bundle),
        }
        envelope = sign_envelope(
            signer or self.key, RELEASE_TYPE, json.dumps(statement, sort_keys=True).encode()
        )
        self.routes[f"/api/v1/releases/{version}"] = (
            200,
            json.dumps({"version": version, "envelope": envelope}).encode(),
        )
        self.routes[f"/api/v1/releases/{version}/bundle"] = (200, bundle)


@pytest.fixture
def ledger() -> Iterator[tuple[str, ReleaseServer]]:
    releases = ReleaseServer(SigningKey.generate())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            releases.hits.append(self.path)
            status, body = releases.routes.get(self.path, (404, b'{"error": "not_found"}'))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", releases
    server.shutdown()
    server.server_close()


def wants(version: str) -> dict:
    return {"status": "online", "desired": {"agent_version": version}}


def test_a_signed_release_is_verified_unpacked_and_switched_to(tmp_path, ledger):
    url, releases = ledger
    releases.publish("v2", make_bundle(package_files("v2")))
    updater = Updater(data_dir=tmp_path, ledger_url=url, running_version="v1")
    assert updater.on_reply(wants("v2")) is True
    home = AgentHome.for_data_dir(tmp_path)
    assert home.current_version() == "v2"
    assert home.trial() == "v2"
    assert home.previous_version() is None  # the image's own agent
    assert (home.releases / "v2" / "nodeagent" / "__main__.py").is_file()
    assert home.reported() == "v1"
    pinned = (home.root / "release.pub").read_text()
    assert pinned == public_key_hex(releases.key)
    assert not [p for p in home.root.iterdir() if p.name.startswith(".")]


def test_nothing_happens_while_the_running_version_is_the_desired_one(tmp_path, ledger):
    url, releases = ledger
    updater = Updater(data_dir=tmp_path, ledger_url=url, running_version="v1")
    assert updater.on_reply(wants("v1")) is False
    assert updater.on_reply({"desired": {"agent_version": None}}) is False
    assert releases.hits == []
    assert AgentHome.for_data_dir(tmp_path).reported() == "v1"


def test_a_bad_signature_is_refused_reported_and_not_fetched_again(tmp_path, ledger):
    url, releases = ledger
    releases.publish("v2", make_bundle(package_files("v2")), signer=SigningKey.generate())
    updater = Updater(data_dir=tmp_path, ledger_url=url, running_version="v1")
    assert updater.on_reply(wants("v2")) is False
    home = AgentHome.for_data_dir(tmp_path)
    assert home.current_version() is None
    assert home.failed()["v2"]["flag"] == REFUSED_FLAG
    assert "signature" in home.failed()["v2"]["reason"]
    assert updater.health() == [REFUSED_FLAG]
    hits = len(releases.hits)
    assert updater.on_reply(wants("v2")) is False
    assert len(releases.hits) == hits
    updater.on_reply(wants("v1"))
    assert updater.health() == []  # the farm no longer wants it


def test_a_bundle_that_differs_from_the_signed_hash_is_refused(tmp_path, ledger):
    url, releases = ledger
    releases.publish("v2", make_bundle(package_files("v2")))
    releases.routes["/api/v1/releases/v2/bundle"] = (200, make_bundle(package_files("v2", "x")))
    updater = Updater(data_dir=tmp_path, ledger_url=url, running_version="v1")
    assert updater.on_reply(wants("v2")) is False
    failure = AgentHome.for_data_dir(tmp_path).failed()["v2"]
    assert "sha256" in failure["reason"]
    assert not (tmp_path / "agent" / "releases" / "v2").exists()


def test_the_kernel_pinned_key_wins_over_what_the_ledger_publishes(tmp_path, ledger):
    url, releases = ledger
    releases.publish("v2", make_bundle(package_files("v2")))
    pinned = public_key_hex(SigningKey.generate())
    updater = Updater(data_dir=tmp_path, ledger_url=url, running_version="v1", kernel_key=pinned)
    assert updater.on_reply(wants("v2")) is False
    assert AgentHome.for_data_dir(tmp_path).failed()["v2"]["flag"] == REFUSED_FLAG
    assert "/api/v1/releases/key" not in releases.hits


def test_a_key_pinned_on_first_contact_is_kept(tmp_path, ledger):
    url, releases = ledger
    releases.publish("v2", make_bundle(package_files("v2")))
    Updater(data_dir=tmp_path, ledger_url=url, running_version="v1").on_reply(wants("v2"))
    # The ledger now publishes (and signs with) another key: the node does not follow.
    other = SigningKey.generate()
    releases.routes["/api/v1/releases/key"] = (
        200,
        json.dumps({"public_key": public_key_hex(other)}).encode(),
    )
    releases.publish("v3", make_bundle(package_files("v3")), signer=other)
    updater = Updater(data_dir=tmp_path, ledger_url=url, running_version="v2")
    assert updater.on_reply(wants("v3")) is False
    assert AgentHome.for_data_dir(tmp_path).failed()["v3"]["flag"] == REFUSED_FLAG


@pytest.mark.parametrize(
    "member",
    [
        ("../escape.py", tarfile.REGTYPE),
        ("/etc/evil", tarfile.REGTYPE),
        ("other/x.py", tarfile.REGTYPE),
        ("nodeagent/link", tarfile.SYMTYPE),
    ],
)
def test_a_bundle_with_unsafe_members_is_refused(tmp_path, ledger, member):
    url, releases = ledger
    name, kind = member
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    info.size = 0 if kind == tarfile.SYMTYPE else 1
    releases.publish("v2", make_bundle(package_files("v2"), extra=info))
    updater = Updater(data_dir=tmp_path, ledger_url=url, running_version="v1")
    assert updater.on_reply(wants("v2")) is False
    assert "bundle member" in AgentHome.for_data_dir(tmp_path).failed()["v2"]["reason"]
    assert not (tmp_path / "escape.py").exists()
    assert AgentHome.for_data_dir(tmp_path).current_version() is None


def test_an_unreachable_ledger_defers_without_marking_the_release_failed(tmp_path):
    updater = Updater(data_dir=tmp_path, ledger_url="http://127.0.0.1:9", running_version="v1")
    assert updater.on_reply(wants("v2")) is False
    assert AgentHome.for_data_dir(tmp_path).failed() == {}


def test_data_dir_comes_from_the_agent_flags_or_the_kernel(tmp_path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("quiet zos.data=/var/lib/zos")
    assert data_dir_of(["--ledger", "x", "--data", "/d"], cmdline) == Path("/d")
    assert data_dir_of(["--ledger", "x"], cmdline) == Path("/var/lib/zos")
    assert data_dir_of([], tmp_path / "none") == Path("/var/cache/zos")
    media = tmp_path / "media-cmdline"
    media.write_text("zos.data=/srv/zos")
    assert data_dir_of(["--kernel-cmdline", str(media)], cmdline) == Path("/srv/zos")


# The launcher, with stand-in agents in real processes.


@pytest.fixture
def node(tmp_path) -> tuple[Path, AgentHome, Path]:
    data = tmp_path / "data"
    home = AgentHome.for_data_dir(data)
    home.releases.mkdir(parents=True)
    builtin = install_tree(tmp_path / "builtin", "v1", "report")
    return data, home, builtin


def launcher_for(data: Path, home: AgentHome, builtin: Path, **kwargs) -> Launcher:
    return Launcher(
        home, ["run", "--data", str(data)], restart_delay=0.1, builtin_root=builtin, **kwargs
    )


def ran(data: Path) -> list[str]:
    path = data / "ran.log"
    return path.read_text().split() if path.exists() else []


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_in_thread(launcher: Launcher) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(launcher.run()), daemon=True)
    thread.start()
    return thread, result


def test_launcher_runs_the_builtin_agent_when_no_release_is_installed(node):
    data, home, builtin = node
    launcher = launcher_for(data, home, builtin)
    thread, result = run_in_thread(launcher)
    wait_until(lambda: home.reported() == "v1")
    launcher.stop()
    thread.join(10)
    assert result == [0]
    assert ran(data) == ["v1"]


def test_a_release_that_reports_is_confirmed_and_old_releases_pruned(node):
    data, home, builtin = node
    install_tree(home.releases / "v0", "v0", "report")
    install_tree(home.releases / "v2", "v2", "report")
    home.switch("v2")
    launcher = launcher_for(data, home, builtin)
    thread, _ = run_in_thread(launcher)
    wait_until(lambda: home.trial() is None)
    launcher.stop()
    thread.join(10)
    assert home.current_version() == "v2"
    assert sorted(p.name for p in home.releases.iterdir()) == ["v2"]
    assert ran(data) == ["v2"]


def test_a_release_that_crashes_is_rolled_back_to_the_previous_one(node):
    data, home, builtin = node
    install_tree(home.releases / "v1", "v1", "report")
    home.switch("v1")
    home.settle()
    install_tree(home.releases / "v2", "v2", "crash")
    home.switch("v2")
    launcher = launcher_for(data, home, builtin)
    assert launcher.run_once() == EXIT_UPDATE
    assert home.current_version() == "v1"
    assert home.trial() is None
    assert home.failed()["v2"]["flag"] == ROLLBACK_FLAG
    assert "exited with code 1" in home.failed()["v2"]["reason"]


def test_a_silent_release_is_stopped_at_the_deadline_and_the_image_agent_restored(node):
    data, home, builtin = node
    install_tree(home.releases / "v2", "v2", "silent")
    home.switch("v2")
    launcher = launcher_for(data, home, builtin, deadline=1.0)
    started = time.monotonic()
    assert launcher.run_once() == EXIT_UPDATE
    assert time.monotonic() - started < 10
    assert home.current_version() is None
    assert "no uptime report within 1s" in home.failed()["v2"]["reason"]
    thread, _ = run_in_thread(launcher)
    wait_until(lambda: ran(data)[-1:] == ["v1"])
    launcher.stop()
    thread.join(10)


def test_the_update_exit_code_restarts_the_agent_from_the_new_release(node):
    data, home, builtin = node
    install_tree(home.releases / "v2", "v2", "update")
    home.switch("v2")
    home.settle()
    install_tree(home.releases / "v3", "v3", "report")
    launcher = launcher_for(data, home, builtin)
    thread, _ = run_in_thread(launcher)
    wait_until(lambda: home.reported() == "v3" and home.trial() is None)
    launcher.stop()
    thread.join(10)
    assert ran(data) == ["v2", "v3"]


def test_the_launcher_module_runs_as_a_program(tmp_path):
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "nodeagent.launcher", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "--deadline" in done.stdout
