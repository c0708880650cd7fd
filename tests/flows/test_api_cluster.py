"""`GET /api/health` and `GET /api/workers` on the embedded default (Redis: tests/scale/test_placement.py)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]


async def test_health_needs_no_credential_and_says_only_ok():
    response = await AsyncClient().get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


async def test_workers_are_for_staff_only(http, user):
    assert (await AsyncClient().get("/api/workers")).status_code == 401
    refused = await http.get("/api/workers")
    assert refused.status_code == 403 and "staff" in refused.json()["error"]

    user.is_staff = True
    await sync_to_async(user.save)()
    listed = await http.get("/api/workers")
    assert listed.status_code == 200
    (worker,) = listed.json()["workers"]  # the embedded worker inside this process
    assert worker["embedded"] is True and worker["threads"] >= 1 and worker["runs"] == 0
    assert worker["host"] and worker["last_heartbeat"]
