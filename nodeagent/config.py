"""Agent settings from command-line flags, falling back to the kernel command line (`zos.*`).

In the boot image the agent is started with no flags and everything comes from /proc/cmdline;
on a developer's machine the flags say the same thing.
"""

import argparse
import json
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nodeagent.gateway import ProxySettings

DEFAULT_DATA_DIR = Path("/var/cache/zos")
KERNEL_CMDLINE = Path("/proc/cmdline")
DEFAULT_RUNNERS = 2
MAX_RUNNERS = 64
# Each runner's soft address-space limit: a runaway script fails with "out of memory" instead of
# pushing the node into the OOM killer. A runner maps ~450 MiB before any job (mostly reserved
# stack and malloc arenas), so 1024 leaves a script roughly half a GiB. 0 turns it off.
DEFAULT_RUNNER_MEMORY_MB = 1024
RUNNER_MEMORY_ENV = "ZOS_RUNNER_MEMORY_MB"
STATE_FILE = "agent-state.json"
_KNOWN_KERNEL_KEYS = {
    "ledger",
    "farm",
    "enroll",
    "data",
    "redis",
    "runners",
    "runner_memory",
    "mycelium",
    "mycelium_peers",
    "netns",
    "hypervisor",
    "image_cache_gb",
    "gateway_http_port",
    "gateway_https_port",
    "gateway_acme_email",
    "gateway_acme_ca",
}
HYPERVISORS = ("qemu", "cloud-hypervisor")


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class AgentConfig:
    ledger_url: str
    farm_id: int
    data_dir: Path
    enroll_token: str | None = None
    mirrors: tuple[Path, ...] = ()
    storage: tuple[Path, ...] = ()
    facts_overrides: dict | None = None
    image_version: str = ""
    redis_url: str | None = None  # None: the agent starts its own redis-server
    runners: int = DEFAULT_RUNNERS
    runner_memory_mb: int = DEFAULT_RUNNER_MEMORY_MB  # 0: runners have no memory limit
    mycelium: str | None = None  # the mycelium binary, or "local"; None: no overlay on this node
    mycelium_peers: tuple[str, ...] = ()
    mycelium_api: str = "127.0.0.1:8989"
    workload_netns: str | None = None  # taps, overlay bridge and VMs live in this namespace
    hypervisor: str = "qemu"
    image_cache_gb: int = 0  # the image cache's limit; 0: a quarter of the pool
    gateway_proxy: ProxySettings = field(default_factory=ProxySettings)  # used on gateways only
    extra: dict[str, str] = field(default_factory=dict)


def parse_kernel_cmdline(text: str) -> dict[str, str]:
    """Return the `zos.<name>=<value>` arguments as {name: value}."""
    values: dict[str, str] = {}
    for word in shlex.split(text):
        name, sep, value = word.partition("=")
        if sep and name.startswith("zos."):
            values[name.removeprefix("zos.")] = value
    return values


