"""Layer calls that outlast a broken connection, and the reason a person reads when the layer stays away."""

from __future__ import annotations

import pytest
from channels.layers import InMemoryChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from runtime.reconnect import LayerUnreachable, layer_address, retry_layer, unreachable_reason


class RedisLike:
    hosts = [{"address": "redis://10.0.0.7:6380/0", "socket_timeout": None}]


class Flaky:
    """A layer call that fails `failures` times with a connection error, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise RedisConnectionError("Connection reset by peer")
        return "answer"


async def test_a_call_that_fails_a_few_times_is_answered():
    call = Flaky(3)
    errors = []

    async def noticed(error: BaseException) -> None:
        errors.append(error)

    assert await retry_layer(call, layer=RedisLike(), patience=5, on_error=noticed) == "answer"
    assert call.calls == 4 and len(errors) == 3


async def test_a_layer_that_stays_away_is_named_in_the_error():
    with pytest.raises(LayerUnreachable) as unreachable:
        await retry_layer(Flaky(10**6), layer=RedisLike(), patience=0.3)
    assert str(unreachable.value).startswith("the channel layer at redis://10.0.0.7:6380/0 is unreachable")
    assert "Connection reset by peer" in str(unreachable.value)
    assert unreachable_reason(RedisLike(), unreachable.value) == str(unreachable.value)
    assert unreachable_reason(RedisLike(), RedisConnectionError("gone")).startswith(
        "the channel layer at redis://10.0.0.7:6380/0 is unreachable (gone"
    )


async def test_other_errors_are_not_retried():
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("a bug, not a connection")

    with pytest.raises(ValueError):
        await retry_layer(broken, layer=RedisLike(), patience=5)
    assert calls == [1]


def test_addresses_for_messages():
    assert layer_address(RedisLike()) == "redis://10.0.0.7:6380/0"
    assert layer_address(InMemoryChannelLayer()) == "InMemoryChannelLayer"


async def test_a_cancel_for_a_run_elsewhere_gives_up_quietly_when_the_layer_is_away():
    from runtime import api

    class Away(RedisLike):
        sent = 0

        async def group_send(self, group: str, message: dict) -> None:
            self.sent += 1
            raise RedisConnectionError("Connection refused")

    layer = Away()
    assert await api.cancel("a-run-of-another-server", layer=layer) is False  # the caller records it
    assert layer.sent > 1  # retried before giving up
