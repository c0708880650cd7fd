"""Find runs whose server died and fail them ("interrupted"), so none stays "running" for ever."""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger("tileflow.sweeper")

_started = threading.Event()
_stop = threading.Event()


def sweep_once() -> int:
    from flows.executions import mark_interrupted

    close_old_connections()
    try:
        return mark_interrupted()
    finally:
        close_old_connections()


def start_sweeper() -> None:
    """Sweep now and then every few heartbeats, in a daemon thread of this server process."""
    if _started.is_set():
        return
    _started.set()
    interval = max(1.0, settings.TILEFLOW["HEARTBEAT_SECONDS"] * 2)

    def loop() -> None:
        while True:
            try:
                sweep_once()
            except Exception:
                log.exception("sweep failed")
            if _stop.wait(interval):
                return

    threading.Thread(target=loop, name="tileflow-sweeper", daemon=True).start()
