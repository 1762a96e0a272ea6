"""Where the CLI finds its settings: flags, then environment, then config.toml, then defaults.

The config file (`~/.config/zos/config.toml`, or `$ZOS_CONFIG`) holds three string keys:
`url` (control plane), `token` (DRF API token) and `key` (the signing key's name or path).
It may hold a token, so it is written 0600 and read as-is: no other keys are accepted, which
turns a typo into an error instead of a silently ignored setting.
"""

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from client.errors import CliError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_KEY = "default"
CONFIG_KEYS = ("url", "token", "key")
ENV_VARS = {"url": "ZOS_URL", "token": "ZOS_TOKEN", "key": "ZOS_KEY"}


def config_home(env: Mapping[str, str]) -> Path:
    """`$XDG_CONFIG_HOME/zos`, else `~/.config/zos` (HOME taken from `env` so tests can move it)."""
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "zos"


def config_path(env: Mapping[str, str]) -> Path:
    explicit = env.get("ZOS_CONFIG")
    return Path(explicit).expanduser() if explicit else config_home(env) / "config.toml"


@dataclass(frozen=True)
class Config:
    url: str
    token: str | None
    key: str
    path: Path
    keys_dir: Path
    # Where each setting came from ("flag", "env ZOS_URL", "config <path>", "default").
    sources: dict[str, str] = field(default_factory=dict)

    def require_token(self) -> str:
        if not self.token:
            raise CliError(
                "no API token configured",
                hint='run `zos login`, or set ZOS_TOKEN, or put `token = "…"` in '
                f"{self.path} (docs/cli.md explains how to get a token)",
            )
        return self.token


def read_config_file(path: Path, *, required: bool) -> dict[str, str]:
    """The file's settings; a missing default file is fine, a missing `$ZOS_CONFIG` is not."""
    if not path.exists():
        if required:
            raise CliError(
                f"config file {path} does not exist",
                hint="fix ZOS_CONFIG / --config, or create the file (see docs/cli.md)",
            )
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CliError(
            f"config file {path} is not valid TOML: {exc}", hint=f"fix or delete {path}"
        ) from exc
    except OSError as exc:
        raise CliError(f"cannot read config file {path}: {exc.strerror}") from exc
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise CliError(
            f"unknown setting {', '.join(map(repr, unknown))} in {path}",
            hint=f"the config file accepts only: {', '.join(CONFIG_KEYS)}",
        )
    for name, value in data.items():
        if not isinstance(value, str):
            raise CliError(
                f"setting {name!r} in {path} must be a string",
                hint=f'write it as {name} = "…"',
            )
    return data


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    url: str | None = None,
    key: str | None = None,
    config_file: str | None = None,
    create: bool = False,
) -> Config:
    """Resolve every setting, highest precedence first: flag, environment, file, default.

    The token has no flag on purpose: command lines are visible to every user of the machine.
    `create` lets a command that writes the file (login) name one that does not exist yet.
    """
    env = os.environ if env is None else env
    if config_file:
        env = {**env, "ZOS_CONFIG": config_file}
    path = config_path(env)
    from_file = read_config_file(path, required=bool(env.get("ZOS_CONFIG")) and not create)
    flags = {"url": url, "token": None, "key": key}
    defaults = {"url": DEFAULT_URL, "token": None, "key": DEFAULT_KEY}
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for name in CONFIG_KEYS:
        for source, value in (
            ("flag", flags[name]),
            (f"env {ENV_VARS[name]}", env.get(ENV_VARS[name])),
            (f"config {path}", from_file.get(name)),
            ("default", defaults[name]),
        ):
            if value:
                values[name], sources[name] = value, source
                break
        else:
            values[name], sources[name] = None, "unset"
    resolved_url = _check_url(str(values["url"]), sources["url"])
    return Config(
        url=resolved_url,
        token=values["token"],
        key=str(values["key"]),
        path=path,
        keys_dir=config_home(env) / "keys",
        sources=sources,
    )


def _check_url(url: str, source: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise CliError(
            f"control plane URL {url!r} (from {source}) must start with http:// or https://",
            hint=f"e.g. --url {DEFAULT_URL}",
        )
    return url.rstrip("/")


def write_config_value(path: Path, name: str, value: str) -> None:
    """Set one key in the config file, keeping the others; the file is private (0600)."""
    if name not in CONFIG_KEYS:
        raise ValueError(f"unknown config key {name!r}")
    data = read_config_file(path, required=False)
    data[name] = value
    # JSON string escapes are valid TOML basic-string escapes.
    text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(data.items()))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
    os.replace(tmp, path)
