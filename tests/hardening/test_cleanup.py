"""Nothing lost, nothing leaked: temporary files go whatever the end of a run, a full disk fails a run
cleanly, and the production settings pass `manage.py check --deploy`."""

from __future__ import annotations

import io
import json
import os
import resource
import secrets
import signal

import pytest
from PIL import Image

from flows.models import Flow
from tests.support.runs import COMPRESS_AND_WATERMARK, TokenClient, image_bytes, read_stream, upload, wait_finished
from tests.support.services import manage, project_env

IDENTITY_PNG = {
    "name": "identity-png",
    "graph": {
        "nodes": [{"id": "in", "type": "source", "params": {}}, {"id": "out", "type": "output", "params": {}}],
        "edges": [{"from": "in", "to": "out"}],
    },
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_channel_layer")
async def test_upload_temp_files_are_gone_after_every_kind_of_end(user, token, settings, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
    settings.TILEFLOW = {**settings.TILEFLOW, "TILE_SIZE": 64}
    flow = await Flow.objects.acreate(owner=user, name="cw", graph=COMPRESS_AND_WATERMARK)
    http = TokenClient(token)
    big = image_bytes(1400, 1000, format="PNG")  # above FILE_UPLOAD_MAX_MEMORY_SIZE: spooled to disk
    assert len(big) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE

    succeeded = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(big, "big.png")})
    refused = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(os.urandom(len(big)), "noise.png")})
    assert refused.status_code == 400
    cancelled = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(big, "big.png")})
    await http.post(f"/api/executions/{cancelled.json()['id']}/cancel")
    middle = len(big) // 2  # the chunk structure holds (the upload is accepted), the pixel data does not
    broken = big[:middle] + bytes(4096) + big[middle + 4096 :]
    failed = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(broken, "broken.png")})
    streamed = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(big, "big.png")})
    await read_stream(streamed)

    ends = {}
    for response in (succeeded, cancelled, failed):
        ends[response.json()["id"]] = (await wait_finished(http, response.json()["id"]))["status"]
    ends[streamed["X-Execution-Id"]] = (await wait_finished(http, streamed["X-Execution-Id"]))["status"]
    assert list(ends.values()) == ["succeeded", "cancelled", "failed", "succeeded"]
    assert list(spool.iterdir()) == []
    outputs = settings.MEDIA_ROOT / "outputs"
    for execution_id, status in ends.items():
        left = sorted(path.name for path in (outputs / execution_id).glob("*"))
        assert (left != []) == (status == "succeeded"), (status, left)
        assert (outputs / execution_id).exists() == (status == "succeeded")  # not even an empty folder


def test_a_full_disk_fails_the_run_cleanly(tmp_path):
    """RLIMIT_FSIZE makes writes past 2 MB fail with EFBIG, as a full disk does: the run fails, nothing is left."""
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(IDENTITY_PNG))
    source = tmp_path / "noise.png"
    Image.frombytes("RGB", (1500, 1500), os.urandom(1500 * 1500 * 3)).save(source, compress_level=1)
    assert source.stat().st_size > 6_000_000  # the output, as incompressible, is as large
    target = tmp_path / "out" / "result.png"
    target.parent.mkdir()  # runflow writes into an existing folder only

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored across exec: write() raises OSError instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    env = project_env(tmp_path)
    result = manage(
        "runflow", str(flow), str(source), "-o", str(target), "--quiet",
        env=env, check=False, timeout=120, preexec_fn=small_disk,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("runflow:")]
    assert line == "runflow: output 'out' could not be written: [Errno 27] File too large"
    assert list(target.parent.iterdir()) == []  # neither the result nor the run's partial files


def test_the_same_run_succeeds_without_the_limit(tmp_path):
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(IDENTITY_PNG))
    source = tmp_path / "small.png"
    expected = Image.open(io.BytesIO(image_bytes(300, 200, format="PNG"))).convert("RGB")
    expected.save(source)
    target = tmp_path / "out" / "result.png"
    target.parent.mkdir()
    result = manage("runflow", str(flow), str(source), "-o", str(target), "--quiet", env=project_env(tmp_path))
    assert result.returncode == 0
    with Image.open(target) as written:
        assert written.tobytes() == expected.tobytes()


def production_env(tmp_path) -> dict[str, str]:
    return project_env(
        tmp_path,
        TILEFLOW_HTTPS="1",
        TILEFLOW_SECRET_KEY=secrets.token_urlsafe(60),
        TILEFLOW_DEBUG="0",
        TILEFLOW_ALLOWED_HOSTS="tileflow.example.com",
        TILEFLOW_CSRF_TRUSTED_ORIGINS="https://tileflow.example.com",
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path), check=False,
                    timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_https(tmp_path):
    env = production_env(tmp_path)
    del env["TILEFLOW_HTTPS"]
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, check=False, timeout=120)
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # no HSTS: the check does look at our settings
