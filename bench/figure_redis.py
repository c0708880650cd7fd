"""Line R: the same flow in-process (embedded workers, in-memory layer) and scaled out (Redis + two workers).

`compare_inprocess_and_redis_workers` starts a private redis-server on a free loopback port (no
persistence), a second Tileflow server with REDIS_URL set (it places each run on a worker: only the
compressed input and the encoded output cross Redis), and two `manage.py runworker tileflow.lane.default
--threads 1` processes: two step threads in all, as the embedded server has one per core on this
2-core machine. Runs alternate between the two servers on the 24 MP JPEG chain.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import ExitStack

from measure import Figure, alternate, fmt_seconds, free_port, log, median
from session import FLOWS, BenchSession, check_image, standalone
from tileflow_server import ROOT, VENV_BIN, TileflowServer

NAME = "scale-out: total of /run with Redis + 2 worker processes ÷ in-process (24 MP JPEG chain)"
WORKERS = 2


def start_redis(stack: ExitStack) -> str:
    """Start a throwaway redis-server on a free loopback port (stopped with `stack`); return its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed (scripts/system-deps.sh installs it)")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(_stop, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not answer PING within 20 s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def compare_inprocess_and_redis_workers(session: BenchSession, workers: int = WORKERS) -> list[Figure]:
    """Return line R: Redis-and-workers total ÷ in-process total, with both first-byte times."""
    photo = session.photo("24mp")
    with ExitStack() as stack:
        log(f"line R: starting redis-server, a Redis-backed Tileflow server and {workers} workers")
        redis_url = start_redis(stack)
        scaled = stack.enter_context(TileflowServer(env={"REDIS_URL": redis_url}))
        for _ in range(workers):
            worker = subprocess.Popen(
                [str(VENV_BIN / "python"), "manage.py", "runworker", "--threads", "1", "tileflow.lane.default"],
                cwd=ROOT,
                env=scaled.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(_stop, worker)
        scaled_flow = scaled.create_flow(FLOWS["chain-jpeg"])
        local: list[tuple[float, float]] = []
        remote: list[tuple[float, float]] = []

        def run_local() -> None:
            timing = session.run("chain-jpeg", photo, (3000, 2000))
            local.append((timing.first_byte, timing.total))

        def run_remote() -> None:
            timing = scaled.run(scaled_flow, photo)
            check_image(timing.body, (3000, 2000))
            remote.append((timing.first_byte, timing.total))

        log("line R: warm-up")
        run_local()
        run_remote()
        local.clear()
        remote.clear()
        alternate(session.runs, run_local, run_remote)
    local_total, remote_total = median([t for _, t in local]), median([t for _, t in remote])
    local_first, remote_first = median([f for f, _ in local]), median([f for f, _ in remote])
    log(f"line R: in-process {fmt_seconds(local_total)}, Redis + {workers} workers {fmt_seconds(remote_total)}")
    return [
        Figure(
            "R",
            NAME,
            remote_total / local_total,
            "<= 1.3",
            f"Redis {fmt_seconds(remote_total)} (first byte {fmt_seconds(remote_first)}); in-process "
            f"{fmt_seconds(local_total)} (first byte {fmt_seconds(local_first)})",
            session.runs,
        ),
        Figure(
            "R1",
            "scale-out: first byte of /run with Redis + 2 worker processes ÷ in-process (same)",
            remote_first / local_first,
            "<= 1.5",
            f"Redis {fmt_seconds(remote_first)}; in-process {fmt_seconds(local_first)}",
            session.runs,
        ),
    ]


measure = compare_inprocess_and_redis_workers

if __name__ == "__main__":
    standalone(measure)
