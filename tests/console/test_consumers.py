"""The execution websocket of CONTRACT §4, through the real routing stack (origin check, auth)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from console.routing import websocket_routes
from flows.models import ApiToken, Flow
from tests.support.runs import COMPRESS_AND_WATERMARK, TokenClient, image_bytes, upload, wait_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")


def socket_for(execution_id: str, token: str | None, *, origin=ORIGIN) -> WebsocketCommunicator:
    headers = [HOST, origin] if origin else [HOST]  # the Origin must be the handshake's own origin
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(websocket_routes(), f"/ws/executions/{execution_id}/", headers=headers)


async def messages_until_status(socket: WebsocketCommunicator, timeout: float = 60) -> list[dict]:
    received = []
    while True:
        message = json.loads(await socket.receive_from(timeout=timeout))
        received.append(message)
        if message["type"] == "status":
            return received


def check_stream(messages: list[dict]) -> None:
    assert messages[0]["type"] == "snapshot"
    assert messages[-1]["type"] == "status"
    done = {node: entry["done"] for node, entry in messages[0]["execution"]["nodes"].items()}
    final = {}
    for message in messages[1:-1]:
        assert message["type"] == "progress"
        assert message["done"] >= done.get(message["node"], 0), "done decreased"
        done[message["node"]] = message["done"]
        final[message["node"]] = (message["done"], message["total"])
    for node, (count, total) in final.items():
        assert count == total, node


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="compress-and-watermark", graph=COMPRESS_AND_WATERMARK)


async def test_early_and_late_sockets_get_snapshot_progress_and_status(flow, token, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "TILE_SIZE": 128}
    http = TokenClient(token)
    execution = await start_run(http, flow)
    early = socket_for(execution, token)
    connected, _ = await early.connect()
    assert connected
    late_messages = None
    late = socket_for(execution, token)
    early_messages_task = asyncio.create_task(messages_until_status(early))
    await asyncio.sleep(0.05)
    connected, _ = await late.connect()
    assert connected
    late_messages = await messages_until_status(late)
    early_messages = await early_messages_task
    for messages in (early_messages, late_messages):
        check_stream(messages)
        assert messages[-1]["status"] == "succeeded" and messages[-1]["error"] is None
    progress_nodes = {message["node"] for message in early_messages if message["type"] == "progress"}
    assert progress_nodes == {"in", "shrink", "mark", "out"}
    await early.disconnect()
    await late.disconnect()

    finished = await wait_finished(http, execution)
    after = socket_for(execution, token)
    assert (await after.connect())[0]
    snapshot, status = json.loads(await after.receive_from()), json.loads(await after.receive_from())
    assert snapshot["execution"]["status"] == "succeeded"
    assert snapshot["execution"]["nodes"] == finished["nodes"]
    assert status == {"type": "status", "status": "succeeded", "error": None}


async def start_run(http: TokenClient, flow: Flow) -> str:
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(1500, 1000))})
    assert response.status_code == 201
    return response.json()["id"]


async def test_strangers_bad_origins_and_anonymous_are_refused(flow, token, other_user):
    http = TokenClient(token)
    execution = await start_run(http, flow)
    _, other_token = await sync_to_async(ApiToken.issue)(other_user)
    for socket in (
        socket_for(execution, other_token),
        socket_for(execution, None),
        socket_for(execution, "tf_not-a-token"),
        socket_for(execution, token, origin=(b"origin", b"http://evil.example")),
        socket_for(execution, token, origin=None),
    ):
        connected, _ = await socket.connect()
        assert not connected
        assert await socket.receive_nothing()
    await wait_finished(http, execution)


def batch_socket(batch_id: str, token: str | None) -> WebsocketCommunicator:
    headers = [HOST, ORIGIN] + ([(b"authorization", f"Bearer {token}".encode())] if token else [])
    return WebsocketCommunicator(websocket_routes(), f"/ws/batches/{batch_id}/", headers=headers)


async def test_batch_socket_sends_snapshot_counts_that_never_decrease_and_the_status(flow, token, other_user):
    http = TokenClient(token)
    images = [upload(image_bytes(300, 200, seed=seed), f"{seed}.jpg") for seed in range(6)]
    response = await http.post(f"/api/flows/{flow.id}/batches", {"image": [*images, upload(b"junk", "junk.jpg")]})
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]
    socket = batch_socket(batch_id, token)
    connected, _ = await socket.connect()
    assert connected
    messages = await messages_until_status(socket)
    await socket.disconnect()
    assert messages[0]["type"] == "snapshot" and messages[0]["batch"]["id"] == batch_id
    assert messages[-1] == {"type": "status", "status": "failed"}
    counts = {key: messages[0]["batch"][key] for key in ("succeeded", "failed", "cancelled")}
    for message in messages[1:-1]:
        assert message["type"] == "progress" and message["total"] == 7
        for key, value in counts.items():
            assert message[key] >= value, "a count decreased"
        counts = {key: message[key] for key in counts}
    assert counts == {"succeeded": 6, "failed": 1, "cancelled": 0}

    late = batch_socket(batch_id, token)
    assert (await late.connect())[0]
    snapshot, status = await messages_until_status(late)
    assert snapshot["batch"]["succeeded"] == 6 and status["status"] == "failed"
    await late.disconnect()

    _, their_token = await sync_to_async(ApiToken.issue)(other_user)
    theirs = batch_socket(batch_id, their_token)
    connected, _ = await theirs.connect()
    assert not connected
    no_origin = WebsocketCommunicator(
        websocket_routes(), f"/ws/batches/{batch_id}/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    assert not (await no_origin.connect())[0]
