"""Lines P: runs placed on workers (Redis), measured against the same flows in-process.

P1  bytes through Redis per run ÷ (compressed input + output), from Redis' own `INFO stats`
    counters (total_net_input_bytes / total_net_output_bytes), 24 MP JPEG chain through `/run`;
P2  8 concurrent 6 MP runs: Redis + 2 one-thread workers ÷ in-process, in throughput;
P3  console CPU per run ÷ the run's total CPU (console + workers + Redis, from /proc);
P4  K = 1, 2, 4 workers each held to 0.4 core by a cgroup v1 CPU quota: throughput(K) ÷ K·throughput(1);
P5  on paper: throughput for 1-64 worker hosts from P1/P3's per-run costs and a `redis-benchmark`
    of the message sizes runs use (notes: the table, and what saturates first).

Line R (figure_redis.py) holds one 24 MP `/run`'s total and first byte against in-process.
Everything runs on this host: console, Redis and workers share its cores with the rest of the
machine, so ratios against baselines measured in the same run are what to read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import redis
from figure_redis import _stop, start_redis
from measure import Figure, fmt_seconds, log, median
from session import FLOWS, BenchSession, check_image, standalone
from tileflow_server import ROOT, VENV_BIN, TileflowServer

CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
QUOTA = float(os.environ.get("TILEFLOW_BENCH_HOST_CORES", "0.4"))  # of a core, per simulated host
PERIOD_US = 100_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class ScaledOut:
    """Redis, a Redis-backed console and one-thread workers (each in its own CPU cgroup if asked)."""

    def __init__(self, stack: ExitStack, workers: int, *, quota: float | None = None) -> None:
        self.redis_url = start_redis(stack)
        self.redis = redis.Redis.from_url(self.redis_url)
        stack.callback(self.redis.close)
        self.server = stack.enter_context(
            TileflowServer(env={"REDIS_URL": self.redis_url, "TILEFLOW_WORKER_RUNS": "1"})
        )
        self.workers: list[subprocess.Popen] = []
        for _ in range(workers):
            worker = subprocess.Popen(
                [str(VENV_BIN / "python"), "manage.py", "runworker", "--threads", "1", "tileflow.lane.default"],
                cwd=ROOT,
                env=self.server.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(_stop, worker)
            if quota is not None:
                limit_cpu(stack, worker.pid, quota)
            self.workers.append(worker)
        deadline = time.monotonic() + 60
        while len(list(self.redis.scan_iter(match="tileflow:worker:*"))) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not beat within 60 s")
            time.sleep(0.1)

    def redis_bytes(self) -> tuple[int, int]:
        stats = self.redis.info("stats")
        return stats["total_net_input_bytes"], stats["total_net_output_bytes"]

    def redis_pid(self) -> int:
        return int(self.redis.info("server")["process_id"])


def limit_cpu(stack: ExitStack, pid: int, cores: float) -> None:
    """Hold `pid` to `cores` of CPU with a cgroup v1 quota of its own (removed with `stack`)."""
    group = CGROUP_ROOT / f"tileflow-bench-{uuid.uuid4().hex[:12]}"
    group.mkdir()
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(int(cores * PERIOD_US)))
    (group / "cgroup.procs").write_text(str(pid))

    def remove() -> None:
        try:  # the worker is stopped first (callbacks run in reverse): the group is empty again
            (CGROUP_ROOT / "cgroup.procs").write_text(str(pid))
        except OSError:
            pass
        for _ in range(50):
            try:
                group.rmdir()
                return
            except OSError:
                time.sleep(0.1)

    stack.callback(remove)


def concurrently(count: int, work) -> float:
    """Run `work(i)` for i < count, all at once on threads; return the wall time."""
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            work(index)
        except BaseException as error:  # reported below, the figure fails
            errors.append(error)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def bytes_and_cpu(session: BenchSession) -> tuple[list[Figure], dict[str, float]]:
    """Return lines P1 and P3 and the per-run costs the paper table uses."""
    photo = session.photo("24mp")
    with ExitStack() as stack:
        log("line P1/P3: Redis, a Redis-backed console and 2 one-thread workers; 24 MP /run")
        cluster = ScaledOut(stack, 2)
        flow = cluster.server.create_flow(FLOWS["chain-jpeg"])
        check_image(cluster.server.run(flow, photo).body, (3000, 2000))  # warm-up
        pids = [cluster.server.pid, *(worker.pid for worker in cluster.workers), cluster.redis_pid()]
        bytes_before, cpu_before = cluster.redis_bytes(), [cpu_seconds(pid) for pid in pids]
        payload = 0
        for _ in range(session.runs):
            timing = cluster.server.run(flow, photo)
            check_image(timing.body, (3000, 2000))
            payload += photo.stat().st_size + len(timing.body)
        bytes_after, cpu_after = cluster.redis_bytes(), [cpu_seconds(pid) for pid in pids]
    into, out_of = bytes_after[0] - bytes_before[0], bytes_after[1] - bytes_before[1]
    used = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    console, workers, redis_cpu = used[0], sum(used[1:-1]), used[-1]
    runs = session.runs
    costs = {
        "payload": payload / runs,
        "redis_bytes": max(into, out_of) / runs,
        "console_cpu": console / runs,
        "worker_cpu": workers / runs,
        "redis_cpu": redis_cpu / runs,
    }
    mb = 1e6
    figures = [
        Figure(
            "P1",
            "bytes through Redis per run ÷ (compressed input + output), 24 MP JPEG chain",
            max(into, out_of) / payload,
            "<= 1.5",
            f"Redis in {into / runs / mb:.2f} MB, out {out_of / runs / mb:.2f} MB per run; "
            f"input + output {payload / runs / mb:.2f} MB",
            runs,
        ),
        Figure(
            "P3",
            "console CPU per run ÷ the run's total CPU (console + workers + Redis)",
            console / (console + workers + redis_cpu),
            "<= 0.1",
            f"per run: console {console / runs:.3f} s, workers {workers / runs:.3f} s, Redis {redis_cpu / runs:.3f} s",
            runs,
        ),
    ]
    return figures, costs


def concurrent_throughput(session: BenchSession, count: int = 8) -> Figure:
    """Return line P2: 8 concurrent 6 MP runs, Redis + 2 one-thread workers ÷ in-process, in throughput."""
    photo = session.photo("6mp")
    with ExitStack() as stack:
        log(f"line P2: {count} concurrent 6 MP runs, in-process and on Redis + 2 one-thread workers")
        cluster = ScaledOut(stack, 2)
        scaled_flow = cluster.server.create_flow(FLOWS["chain-jpeg"])
        local: list[float] = []
        remote: list[float] = []

        def local_batch() -> float:
            return concurrently(count, lambda _: session.run("chain-jpeg", photo, (1500, 1000)))

        def remote_batch() -> float:
            return concurrently(count, lambda _: check_image(cluster.server.run(scaled_flow, photo).body, (1500, 1000)))

        local_batch(), remote_batch()  # warm-up
        for _ in range(max(1, session.runs // 3)):
            local.append(local_batch())
            remote.append(remote_batch())
    local_wall, remote_wall = median(local), median(remote)
    return Figure(
        "P2",
        f"{count} concurrent 6 MP runs: throughput with Redis + 2 one-thread workers ÷ in-process",
        local_wall / remote_wall,
        ">= 0.9",
        f"Redis {count / remote_wall:.2f} runs/s ({fmt_seconds(remote_wall)} a batch); "
        f"in-process {count / local_wall:.2f} runs/s ({fmt_seconds(local_wall)})",
        len(local),
    )


def hosts_throughput(session: BenchSession, counts: tuple[int, ...] = (1, 2, 4)) -> list[Figure]:
    """Return line P4: K workers at QUOTA core each, throughput ÷ K × the one-worker throughput."""
    if not CGROUP_ROOT.is_dir() or not os.access(CGROUP_ROOT, os.W_OK):
        log("line P4: no writable cgroup v1 cpu hierarchy; skipped")
        return [Figure("P4", "K CPU-limited workers ÷ linear", None, "", "no cgroup v1 cpu controller", 0)]
    photo = session.photo("2mp")
    rates: dict[int, float] = {}
    for workers in counts:
        with ExitStack() as stack:
            log(f"line P4: {workers} worker(s) at {QUOTA} core each")
            cluster = ScaledOut(stack, workers, quota=QUOTA)
            flow = cluster.server.create_flow(FLOWS["chain-jpeg"])
            check_image(cluster.server.run(flow, photo).body, (866, 578))
            server = cluster.server

            def three_runs(_: int, server=server, flow=flow) -> None:
                for _ in range(3):
                    check_image(server.run(flow, photo).body, (866, 578))

            rates[workers] = 6 * workers / concurrently(2 * workers, three_runs)
    figures = []
    for workers in counts[1:]:
        figures.append(
            Figure(
                f"P4.{workers}",
                f"{workers} workers at {QUOTA} core each: throughput ÷ {workers} × one worker's (2 MP runs)",
                rates[workers] / (workers * rates[counts[0]]),
                ">= 0.85",
                f"{rates[workers]:.2f} runs/s; one worker {rates[counts[0]]:.2f} runs/s",
                1,
            )
        )
    return figures


def redis_benchmark(size: int) -> float:
    """Return SET requests per second of `size`-byte values on a throwaway Redis (redis-benchmark)."""
    with ExitStack() as stack:
        url = start_redis(stack)
        port = url.rsplit(":", 1)[1].split("/")[0]
        done = subprocess.run(
            [
                shutil.which("redis-benchmark") or "redis-benchmark",
                "-p",
                port,
                "-t",
                "set,get",
                "-d",
                str(size),
                "-n",
                "2000",
                "-c",
                "4",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    rates = [float(line.split(":")[1].split()[0]) for line in done.stdout.splitlines() if "requests per second" in line]
    return min(rates)


def paper_table(costs: dict[str, float], cores_per_host: int = 2) -> Figure:
    """Return line P5: worker hosts that one Redis and one console carry, and what saturates first."""
    chunk = 256 * 1024
    ops = redis_benchmark(chunk)
    redis_bytes_per_s = ops * chunk
    per_host = cores_per_host / costs["worker_cpu"]  # runs/s a host's cores conduct
    limits = {
        "Redis (bytes, measured SET/GET of 256 KB)": redis_bytes_per_s / costs["redis_bytes"],
        "Redis (its CPU per run)": 1 / costs["redis_cpu"] if costs["redis_cpu"] else float("inf"),
        f"one console ({cores_per_host} cores)": cores_per_host / costs["console_cpu"],
        "1 Gbit/s to Redis": 125e6 / costs["redis_bytes"],
        "10 Gbit/s to Redis": 1.25e9 / costs["redis_bytes"],
    }
    rows = []
    for hosts in (1, 2, 4, 8, 16, 32, 64):
        demand = hosts * per_host
        bottleneck, cap = min(limits.items(), key=lambda item: item[1])
        rate = min(demand, cap)
        rows.append(f"{hosts} hosts: {rate:.1f} runs/s" + (f" (bound by {bottleneck})" if demand > cap else ""))
    first, cap = min(limits.items(), key=lambda item: item[1])
    notes = [
        f"per 24 MP run: worker CPU {costs['worker_cpu']:.2f} s, console CPU {costs['console_cpu']:.3f} s, "
        f"Redis CPU {costs['redis_cpu']:.3f} s, Redis bytes {costs['redis_bytes'] / 1e6:.2f} MB each way",
        f"redis-benchmark, 256 KB values: {ops:.0f} requests/s ({redis_bytes_per_s / 1e6:.0f} MB/s)",
        "limits (runs/s): " + "; ".join(f"{name} {value:.1f}" for name, value in limits.items()),
        "worker hosts of 2 cores, one console: " + "; ".join(rows),
    ]
    return Figure(
        "P5",
        f"on paper: 2-core worker hosts one Redis + one console carry before {first} saturates",
        cap / per_host,
        "",
        f"{per_host:.2f} runs/s per host; {first} saturates at {cap:.1f} runs/s",
        1,
        notes=notes,
    )


def measure(session: BenchSession) -> list[Figure]:
    figures, costs = bytes_and_cpu(session)
    figures.append(concurrent_throughput(session))
    figures += hosts_throughput(session)
    figures.append(paper_table(costs))
    return figures


if __name__ == "__main__":
    standalone(measure)
