"""Find runs whose server died and fail them ("interrupted"), so none stays "running" for ever; at start-up
and then every ORPHAN_EVERY sweeps, remove files under MEDIA_ROOT that no execution owns (`flows.media`)."""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger("tileflow.sweeper")

ORPHAN_EVERY = 100  # sweeps: a few minutes at the default heartbeat
_started = threading.Event()
_stop = threading.Event()


def sweep_once(*, orphans: bool = False) -> int:
    from flows.executions import mark_interrupted
    from flows.media import remove_orphans

    close_old_connections()
    try:
        interrupted = mark_interrupted()
        if orphans:
            remove_orphans()
        return interrupted
    finally:
        close_old_connections()


def start_sweeper() -> None:
    """Sweep now and then every few heartbeats, in a daemon thread of this server process."""
    if _started.is_set():
        return
    _started.set()
    interval = max(1.0, settings.TILEFLOW["HEARTBEAT_SECONDS"] * 2)

    def loop() -> None:
        sweeps = 0
        while True:
            try:
                sweep_once(orphans=sweeps % ORPHAN_EVERY == 0)
            except Exception:
                log.exception("sweep failed")
            sweeps += 1
            if _stop.wait(interval):
                return

    threading.Thread(target=loop, name="tileflow-sweeper", daemon=True).start()
