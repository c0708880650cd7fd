"""Nothing left behind, through a real Daphne: a server killed mid-run loses the run's partial output when it
starts again, and start-up removes files under MEDIA_ROOT that no execution owns (and only those)."""

from __future__ import annotations

import io
import json
import os
import time

from PIL import Image

from tests.support.http import Client, multipart, wait_status
from tests.support.services import live_console

SLOW = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "wait", "type": "slow", "params": {"seconds": 0.3}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "wait"}, {"from": "wait", "to": "out"}],
}


def test_a_killed_server_leaves_nothing_once_it_is_back(tmp_path):
    picture = io.BytesIO()
    Image.new("RGB", (1024, 1536), (200, 100, 50)).save(picture, "PNG")
    with live_console(tmp_path / "console", TILEFLOW_STEP_MODULES="tests.scale.slow_steps") as console:
        client = Client(console.url, console.auth)
        status, flow = client.json("POST", "/api/flows", {"name": "slow", "graph": SLOW})
        assert status == 201, flow
        body, content_type = multipart({"image": ("p.png", picture.getvalue())})
        status, _, answer = client.request(
            "POST", f"/api/flows/{flow['id']}/executions", body, {"Content-Type": content_type}
        )
        assert status == 201, answer
        execution_id = json.loads(answer)["id"]
        media = tmp_path / "console" / "media"
        partial = media / "outputs" / execution_id / "out.png"
        deadline = time.monotonic() + 30
        while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert partial.exists(), "the run wrote no output band"
        assert wait_status(client, execution_id, {"running"})
        console.process.kill()  # no chance to clean up
        console.process.wait()
        assert partial.exists()

        (input_file,) = (media / "inputs").rglob("*.png")
        orphans = [media / "inputs" / "2020" / "lost.png", media / "outputs" / ("0" * 8) / "left.png"]
        strangers = [media / "batches" / "b1" / "inputs" / "kept.png", media / "notes.txt"]
        for path in orphans + strangers:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            os.utime(path, (time.time() - 3600,) * 2)

        console.start()
        execution = wait_status(client, execution_id, {"failed"}, timeout=30)
        assert execution["error"].startswith("interrupted"), execution
        deadline = time.monotonic() + 10
        while any(path.exists() for path in [partial, *orphans]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not partial.exists() and not partial.parent.exists()
        assert not any(path.exists() for path in orphans)
        assert input_file.exists(), "the input of a run that is still listed was removed"
        assert all(path.exists() for path in strangers)
        status, _, _ = client.request("GET", f"/api/executions/{execution_id}/input")
        assert status == 200
