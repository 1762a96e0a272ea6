"""What runs in the box, in start order: each component's command, log file and readiness check.

The control plane must answer before the node agent starts, so the agent's first registration
does not fail; the workers only need the database, which scripts/up has migrated. The node runs
under its own launcher (nodeagent.launcher), which restarts the agent after crashes and updates;
the box restarts the launcher.
"""

import functools
import os
import resource
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from box.postgres import Cluster
from box.supervisor import Component

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class GridSettings:
    port: int
    var_dir: Path
    farm: int
    enroll_token: str
    python: str = sys.executable
    node_args: list[str] = field(default_factory=list)  # the node's pool and namespace

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def control_plane_answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/v1/farms", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def components(settings: GridSettings) -> list[Component]:
    py, logs = settings.python, settings.var_dir / "log"
    manage = [py, str(ROOT / "manage.py")]
    return [
        Component(
            "control-plane",
            [
                py,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(settings.port),
                "grid.asgi:application",
            ],
            logs / "control-plane.log",
            ready=lambda: control_plane_answers(settings.url),
        ),
        Component("ledger-monitor", [*manage, "ledger_monitor"], logs / "ledger-monitor.log"),
        Component("coordinator", [*manage, "coordinator"], logs / "coordinator.log"),
        local_node(
            py,
            settings.url,
            settings.farm,
            settings.enroll_token,
            settings.var_dir,
            settings.node_args,
        ),
    ]


def local_node(
    python: str, url: str, farm: int, token: str, var_dir: Path, extra: Sequence[str] = ()
) -> Component:
    """The local node: its launcher enrolls it in the farm with the token, then keeps it up.
    `extra` are more agent flags (box/node_host.py: its pool and network namespace)."""
    return Component(
        "node",
        [
            python,
            "-m",
            "nodeagent.launcher",
            "run",
            "--ledger",
            url,
            "--farm",
            str(farm),
            "--enroll",
            token,
            "--data",
            str(var_dir / "node"),
            *extra,
        ],
        var_dir / "log" / "node.log",
    )


# The production profile (scripts/up --production, docs/deploy.md): the same processes a grid
# runs across machines, on this one: PostgreSQL and a control-plane Redis, several ASGI workers
# behind HAProxy, several coordinator workers, the ledger monitor and the local node.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ProductionSettings:
    port: int  # HAProxy's: the one address users and nodes are given
    var_dir: Path  # everything the profile keeps: database cluster, Redis, config, logs, node
    asgi_workers: int = 2
    coordinator_workers: int = 2
    asgi_server: str = "uvicorn"  # one of ASGI_SERVERS
    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. tests' faster timings
    postgres_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    worker_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.worker_ports:
            self.worker_ports = [free_port() for _ in range(self.asgi_workers)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.worker_ports[index]}"

    @property
    def logs(self) -> Path:
        return self.var_dir / "log"

    @property
    def cluster(self) -> Cluster:
        return Cluster(self.var_dir / "postgres", self.postgres_port)

    @property
    def haproxy_config(self) -> Path:
        return self.var_dir / "haproxy.cfg"

    @property
    def haproxy_socket(self) -> Path:
        """HAProxy's runtime API (admin level): drain a worker, read per-worker sessions."""
        return self.var_dir / "haproxy.sock"

    @property
    def env(self) -> dict[str, str]:
        """What every process of the profile reads its settings from (grid/settings.py)."""
        return {
            "ZOS_VAR_DIR": str(self.var_dir),
            "DATABASE_URL": self.cluster.url,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "ZOS_PUBLIC_URL": os.environ.get("ZOS_PUBLIC_URL", self.url),
            "PYTHONUNBUFFERED": "1",
            # Connections kept open per process (grid/settings.py); PostgreSQL's default
            # max_connections (100) fits 8 ASGI workers and the other processes.
            "ZOS_DB_POOL_MAX": "10",
            **self.extra_env,
        }


def redis_answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def production_services(settings: ProductionSettings) -> list[Component]:
    """What the workers need running first: the database and the control-plane Redis (Channels
    layer and the nonce replay cache), both on loopback, both keeping their data in var_dir."""
    cluster, logs = settings.cluster, settings.logs
    redis_dir = settings.var_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    return [
        Component(
            "postgres",
            cluster.server_argv(),
            logs / "postgres.log",
            ready=cluster.answers,
            stop_signal=signal.SIGINT,
        ),
        Component(
            "redis",
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(settings.redis_port),
                "--dir",
                str(redis_dir),
                # Nonces must survive a restart, or a replay window opens: append-only file.
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            logs / "redis.log",
            ready=lambda: redis_answers(settings.redis_port),
        ),
    ]


# The ASGI servers a production worker may run: both serve grid.asgi (HTTP and the Channels
# WebSockets) and take the client's address from HAProxy's X-Forwarded-For. uvicorn (uvloop and
# httptools, both C) is the default: measured on this machine's uptime ingest it costs about
# half of daphne's CPU per request (docs/performance.md); daphne stays available, and is what
# scripts/up's one-box profile runs.
ASGI_SERVERS = ("uvicorn", "daphne")


