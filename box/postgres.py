"""A private PostgreSQL cluster in a directory of ours, on loopback: for the production profile
and for the test script's PostgreSQL pass.

Debian's server binaries (/usr/lib/postgresql/<version>/bin) are run directly, never the system
service. PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
and every server command runs as that user (setpriv, which execs: the supervisor's process is the
server itself). The cluster is created once (`ensure`) and reused; trust authentication is safe
only because the server listens on 127.0.0.1 and a socket in the cluster's own directory.

    python -m box.postgres start DIR PORT [--no-fsync]   # a throwaway server (scripts/test)
    python -m box.postgres stop DIR
"""

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

USER = "zos"  # the cluster's superuser
DATABASE = "zos"
PG_ROOT = Path("/usr/lib/postgresql")


class PostgresError(RuntimeError):
    """The server binaries are missing, or initdb / the server failed (the message says why)."""


def server_bin() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()],
    )
    if not versions:
        raise PostgresError(
            f"PostgreSQL server binaries not found under {PG_ROOT}; "
            "install the Debian package `postgresql` (scripts/setup.sh does)"
        )
    return versions[-1]


def _as_owner() -> list[str]:
    """The prefix that runs a command as the cluster's owner: `postgres` when we are root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


@dataclass
class Cluster:
    """`directory` holds the data directory (data/) and the server's unix socket."""

    directory: Path
    port: int
    fsync: bool = True  # off only for throwaway test servers

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def ensure(self) -> bool:
        """Create the cluster unless it exists; True if it was created now."""
        if (self.data / "PG_VERSION").exists():
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        result = subprocess.run(
            [
                *_as_owner(),
                str(server_bin() / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise PostgresError(f"initdb failed in {self.data}:\n{result.stdout}{result.stderr}")
        return True

    def options(self) -> list[str]:
        """Server settings as `-c name=value` pairs: loopback only, socket in our directory."""
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "max_connections": "200",
        }
        if not self.fsync:
            settings["fsync"] = "off"
        return [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]

    def server_argv(self) -> list[str]:
        """The server in the foreground, for a supervisor: SIGINT is its fast, clean shutdown
        (sessions end, a shutdown checkpoint is written)."""
        return [*_as_owner(), str(server_bin() / "postgres"), "-D", str(self.data), *self.options()]

    def start(self, log: Path) -> None:
        """Start the server in the background (pg_ctl) and wait until it accepts connections."""
        result = subprocess.run(
            [
                *_as_owner(),
                str(server_bin() / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(log),
                "-w",
                "-o",
                " ".join(self.options()),
                "start",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise PostgresError(f"PostgreSQL did not start:\n{result.stderr}{server_log}")

    def stop(self) -> None:
        """Stop a server started with start(); nothing happens if none runs."""
        pg_ctl = str(server_bin() / "pg_ctl")
        subprocess.run(
            [*_as_owner(), pg_ctl, "-D", str(self.data), "-m", "fast", "stop"],
            capture_output=True,
            check=False,
        )

    def create_database(self) -> bool:
        """Create the `zos` database unless it exists; True if it was created now."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True
        ) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
                return False
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        return True

    def answers(self) -> bool:
        """The server accepts connections (a supervisor's readiness check)."""
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user=USER, dbname="postgres", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m box.postgres", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="create the cluster if needed and start it")
    start.add_argument("directory", type=Path)
    start.add_argument("port", type=int)
    start.add_argument("--no-fsync", action="store_true", help="faster, for throwaway servers")
    stop = commands.add_parser("stop", help="stop the cluster's server (fast shutdown)")
    stop.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            cluster = Cluster(args.directory, args.port, fsync=not args.no_fsync)
            cluster.ensure()
            cluster.start(args.directory / "server.log")
            cluster.create_database()
        else:
            Cluster(args.directory, 0).stop()
    except PostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
