"""`manage.py runtriggers`: poll triggers from this process, beside or instead of the servers' embedded loops.

Any number of these may run, on any host sharing the database: each trigger is polled by one of them
at a time (a lease), and another takes it over when that process stops or dies.
"""

from __future__ import annotations

import asyncio
import signal

from django.core.management import BaseCommand

from flows.sweeper import start_sweeper
from flows.trigger_loop import TriggerLoop

GRACE_SECONDS = 30


class Command(BaseCommand):
    help = "Poll the triggers' folders and buckets and run their flows (one poller per trigger across processes)."

    def handle(self, *args, **options) -> None:
        start_sweeper()  # the runs started here are failed as interrupted if a process dies under them
        asyncio.run(self.serve())

    async def serve(self) -> None:
        loop = TriggerLoop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, loop.stop)
        self.stdout.write(f"polling triggers as {loop.holder}")
        await loop.run()
        # Runs already started finish and deliver their outputs before the process ends.
        finishing = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if finishing:
            await asyncio.wait(finishing, timeout=GRACE_SECONDS)
