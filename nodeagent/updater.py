"""Agent updates on the node (ARCHITECTURE §2 step 7): fetch, verify, unpack, switch, restart.

The uptime reply names the farm's desired agent version. When it differs from the running one
the updater fetches the release's signed statement and verifies it with the pinned release key,
downloads the bundle and checks its size and sha256 against the statement, unpacks it beside the
running agent and switches the `current` link atomically. The agent then exits with EXIT_UPDATE
and the launcher (nodeagent/launcher.py) starts the new code, and rolls back if it does not
report uptime in time. Everything lives in `<data>/agent/`:

    releases/<version>/   unpacked bundles (nodeagent/, contracts/, signing/, rhai/, sal/)
    current, previous     symlinks to releases/<version>; no `current`: the image's own agent
    trial                 the version switched to and not yet confirmed by an uptime report
    reported              the version of the agent that last reported uptime
    failed.json           versions refused (bad signature, hash, bundle) or rolled back
    release.pub           the pinned release key (hex)

The key is pinned from the kernel command line (`zos.release_key=`, stamped into every image the
ledger serves) and otherwise on first contact (GET /api/v1/releases/key), then never changes:
a release signed by any other key is refused. Refusals and rollbacks are reported as health
flags (`agent_update_refused`, `agent_rollback`) while the farm still wants that version.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import requests

from contracts.payload_types import RELEASE_TYPE
from contracts.release_bundle import BUNDLE_PACKAGES
from signing import SignatureError
from signing.dsse import verify_envelope
from signing.keys import parse_public_key

log = logging.getLogger(__name__)

EXIT_UPDATE = 75  # the agent's "start me again from `current`" exit code
LAUNCHER_ENV = "ZOS_AGENT_LAUNCHER"  # set by the launcher; without it there is no one to restart
REFUSED_FLAG = "agent_update_refused"
ROLLBACK_FLAG = "agent_rollback"
MAX_BUNDLE_BYTES = 64 << 20
CHUNK = 1 << 16
TIMEOUT = 30.0


class UpdateRefused(Exception):
    """The release must not be installed (bad signature, hash or bundle); not retried."""


class UpdateDeferred(Exception):
    """The release could not be fetched now (network, ledger, not published yet): try later."""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _link_atomic(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


@dataclass(frozen=True)
class AgentHome:
    """The `<data>/agent` directory shared by the updater (in the agent) and the launcher."""

    root: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> "AgentHome":
        return cls(Path(data_dir) / "agent")

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    def _version_of(self, name: str) -> str | None:
        try:
            return PurePosixPath(os.readlink(self.root / name)).name
        except OSError:
            return None

    def current_version(self) -> str | None:
        return self._version_of("current")

    def previous_version(self) -> str | None:
        return self._version_of("previous")

    def current_dir(self) -> Path | None:
        version = self.current_version()
        return self.releases / version if version else None

    def _read(self, name: str) -> str | None:
        try:
            return (self.root / name).read_text().strip() or None
        except OSError:
            return None

    def trial(self) -> str | None:
        return self._read("trial")

    def reported(self) -> str | None:
        return self._read("reported")

    def confirm(self, version: str) -> None:
        """The agent of `version` has reported uptime (the launcher's proof that it works)."""
        if self.reported() != version:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.root / "reported", version)

    def switch(self, version: str) -> None:
        """Make `version` current (on trial), keeping the running one as `previous`."""
        running = self.current_version()
        _write_atomic(self.root / "trial", version)
        if running:
            _link_atomic(self.root / "previous", f"releases/{running}")
        else:
            (self.root / "previous").unlink(missing_ok=True)
        _link_atomic(self.root / "current", f"releases/{version}")

    def settle(self) -> None:
        """The trial release reported: it stays, and releases no longer needed are removed."""
        (self.root / "trial").unlink(missing_ok=True)
        keep = {self.current_version(), self.previous_version()}
        if self.releases.is_dir():
            for entry in self.releases.iterdir():
                if entry.name not in keep and not entry.name.startswith("."):
                    shutil.rmtree(entry, ignore_errors=True)

    def rollback(self, reason: str) -> str | None:
        """Go back to `previous` (or the image's agent); remember the failed version. Returns it."""
        failed = self.current_version()
        if failed:
            self.mark_failed(failed, ROLLBACK_FLAG, reason)
        previous = self.previous_version()
        if previous:
            _link_atomic(self.root / "current", f"releases/{previous}")
        else:
            (self.root / "current").unlink(missing_ok=True)
        (self.root / "previous").unlink(missing_ok=True)
        (self.root / "trial").unlink(missing_ok=True)
        return failed

    def failed(self) -> dict[str, dict]:
        try:
            value = json.loads((self.root / "failed.json").read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def mark_failed(self, version: str, flag: str, reason: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        failed = self.failed()
        failed[version] = {"flag": flag, "reason": reason}
        _write_atomic(self.root / "failed.json", json.dumps(failed, indent=1, sort_keys=True))


def _check_member(member: tarfile.TarInfo) -> PurePosixPath:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise UpdateRefused(f"bundle member {member.name!r} escapes the release directory")
    if path.parts[0] not in BUNDLE_PACKAGES:
        raise UpdateRefused(f"bundle member {member.name!r} is outside {BUNDLE_PACKAGES}")
    if not (member.isfile() or member.isdir()):
        raise UpdateRefused(f"bundle member {member.name!r} is not a plain file or directory")
    return path


def unpack_bundle(bundle: Path, target: Path, version: str) -> None:
    """Unpack into `target` (made whole by rename); only plain files under the known packages."""
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        with tarfile.open(bundle, mode="r:gz") as tar:
            for member in tar:
                path = staging.joinpath(*_check_member(member).parts)
                if member.isdir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with open(path, "wb") as out:
                    shutil.copyfileobj(source, out)
        init = staging / "nodeagent" / "__init__.py"
        if not init.is_file() or f'__version__ = "{version}"' not in init.read_text():
            raise UpdateRefused(f"the bundle's nodeagent does not say it is version {version}")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UpdateRefused(f"the bundle cannot be unpacked: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class Updater:
    """Called with every uptime reply; installs the desired release and asks for a restart."""

    def __init__(
        self,
        *,
        data_dir: Path,
        ledger_url: str,
        running_version: str,
        kernel_key: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.home = AgentHome.for_data_dir(data_dir)
        self.ledger_url = ledger_url.rstrip("/")
        self.running_version = running_version
        self.kernel_key = kernel_key
        self.session = session or requests.Session()
        self.desired: str | None = None

    def health(self) -> list[str]:
        """The flag of a desired release this node refused or rolled back, if any."""
        failure = self.home.failed().get(self.desired or "")
        return [failure["flag"]] if failure else []

    def on_reply(self, reply: dict) -> bool:
        """Handle one uptime reply; True when a new release is in place and the agent must exit."""
        self.home.confirm(self.running_version)
        desired = (reply.get("desired") or {}).get("agent_version")
        self.desired = desired or None
        if not desired or desired == self.running_version or desired in self.home.failed():
            return False
        try:
            self.install(desired)
        except UpdateDeferred as exc:
            log.warning("agent %s not installed yet: %s; trying again later", desired, exc)
            return False
        except UpdateRefused as exc:
            log.error("agent release %s refused: %s", desired, exc)
            self.home.mark_failed(desired, REFUSED_FLAG, str(exc))
            return False
        log.info("agent %s installed; restarting into it", desired)
        return True

    def release_key(self):
        """The pinned release key: from the kernel command line, else pinned on first contact."""
        pinned = self.home.root / "release.pub"
        if self.kernel_key:
            key = parse_public_key(self.kernel_key)
            if not pinned.exists() or pinned.read_text().strip() != self.kernel_key:
                self.home.root.mkdir(parents=True, exist_ok=True)
                _write_atomic(pinned, self.kernel_key)
            return key
        if pinned.exists():
            return parse_public_key(pinned.read_text().strip())
        published = self._get_json("/api/v1/releases/key").get("public_key", "")
        key = parse_public_key(published)
        self.home.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(pinned, published)
        log.warning("release key %s pinned on first contact with the ledger", published)
        return key

    def _get_json(self, path: str) -> dict:
        try:
            response = self.session.get(self.ledger_url + path, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise UpdateDeferred(f"GET {path}: {exc}") from None
        if response.status_code != 200:
            raise UpdateDeferred(f"GET {path}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise UpdateDeferred(f"GET {path}: not JSON") from None

    def statement(self, version: str) -> dict:
        """The release's signed {version, sha256, size}, verified with the pinned key."""
        release = self._get_json(f"/api/v1/releases/{version}")
        try:
            key = self.release_key()
            payload, _ = verify_envelope(release.get("envelope"), RELEASE_TYPE, [key])
            statement = json.loads(payload)
        except SignatureError as exc:
            raise UpdateRefused(f"signature check failed: {exc.message}") from None
        except ValueError:
            raise UpdateRefused("the signed statement is not JSON") from None
        if not isinstance(statement, dict) or statement.get("version") != version:
            raise UpdateRefused(f"the signed statement is not for version {version}")
        size = statement.get("size")
        if not isinstance(size, int) or not 0 < size <= MAX_BUNDLE_BYTES:
            raise UpdateRefused(f"the signed statement gives a bad size {size!r}")
        return statement

    def _download(self, version: str, statement: dict, dst: Path) -> None:
        path = f"/api/v1/releases/{version}/bundle"
        digest, size = hashlib.sha256(), 0
        try:
            with self.session.get(self.ledger_url + path, timeout=TIMEOUT, stream=True) as reply:
                if reply.status_code != 200:
                    raise UpdateDeferred(f"GET {path}: HTTP {reply.status_code}")
                with open(dst, "wb") as out:
                    for chunk in reply.iter_content(CHUNK):
                        size += len(chunk)
                        if size > statement["size"]:
                            raise UpdateRefused(f"the bundle is larger than {statement['size']}")
                        digest.update(chunk)
                        out.write(chunk)
        except requests.RequestException as exc:
            raise UpdateDeferred(f"GET {path}: {exc}") from None
        if digest.hexdigest() != statement.get("sha256") or size != statement["size"]:
            raise UpdateRefused(
                f"the bundle's sha256 {digest.hexdigest()} ({size} bytes) is not the signed "
                f"{statement.get('sha256')} ({statement['size']} bytes)"
            )

    def install(self, version: str) -> Path:
        """Verify and unpack `version` beside the running agent, then switch `current` to it."""
        if "/" in version or version.startswith("."):
            raise UpdateRefused(f"{version!r} is not a release version")
        statement = self.statement(version)
        self.home.releases.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{version}-", suffix=".tar.gz", dir=self.home.root)
        os.close(fd)
        bundle = Path(name)
        try:
            self._download(version, statement, bundle)
            target = self.home.releases / version
            unpack_bundle(bundle, target, version)
        finally:
            bundle.unlink(missing_ok=True)
        self.home.switch(version)
        return target


def updater_for(data_dir: Path, ledger_url: str, extra: dict[str, str]) -> Updater | None:
    """An updater when the agent runs under the launcher (nobody else would restart it)."""
    from nodeagent import __version__

    if not os.environ.get(LAUNCHER_ENV):
        return None
    with contextlib.suppress(OSError):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    return Updater(
        data_dir=data_dir,
        ledger_url=ledger_url,
        running_version=__version__,
        kernel_key=extra.get("release_key") or None,
    )
