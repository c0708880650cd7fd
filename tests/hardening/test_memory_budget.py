"""The server-wide memory budget through a real Daphne: runs wait as "queued", a full queue answers 429
with Retry-After, a run larger than the whole budget is refused with the figures, and a queued run can be
cancelled."""

from __future__ import annotations

import concurrent.futures
import io
import json
import time

import pytest
from PIL import Image

from runtime.admission import MB, estimate_under
from runtime.api import limits
from runtime.decode import probe
from runtime.registry import load_builtin_steps
from tests.support.http import Client, multipart, wait_status
from tests.support.services import live_console

SLOW = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "wait", "type": "slow", "params": {"seconds": 0.25}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "wait"}, {"from": "wait", "to": "out"}],
}


def flat_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 60, 90)).save(buffer, "PNG")
    return buffer.getvalue()


SMALL = flat_png(1024, 1024)


def cost_of(data: bytes) -> int:
    load_builtin_steps()
    from tests.scale import slow_steps  # noqa: F401  (registers "slow" here as the server does)

    return estimate_under(limits(), SLOW, probe(io.BytesIO(data), 10**9)).total  # as the server plans it


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    budget = cost_of(SMALL) * 3 // 2  # room for one such run, not two
    with live_console(
        tmp_path_factory.mktemp("budget"),
        TILEFLOW_STEP_MODULES="tests.scale.slow_steps",
        TILEFLOW_MEMORY_BUDGET_BYTES=str(budget),
        TILEFLOW_MAX_QUEUED_RUNS="1",
    ) as console:
        yield console


@pytest.fixture(scope="module")
def client(console) -> Client:
    return Client(console.url, console.auth)


@pytest.fixture(scope="module")
def flow_id(client) -> str:
    status, flow = client.json("POST", "/api/flows", {"name": "slow", "graph": SLOW})
    assert status == 201, flow
    return flow["id"]


def start(client: Client, flow_id: str, data: bytes) -> tuple[int, dict[str, str], dict]:
    body, content_type = multipart({"image": ("flat.png", data)})
    status, headers, answer = client.request(
        "POST", f"/api/flows/{flow_id}/executions", body, {"Content-Type": content_type}
    )
    return status, headers, json.loads(answer)


def test_a_run_larger_than_the_whole_budget_is_refused_with_the_figures(client, flow_id):
    status, headers, body = start(client, flow_id, flat_png(3000, 3000))
    assert status == 413, body
    assert headers["Content-Type"] == "application/json"
    assert "needs about" in body["error"] and "MB of memory" in body["error"]
    assert f"budget of {cost_of(SMALL) * 3 // 2 // MB} MB" in body["error"]
    assert client.json("GET", f"/api/executions?flow={flow_id}")[1]["executions"] == []  # nothing stored


def test_runs_wait_for_memory_in_order_and_a_full_queue_answers_429(client, flow_id):
    status, _, first = start(client, flow_id, SMALL)
    assert status == 201, first
    wait_status(client, first["id"], {"running"})
    status, _, second = start(client, flow_id, SMALL)
    assert status == 201 and second["status"] == "queued", second
    status, headers, refused = start(client, flow_id, SMALL)
    assert status == 429, refused
    assert int(headers["Retry-After"]) >= 1
    assert "waiting for memory" in refused["error"]

    status, cancelled = client.json("POST", f"/api/executions/{second['id']}/cancel")
    assert status == 202 and cancelled["status"] == "cancelled", cancelled
    status, _, third = start(client, flow_id, SMALL)  # the cancelled one left the queue
    assert status == 201 and third["status"] == "queued", third

    first = wait_status(client, first["id"], {"succeeded", "failed", "cancelled"})
    third = wait_status(client, third["id"], {"succeeded", "failed", "cancelled"})
    assert (first["status"], third["status"]) == ("succeeded", "succeeded"), (first, third)
    assert third["started_at"] >= first["finished_at"]  # it waited for the memory the first one held
    assert wait_status(client, second["id"], {"cancelled"})["started_at"] is None


FLOOD = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}},
        {"id": "out", "type": "output", "params": {"format": "jpeg"}},
    ],
    "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "out"}],
}
FLOOD_PICTURE = flat_png(3000, 3000)
SLACK = 160 * MB  # what the server may hold beyond the budget: allocator and Python, measured ~60-120 MB


def most_at_once(executions: list[dict]) -> int:
    moments = sorted(
        [(execution["started_at"], 1) for execution in executions]
        + [(execution["finished_at"], -1) for execution in executions],
        key=lambda moment: (moment[0], moment[1]),
    )
    running = best = 0
    for _, change in moments:
        running += change
        best = max(best, running)
    return best


def resident(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_a_flood_of_runs_stays_within_the_budget_and_none_fails(tmp_path):
    load_builtin_steps()
    cost = estimate_under(limits(), FLOOD, probe(io.BytesIO(FLOOD_PICTURE), 10**9)).total
    budget = cost * 5 // 2  # two at a time
    # Without the budget all five would run at once (measured: +680 MB for six, four at once: +454 MB).
    with live_console(
        tmp_path / "flood", TILEFLOW_MEMORY_BUDGET_BYTES=str(budget), TILEFLOW_MAX_CONCURRENT_RUNS_PER_USER="8"
    ) as console:
        client = Client(console.url, console.auth)
        status, flow = client.json("POST", "/api/flows", {"name": "flood", "graph": FLOOD})
        assert status == 201, flow
        idle = resident(console.process.pid)
        peak = idle
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda _: start(client, flow["id"], FLOOD_PICTURE), range(5)))
            assert [status for status, _, _ in answers] == [201] * 5, answers
            pending = {body["id"] for _, _, body in answers}
            ended = []
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline:
                peak = max(peak, resident(console.process.pid))
                for execution_id in list(pending):
                    execution = client.json("GET", f"/api/executions/{execution_id}")[1]
                    if execution["status"] in ("succeeded", "failed", "cancelled") and execution["finished_at"]:
                        pending.discard(execution_id)
                        ended.append(execution)
                time.sleep(0.02)
    assert [execution["status"] for execution in ended] == ["succeeded"] * 5, [e["error"] for e in ended]
    assert most_at_once(ended) == 2
    assert peak - idle <= budget + SLACK, f"grew {(peak - idle) // MB} MB with a budget of {budget // MB} MB"
