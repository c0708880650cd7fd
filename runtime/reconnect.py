"""Calls to the channel layer that outlast a broken connection: retried with backoff for a bounded time.

Redis restarting (or a first call on a pooled connection that died with it) makes a layer call raise
a connection error; the next call, on a fresh connection, usually works. `retry_layer` retries such
calls for up to `patience` seconds, then raises `LayerUnreachable`, whose message says which layer
could not be reached, in words a person understands. Anything that is not a connection error goes
to the caller at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from runtime.bridge import TRANSIENT_ERRORS

log = logging.getLogger("tileflow.reconnect")

T = TypeVar("T")

try:  # errors that only a channel layer's connection raises (never a file's OSError)
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    _REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover - redis is a pinned dependency
    _REDIS_ERRORS = ()

PATIENCE_SECONDS = 30.0
FIRST_DELAY = 0.05
LONGEST_DELAY = 1.0


class LayerUnreachable(ConnectionError):
    """The channel layer did not answer for `patience` seconds."""

    def __init__(self, address: str, patience: float, error: BaseException) -> None:
        super().__init__(
            f"the channel layer at {address} is unreachable (tried for {patience:g} s: {error or type(error).__name__})"
        )
        self.address = address


LAYER_ERRORS: tuple[type[BaseException], ...] = (LayerUnreachable, *_REDIS_ERRORS)


def unreachable_reason(layer, error: BaseException) -> str:
    """Return what to tell a person whose run ended because the layer could not be reached."""
    if isinstance(error, LayerUnreachable):
        return str(error)
    return f"the channel layer at {layer_address(layer)} is unreachable ({error or type(error).__name__})"


def layer_address(layer) -> str:
    """Return where a layer lives, for messages: the Redis URL(s), or the name of an in-process layer."""
    hosts = getattr(layer, "hosts", None)
    if hosts:
        places = [
            host.get("address") or f"redis://{host.get('host', '?')}:{host.get('port', 6379)}"
            for host in hosts
            if isinstance(host, dict)
        ]
        return ", ".join(str(place) for place in places) or repr(hosts)
    return type(layer).__name__


def default_patience() -> float:
    """Return TILEFLOW_LAYER_PATIENCE_SECONDS from the settings, when there are settings."""
    try:
        from django.conf import settings

        return float(settings.TILEFLOW.get("LAYER_PATIENCE_SECONDS", PATIENCE_SECONDS))
    except Exception:  # no Django settings configured: a plain script
        return PATIENCE_SECONDS


async def retry_layer(
    call: Callable[[], Awaitable[T]],
    *,
    layer,
    patience: float | None = None,
    on_error: Callable[[BaseException], Awaitable[None]] | None = None,
    what: str = "channel layer call",
) -> T:
    """Return `await call()`, calling again while the layer's connection is broken, for `patience` seconds.

    `on_error` runs after each failed attempt (e.g. to read the state from elsewhere meanwhile). Raises
    LayerUnreachable when the time is up; any other error at once.
    """
    patience = default_patience() if patience is None else patience
    deadline = time.monotonic() + patience
    delay = FIRST_DELAY
    failures = 0
    while True:
        try:
            result = await call()
        except TRANSIENT_ERRORS as error:
            failures += 1
            if failures == 1:
                log.warning("%s failed, retrying for up to %g s: %s", what, patience, error)
            left = deadline - time.monotonic()
            if left <= 0:
                raise LayerUnreachable(layer_address(layer), patience, error) from error
            if on_error is not None:
                await on_error(error)
            await asyncio.sleep(min(delay, max(0.0, left)))
            delay = min(delay * 2, LONGEST_DELAY)
            continue
        if failures:
            log.info("%s worked again after %d failed attempt(s)", what, failures)
        return result
