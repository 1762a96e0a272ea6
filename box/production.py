"""The production profile's steps around its processes: create the database cluster once, and,
once PostgreSQL and Redis answer, migrate and bootstrap before the workers start.

`run` is what `python -m box --production` (scripts/up --production) does; tests/production
starts the profile through it too, so the tests exercise what the user runs.
"""

import json
import os
import subprocess
from collections.abc import Callable

from box.grid import (
    ROOT,
    ProductionSettings,
    production_services,
    production_workers,
    raise_fd_limit,
)
from box.supervisor import Component, Supervisor


class PrepareFailed(RuntimeError):
    """A preparation step (migrate, bootstrap) failed; the message holds its output."""


def _manage(settings: ProductionSettings, *args: str) -> str:
    result = subprocess.run(
        [settings.python, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env={**os.environ, **settings.env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PrepareFailed(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def prepare(settings: ProductionSettings) -> dict:
    """Create the database if needed, migrate it, collect static files, and bootstrap the
    operator, the local farm and a token for the local node. The bootstrap answer (password
    included) is also written to var_dir/bootstrap.json (0600) for scripts/up's banner."""
    settings.cluster.create_database()
    _manage(settings, "migrate", "--no-input", "-v0")
    _manage(settings, "collectstatic", "--no-input", "-v0")
    boot = json.loads(_manage(settings, "bootstrap_local"))
    boot.update(database_url=settings.env["DATABASE_URL"], redis_url=settings.env["REDIS_URL"])
    path = settings.var_dir / "bootstrap.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(boot, handle)
    return boot


def supervisor(settings: ProductionSettings) -> tuple[Supervisor, Callable[[], list[Component]]]:
    """The profile's supervisor (services first) and the step that starts the rest."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    settings.logs.mkdir(parents=True, exist_ok=True)
    settings.cluster.ensure()
    raise_fd_limit()  # inherited by every process the profile starts (node links are sockets)

    def then() -> list[Component]:
        boot = prepare(settings)
        return production_workers(settings, boot["farm"], boot["token"])

    return Supervisor(production_services(settings), cwd=ROOT), then


def run(settings: ProductionSettings) -> int:
    """Start the profile, supervise it until SIGTERM/SIGINT, stop it all (PostgreSQL last)."""
    box, then = supervisor(settings)
    try:
        return box.run(then)
    except PrepareFailed as exc:
        box.say(str(exc))
        return 1
