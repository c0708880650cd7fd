"""A real, throwaway PostgreSQL server for tests: its own cluster on a free loopback port, stopped by PID.

PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` OS user
(Debian's package creates it) and every server command goes through `runuser -u postgres`; any
other user runs the server as itself. Authentication is scram-sha-256 with a password, as a real
deployment's DATABASE_URL would carry.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import free_port, wait_for_port

INSTALL_HINT = (
    "install PostgreSQL's server binaries: `sudo scripts/system-deps.sh` (Debian/Ubuntu: "
    "`sudo apt-get install postgresql`), or put a directory holding initdb and pg_ctl in TILEFLOW_PG_BIN"
)


def postgres_bin() -> Path:
    """Return the directory of initdb/pg_ctl/postgres; raise with what to install when there is none."""
    candidates = [os.environ.get("TILEFLOW_PG_BIN", "")]
    # Debian keeps the server binaries out of PATH, one directory per major version: newest first.
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name), reverse=True
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise RuntimeError(f"PostgreSQL is not installed (no initdb/pg_ctl found): {INSTALL_HINT}")


def _server_user() -> str | None:
    """Return the OS user to run the server as (None: ourselves); raise when root cannot switch to one."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise RuntimeError(
            "running as root, PostgreSQL must run as another user, but `runuser` is missing: "
            "install util-linux (`apt-get install util-linux`), or run the tests as a non-root user"
        )
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root, PostgreSQL must run as the `postgres` OS user, which does not exist: "
            f"{INSTALL_HINT} (the package creates the user), or run the tests as a non-root user"
        ) from None
    return "postgres"


class PostgresServer:
    """A PostgreSQL cluster of its own on 127.0.0.1:<free port>, with one database and its owner."""

    def __init__(self, *, database: str = "tileflow", user: str = "tileflow") -> None:
        self.database = database
        self.user = user
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.root: Path | None = None
        self.pid: int | None = None
        self._as: str | None = None
        self._bin: Path | None = None

    @property
    def url(self) -> str:
        return f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self._as, "--"] if self._as else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def start(self) -> None:
        """Create the cluster, start the server and create the database; return once it accepts logins."""
        self._bin = postgres_bin()
        self._as = _server_user()
        # A directory of its own under the system temp dir: pytest's tmp dirs are root-only (0700),
        # which the postgres user could not enter.
        self.root = Path(tempfile.mkdtemp(prefix="tileflow-pg-"))
        if self._as:
            entry = pwd.getpwnam(self._as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        if self._as:
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self._bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
            "--no-instructions",
        )
        password_file.unlink()
        # fsync off: a test cluster need not survive a power cut, and syncs would dominate migrate.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-o",
            options,
            "start",
        )
        self.pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        wait_for_port(self.port)
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        url = f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.database}" OWNER "{self.user}"')

    def log(self) -> str:
        path = self.root / "server.log" if self.root else None
        return path.read_text(errors="replace")[-4000:] if path and path.exists() else ""

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL by PID) and remove its files."""
        if self.pid is not None:
            try:
                self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            deadline = time.monotonic() + 5
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
