"""Agent settings from command-line flags, falling back to the kernel command line (`zos.*`).

In the boot image the agent is started with no flags and everything comes from /proc/cmdline;
on a developer's machine the flags say the same thing.
"""

import argparse
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/cache/zos")
KERNEL_CMDLINE = Path("/proc/cmdline")


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


def build_config(args: argparse.Namespace, cmdline_path: Path = KERNEL_CMDLINE) -> AgentConfig:
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
    if farm is None:
        raise ConfigError("no farm: pass --farm ID or boot with zos.farm=ID")
    try:
        farm_id = int(farm)
    except ValueError:
        raise ConfigError(f"farm must be a number, got {farm!r}") from None
    data_dir = Path(args.data or kernel.get("data") or DEFAULT_DATA_DIR)
    return AgentConfig(
        ledger_url=ledger.rstrip("/"),
        farm_id=farm_id,
        data_dir=data_dir,
        enroll_token=args.enroll or kernel.get("enroll") or None,
        mirrors=tuple(Path(m) for m in args.mirror),
        storage=tuple(Path(s) for s in args.storage) or (data_dir,),
        facts_overrides=_load_facts_overrides(args.facts),
        image_version=kernel.get("version", ""),
        extra={k: v for k, v in kernel.items() if k not in {"ledger", "farm", "enroll", "data"}},
    )