def _load_facts_overrides(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        overrides = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--facts {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(overrides, dict):
        raise ConfigError(f"--facts {path}: must hold a JSON object")
    return overrides


def _saved_farm(data_dir: Path) -> int | None:
    """The farm this node registered with last time: a restart need not be told again."""
    try:
        farm = json.loads((data_dir / STATE_FILE).read_text()).get("farm")
    except (OSError, ValueError, AttributeError):
        return None
    return farm if type(farm) is int else None


def _runners(value: object) -> int:
    try:
        count = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(f"runners must be a number, got {value!r}") from None
    if not 1 <= count <= MAX_RUNNERS:
        raise ConfigError(f"runners must be between 1 and {MAX_RUNNERS}, got {count}")
    return count


def _runner_memory(value: object) -> int:
    try:
        megabytes = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(f"runner memory must be a number of MiB, got {value!r}") from None
    if megabytes < 0 or 0 < megabytes < 256:
        raise ConfigError(
            f"runner memory must be 0 (no limit) or at least 256 MiB, got {megabytes}"
        )
    return megabytes


def _redis_url(value: str | None) -> str | None:
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"redis URL {value!r} must start with redis://, rediss:// or unix://")
    return value or None


def _mycelium(value: str | None) -> str | None:
    """An explicit binary (or "off", or "local": a node-local network, nodeagent/overlay.py),
    else `mycelium` when it is installed."""
    if value == "off":
        return None
    if value == "local":
        return value
    if value:
        if shutil.which(value) is None:
            raise ConfigError(f"mycelium binary {value!r} not found (or pass --mycelium off)")
        return value
    return shutil.which("mycelium")


def _hypervisor(value: str | None) -> str:
    value = value or "qemu"
    if value not in HYPERVISORS:
        raise ConfigError(f"hypervisor must be one of {', '.join(HYPERVISORS)}, got {value!r}")
    return value


def _image_cache_gb(value: object) -> int:
    try:
        gigabytes = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(f"image cache size must be a number of GiB, got {value!r}") from None
    if gigabytes < 0:
        raise ConfigError(
            f"image cache size must be 0 (a quarter of the pool) or more, got {value}"
        )
    return gigabytes


def _port(what: str, value: object) -> int:
    try:
        port = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a port number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{what} must be a port from 1 to 65535, got {port}")
    return port


def _gateway_proxy(args: argparse.Namespace, kernel: Mapping[str, str]) -> ProxySettings:
    """How the proxy listens and gets certificates if the ledger makes this node a gateway."""

    def pick(name: str, default: object) -> object:
        given = getattr(args, name, None)
        return given if given is not None else kernel.get(name, default)

    return ProxySettings(
        http_port=_port("gateway HTTP port", pick("gateway_http_port", 80)),
        https_port=_port("gateway HTTPS port", pick("gateway_https_port", 443)),
        acme_email=str(pick("gateway_acme_email", "")),
        acme_ca=str(pick("gateway_acme_ca", "")),
    )


def build_config(
    args: argparse.Namespace,
    cmdline_path: Path = KERNEL_CMDLINE,
    environ: Mapping[str, str] = os.environ,
) -> AgentConfig:
    try:
        kernel = parse_kernel_cmdline(cmdline_path.read_text())
    except OSError:
        kernel = {}
    ledger = args.ledger or kernel.get("ledger")
    farm = args.farm if args.farm is not None else kernel.get("farm")
    if not ledger:
        raise ConfigError("no ledger URL: pass --ledger URL or boot with zos.ledger=URL")
    if not ledger.startswith(("http://", "https://")):
        raise ConfigError(f"ledger URL {ledger!r} must start with http:// or https://")
    data_dir = Path(args.data or kernel.get("data") or DEFAULT_DATA_DIR)
    if farm is None:
        farm = _saved_farm(data_dir)
    if farm is None:
        raise ConfigError("no farm: pass --farm ID or boot with zos.farm=ID")
    try:
        farm_id = int(farm)
    except ValueError:
        raise ConfigError(f"farm must be a number, got {farm!r}") from None
    runners = getattr(args, "runners", None)
    runner_memory = getattr(args, "runner_memory", None)
    if runner_memory is None:
        runner_memory = environ.get(RUNNER_MEMORY_ENV) or kernel.get(
            "runner_memory", DEFAULT_RUNNER_MEMORY_MB
        )
    return AgentConfig(
        ledger_url=ledger.rstrip("/"),
        farm_id=farm_id,
        data_dir=data_dir,
        enroll_token=args.enroll or kernel.get("enroll") or None,
        mirrors=tuple(Path(m) for m in args.mirror),
        storage=tuple(Path(s) for s in args.storage) or (data_dir,),
        facts_overrides=_load_facts_overrides(args.facts),
        image_version=kernel.get("version", ""),
        redis_url=_redis_url(getattr(args, "redis_url", None) or kernel.get("redis")),
        runners=_runners(
            runners if runners is not None else kernel.get("runners", DEFAULT_RUNNERS)
        ),
        runner_memory_mb=_runner_memory(runner_memory),
        mycelium=_mycelium(getattr(args, "mycelium", None) or kernel.get("mycelium")),
        mycelium_peers=tuple(getattr(args, "mycelium_peer", None) or ())
        or tuple(p for p in kernel.get("mycelium_peers", "").split(",") if p),
        mycelium_api=getattr(args, "mycelium_api", None) or "127.0.0.1:8989",
        workload_netns=getattr(args, "workload_netns", None) or kernel.get("netns") or None,
        hypervisor=_hypervisor(getattr(args, "hypervisor", None) or kernel.get("hypervisor")),
        image_cache_gb=_image_cache_gb(
            getattr(args, "image_cache_gb", None) or kernel.get("image_cache_gb", 0)
        ),
        gateway_proxy=_gateway_proxy(args, kernel),
        extra={k: v for k, v in kernel.items() if k not in _KNOWN_KERNEL_KEYS},
    )
