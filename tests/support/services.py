"""Real services for tests: a redis-server and a Daphne console, started here and stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """A real redis-server on a free loopback port, with no persistence."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test` (scripts/system-deps.sh installs it)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def manage(*args: str, env: dict[str, str], check: bool = True, **options) -> subprocess.CompletedProcess:
    """Run a manage.py command of this project; on failure, the error shows its output."""
    done = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True, **options
    )
    if check and done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def project_env(workdir: Path, **extra: str) -> dict[str, str]:
    """Return an environment for a server or worker of our own, with its own database and media."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "TILEFLOW_MEDIA_ROOT": str(workdir / "media"),
            "TILEFLOW_SECRET_KEY": "tests-only-secret-key-" + "x" * 40,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class LiveConsole:
    """A real Tileflow console (Daphne) on a free port, with its own database, media and a user with a token."""

    def __init__(self, workdir: Path, *, username: str = "ada", password: str = "tileflow-live-pw", **env: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.username = username
        self.password = password
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = project_env(workdir, **env)
        self.token = ""
        self.process: subprocess.Popen | None = None
        self.log = workdir / "daphne.log"

    def setup(self) -> None:
        """Migrate the database and create the user and its token."""
        manage("migrate", "--noinput", env=self.env, timeout=180)
        manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.create_user({self.username!r}, password={self.password!r})",
            env=self.env,
            timeout=120,
        )
        self.token = manage("createtoken", self.username, env=self.env).stdout.strip().splitlines()[-1]

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [
                    str(Path(PYTHON).parent / "daphne"),
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "console.asgi:application",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.port, timeout=60, process=self.process)
        except (TimeoutError, RuntimeError) as error:
            raise RuntimeError(f"{error}\n{self.log.read_text()[-4000:]}") from None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def manage(self, *args: str, **options) -> subprocess.CompletedProcess:
        return manage(*args, env=self.env, **options)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def live_console(workdir: Path, **env: str) -> Iterator[LiveConsole]:
    console = LiveConsole(workdir, **env)
    console.setup()
    console.start()
    try:
        yield console
    finally:
        console.stop()
