"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl on a free port on 127.0.0.1.

The binaries come from Debian's ``postgresql`` package (``.ci/run`` installs it); without them
the tests that need PostgreSQL skip, saying so. initdb and the server refuse to run as root, so as
root (CI) they run as ``nobody`` in a folder that user owns. The cluster is tuned for tests only
(no fsync): a crashed test run loses nothing that matters.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_USER = "postgres"


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pixelserve-pg-"))
        self.data = self.root / "data"
        self._as_other_user = os.geteuid() == 0
        self._databases: set[str] = set()

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_other_user:  # initdb/postgres refuse root
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}\n{done.stderr}")

    def start(self) -> "PostgresServer":
        if self._as_other_user:
            shutil.chown(self.root, "nobody")
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        self.up()
        return self

    def up(self) -> None:
        """Start the server on its data dir and port (again, after ``down``); returns once it accepts
        connections."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "-t", "60",
                  "start")

    def down(self) -> None:
        """Stop the server as an administrator would (fast: open connections are cut), keeping its data."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except Exception:  # noqa: BLE001 - already gone
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database (idempotent per name); its SQLAlchemy URL."""
        import psycopg

        if name not in self._databases:
            with psycopg.connect(f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres",
                                 autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{name}"')
            self._databases.add(name)
        return self.url(name)


_server: PostgresServer | None = None
_error: str | None = None


def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (None: they can)."""
    if find_bin_dir() is None:
        return "PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


def server() -> PostgresServer:
    """The one cluster of this test run, started on first use and stopped at exit."""
    global _server, _error
    if _server is None:
        if _error is not None:
            raise RuntimeError(_error)
        try:
            _server = PostgresServer(find_bin_dir()).start()
        except Exception as e:
            _error = f"could not start PostgreSQL: {e}"
            raise
        atexit.register(stop)
    return _server


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def database_for(path: Path | str) -> str:
    """The URL of a database belonging to ``path`` (a data dir): the same path, the same database,
    so a test that restarts a server on its data dir finds its records again."""
    name = "t_" + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:20]
    return server().create_database(name)