def asgi_worker_argv(server: str, python: str, port: int) -> list[str]:
    """The command of one ASGI worker listening on 127.0.0.1:`port`."""
    if server == "daphne":
        return [
            python,
            "-m",
            "daphne",
            "--proxy-headers",  # the client's address from HAProxy's X-Forwarded-For
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "grid.asgi:application",
        ]
    if server == "uvicorn":
        return [
            python,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "websockets-sansio",
            "--ws-max-size",
            str(1 << 20),  # daphne's limit too: a larger message drops its connection
            # uvicorn pings every WebSocket every 20 s by default: on node links that is
            # traffic on top of the nodes' own beats, which already tell a dead node within
            # ZOS_LINK_PING_INTERVAL + TIMEOUT (about 8 % of an idle worker's CPU at 2,500
            # links). A browser's feed that vanished without closing is still found in 1.5 min.
            "--ws-ping-interval",
            "60",
            "--ws-ping-timeout",
            "30",
            "--proxy-headers",  # trusted from 127.0.0.1 (HAProxy) only, uvicorn's default
            "--lifespan",
            "off",  # Channels' router has no lifespan handler
            "--no-access-log",  # HAProxy logs requests
            "--log-level",
            "warning",
            "grid.asgi:application",
        ]
    raise ValueError(f"unknown ASGI server {server!r}; choose one of {', '.join(ASGI_SERVERS)}")


def production_workers(settings: ProductionSettings, farm: int, token: str) -> list[Component]:
    """The ASGI workers, HAProxy in front of them, the coordinator workers, the ledger monitor
    and the local node (which reaches the control plane through HAProxy, as any node would)."""
    py, logs, env = settings.python, settings.logs, settings.env
    manage = [py, str(ROOT / "manage.py")]
    write_haproxy_config(settings)
    asgi = [
        Component(
            f"asgi-{i + 1}",
            asgi_worker_argv(settings.asgi_server, py, port),
            logs / f"asgi-{i + 1}.log",
            ready=functools.partial(control_plane_answers, settings.worker_url(i)),
            env=env,
        )
        for i, port in enumerate(settings.worker_ports)
    ]
    coordinators = [
        Component(
            f"coordinator-{i + 1}",
            [*manage, "coordinator"],
            logs / f"coordinator-{i + 1}.log",
            env=env,
        )
        for i in range(settings.coordinator_workers)
    ]
    node = local_node(py, settings.url, farm, token, settings.var_dir)
    node.env = env
    return [
        *asgi,
        Component(
            "haproxy",
            ["haproxy", "-db", "-f", str(settings.haproxy_config)],
            logs / "haproxy.log",
            ready=lambda: control_plane_answers(settings.url),
        ),
        *coordinators,
        Component(
            "ledger-monitor", [*manage, "ledger_monitor"], logs / "ledger-monitor.log", env=env
        ),
        node,
    ]


# Connections HAProxy takes at once: every node holds one link (a WebSocket, open for days) and
# users' requests come on top. Left unset, HAProxy derives it from its soft file-descriptor limit:
# about 500 under systemd's default of 1,024, so a grid of a few thousand nodes would queue most
# of its links. 20,000 is 5,000 links with room for a fleet four times that size; HAProxy needs
# two descriptors a connection and refuses to start when the hard limit is lower, so on a machine
# whose limit is lower the profile takes what fits (docs/deploy.md sets LimitNOFILE).
MAX_CONNECTIONS = 20_000


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit, for it and the processes it
    starts: each node link is a socket in an ASGI worker (and two in HAProxy), and the usual
    soft limit of 1,024 makes a worker refuse links (EMFILE) past about a thousand."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def haproxy_maxconn() -> int:
    """MAX_CONNECTIONS, or what HAProxy's descriptors allow under this process's hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return min(MAX_CONNECTIONS, (hard - 100) // 2)


RETRY = " hdr Retry-After 5"  # as the workers' own 503 (grid/api_errors.py)


def haproxy_config(settings: ProductionSettings) -> str:
    """HAProxy in front of the ASGI workers: HTTP and WebSockets (node links, live feeds).

    leastconn, because node links are long-lived: a worker's share is the links it holds, not
    the connections it was once given. A worker that fails two health checks takes no new
    connections; a connection it refuses is retried on another (redispatch), so a node whose
    worker died reconnects through the same address. A health check may take 5 s (`timeout
    check`): a worker busy with a reconnect storm's handshakes answered in over 2 s, was taken
    out, and sent every link to the other (a dead worker refuses the check's connection at
    once). `timeout tunnel` is a WebSocket's idle limit (the link pings every few seconds).

    The errors HAProxy answers itself are the API's JSON error body, not its HTML pages: while
    PostgreSQL is down every worker fails its health check, and clients then get HAProxy's 503,
    which must read like the workers' own (`{"error": "unavailable", ...}`, Retry-After).
    """
    maxconn = haproxy_maxconn()
    servers = "\n".join(
        f"    server asgi-{i + 1} 127.0.0.1:{port}" for i, port in enumerate(settings.worker_ports)
    )
    http_errors = "\n".join(
        f"    http-error status {code} content-type application/json{retry} string "
        f'\'{{"error": "{error}", "message": "{message}"}}\''
        for code, error, message, retry in (
            (502, "bad_gateway", "the worker serving this request failed; try again", ""),
            (503, "unavailable", "no worker can serve this for the moment; try again", RETRY),
            (504, "gateway_timeout", "the worker did not answer in time; try again", ""),
        )
    )
    return f"""# Generated by box/grid.py for the production profile; rewritten at every start.
global
    maxconn {maxconn}
    stats socket {settings.haproxy_socket} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    option forwardfor
    option redispatch 1
    retries 2
    timeout connect 2s
    timeout http-request 10s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout check 5s
    timeout client-fin 5s
{http_errors}

frontend zos
    bind 127.0.0.1:{settings.port}
    maxconn {maxconn}
    default_backend asgi

backend asgi
    balance leastconn
    option httpchk
    http-check send meth GET uri /api/v1/farms?limit=1 ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server check inter 2s fall 2 rise 1
{servers}
"""


def write_haproxy_config(settings: ProductionSettings) -> Path:
    settings.haproxy_config.write_text(haproxy_config(settings))
    return settings.haproxy_config
