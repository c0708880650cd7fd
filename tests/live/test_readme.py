"""The README's first-hour commands, pasted as they stand, against a live server."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.support.http import Client
from tests.support.runs import image_bytes
from tests.support.services import PYTHON, ROOT, live_console

BLOCK = re.compile(r"<!-- first-hour:start -->\n```sh\n(.*?)```\n<!-- first-hour:end -->", re.S)


@pytest.fixture(scope="module")
def admin_console(tmp_path_factory):
    with live_console(tmp_path_factory.mktemp("readme"), username="admin") as console:
        yield console


def test_the_readme_commands_run_as_they_stand(admin_console, tmp_path):
    script = BLOCK.search((ROOT / "README.md").read_text()).group(1)
    script = script.replace("HOST=127.0.0.1 PORT=8000", f"HOST=127.0.0.1 PORT={admin_console.port}", 1)
    # The README's folder: the repository, with the user's photo in it (here a copy of the repository's
    # entry points, so that the test writes nothing into the checkout).
    for name in ("manage.py", "docs"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "photo.jpg").write_bytes(image_bytes(1200, 800))
    env = {**admin_console.env, "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}"}
    for _ in range(2):  # twice: the second create is a copy, not an error
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        for result in ("result.jpg", "background.jpg", "raw.jpg"):
            with Image.open(tmp_path / result) as image:
                assert image.format == "JPEG" and image.size == (600, 400), result
    _, flows = Client(admin_console.url, admin_console.auth).json("GET", "/api/flows")
    assert sorted(flow["name"] for flow in flows["flows"]) == ["compress-and-watermark", "compress-and-watermark (2)"]
