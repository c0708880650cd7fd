"""Figure M: the memory budget under a pixel flood. Three users each send four 144 MP PNGs of ~450 KB at once
(12 runs) to a server whose TILEFLOW_MEMORY_BUDGET_BYTES is set; every run must succeed (queued meanwhile,
never failed), and the server's peak resident set above its idle one is compared with the budget.

The ratio is (peak VmRSS - VmRSS before the flood) ÷ budget, from a 5 ms sampler and VmHWM; the constant
beyond the budget (allocator slack, the event loop's buffers) is reported in MiB. The server is fresh (one
small warm-up run), so VmHWM is the flood's own peak. Runnable alone: `python bench/figure_memory_budget.py`.
"""

from __future__ import annotations

import concurrent.futures
import io
import time
from pathlib import Path

from measure import Figure, RssSampler, log, proc_status_kb
from PIL import Image, ImageDraw
from session import FLOWS, BenchSession, standalone
from tileflow_server import TileflowServer

MIB = 1024 * 1024
BUDGET = 2560 * MIB  # room for two of these runs at a time (each is estimated at ~930 MiB)
USERS = ("ada", "grace", "edsger")
RUNS_PER_USER = 4
SIDE = 12000  # 144 MP


def flat_png(side: int) -> bytes:
    """Return a side × side PNG of flat colour with stripes: 144 MP compress to ~450 KB."""
    image = Image.new("RGB", (side, side), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    for x in range(0, side, 500):
        draw.rectangle((x, 0, x + 120, side), fill=(220, 200, 30))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def user_tokens(server: TileflowServer) -> dict[str, str]:
    """Create the three users and return a token for each."""
    tokens = {}
    for name in USERS:
        server.manage(
            "shell",
            "-c",
            f"from django.contrib.auth import get_user_model; get_user_model().objects.create_user({name!r})",
        )
        tokens[name] = server.manage("createtoken", name).strip().splitlines()[-1]
    return tokens


def as_user(server: TileflowServer, token: str) -> TileflowServer:
    """Return a view of `server` that sends `token` (its requests and runs are that user's)."""
    view = TileflowServer.__new__(TileflowServer)
    view.__dict__.update(server.__dict__)
    view.token = token
    return view


def start(server: TileflowServer, flow_id: str, photo: Path) -> tuple[str | None, str]:
    """Start a background run; return (its id, "") or (None, why it was refused)."""
    try:
        return server.start_execution(flow_id, photo), ""
    except RuntimeError as refused:
        return None, str(refused)


def flood(server: TileflowServer, tokens: dict[str, str], photo: Path) -> dict:
    """Send every user's runs at once; wait for all of them; return what happened."""
    users = {name: as_user(server, token) for name, token in tokens.items()}
    flows = {name: view.create_flow(FLOWS["chain-jpeg"]) for name, view in users.items()}
    jobs = [(name, index) for index in range(RUNS_PER_USER) for name in USERS]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: (job[0], *start(users[job[0]], flows[job[0]], photo)), jobs))
    started = [(name, execution_id) for name, execution_id, _ in answers if execution_id]
    refused = [reason for _, execution_id, reason in answers if not execution_id]
    deadline = time.monotonic() + 900
    ended: dict[str, dict] = {}
    max_queued = 0
    while len(ended) < len(started) and time.monotonic() < deadline:
        states = {execution_id: users[name].execution(execution_id) for name, execution_id in started}
        max_queued = max(max_queued, sum(1 for state in states.values() if state["status"] == "queued"))
        ended = {key: state for key, state in states.items() if state["status"] in ("succeeded", "failed", "cancelled")}
        time.sleep(0.5)
    return {"ended": ended, "refused": refused, "started": len(started), "max_queued": max_queued}


def most_at_once(executions: list[dict]) -> int:
    """Return how many of the runs were running at the same moment, at most (from their timestamps)."""
    moments = []
    for execution in executions:
        if execution["started_at"] and execution["finished_at"]:
            moments += [(execution["started_at"], 1), (execution["finished_at"], -1)]
    running = best = 0
    for _, change in sorted(moments, key=lambda item: (item[0], item[1])):
        running += change
        best = max(best, running)
    return best


def measure(session: BenchSession) -> list[Figure]:
    """Return figure M (peak working memory of a 12-run 144 MP flood ÷ the budget)."""
    photo = session.server.workdir / "flat-144mp.png"
    photo.write_bytes(flat_png(SIDE))
    size_kb = photo.stat().st_size // 1024
    log(f"figure M: 12 runs of a {SIDE}x{SIDE} PNG of {size_kb} KB, budget {BUDGET // MIB} MiB")
    with TileflowServer(env={"TILEFLOW_MEMORY_BUDGET_BYTES": str(BUDGET)}) as server:
        tokens = user_tokens(server)
        warm = as_user(server, tokens[USERS[0]])
        warm.run(warm.create_flow(FLOWS["chain-jpeg"]), session.photo("2mp"))
        sampler = RssSampler(server.pid)
        started = time.perf_counter()
        with sampler.sampling():
            result = flood(server, tokens, photo)
        seconds = time.perf_counter() - started
        hwm = proc_status_kb(server.pid, "VmHWM") * 1024
    baseline = sampler.baseline_kb * 1024
    peak = max(sampler.peak_kb * 1024, hwm)
    working = peak - baseline
    executions = list(result["ended"].values())
    statuses = [execution["status"] for execution in executions]
    failures = len(result["refused"]) + sum(1 for status in statuses if status != "succeeded")
    failures += result["started"] - len(executions)  # runs that did not end in time
    at_once = most_at_once(executions)
    constant = (working - BUDGET) / MIB
    log(
        f"figure M: {statuses.count('succeeded')}/12 succeeded in {seconds:.0f} s, at most {at_once} running and "
        f"{result['max_queued']} queued at once; idle {baseline / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB"
    )
    return [
        Figure(
            "M",
            "peak working memory of the server ÷ TILEFLOW_MEMORY_BUDGET_BYTES, 3 users × 4 concurrent 144 MP PNGs "
            "(resize 0.5, watermark, JPEG q85); no run may fail",
            working / BUDGET,
            "<= 1.1",
            f"+{working / MIB:.0f} MiB over an idle {baseline / MIB:.0f} MiB (process peak {peak / MIB:.0f} MiB) "
            f"with a {BUDGET // MIB} MiB budget: {constant:+.0f} MiB beyond it; "
            f"{statuses.count('succeeded')}/12 succeeded, at most {at_once} running and {result['max_queued']} "
            f"queued at once, {seconds:.0f} s in all",
            1,
            failures=failures,
            notes=[
                f"figure M: upload {size_kb} KB each; refused: {result['refused'] or 'none'}; the issue "
                "measured 6+ GB for the same flood without a budget"
            ],
        )
    ]


if __name__ == "__main__":
    standalone(measure)
