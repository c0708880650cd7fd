"""`manage.py runworker tileflow.lane.default`: a worker process for the scale-out setup.

With the Redis layer it also takes runs from the runs lane (`--runs` at once) and conducts them
here (runtime.hosting): only compressed input and encoded output cross Redis.

Same command line as Channels' runworker, with a worker that takes a task from the lane only when
one of its threads is free. Channels' own worker moves every message it can get into an unbounded
local queue: one process would hoard the lane while the others idle, and a kill would lose all of
it. Here unclaimed tasks stay in Redis, where any worker can take them.

SIGTERM (or SIGINT, Ctrl-C) drains the worker: it takes nothing more, finishes the runs and tasks it
holds, and exits. After TILEFLOW_WORKER_DRAIN_SECONDS, or at a second signal, it exits at once and
gives its unfinished runs back to their consoles, which offer them to the other workers.
"""

import asyncio
import logging
import signal

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management import BaseCommand, CommandError

from runtime import events
from runtime.api import memory_budget, runs_layer
from runtime.bridge import is_local
from runtime.hosting import RunHost
from runtime.worker import TaskRunner, serve_lane


class Command(BaseCommand):
    help = "Run a Tileflow step worker on the given lane channels (e.g. tileflow.lane.default)."

    def add_arguments(self, parser):
        parser.add_argument("--layer", default=DEFAULT_CHANNEL_LAYER, help="channel layer alias")
        parser.add_argument("--threads", type=int, default=0, help="step threads (default: one per core)")
        parser.add_argument("--runs", type=int, default=0, help="runs at once (default: TILEFLOW_WORKER_RUNS)")
        parser.add_argument("channels", nargs="+", help="lane channels to take tasks from")

    def handle(self, *args, **options):
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError("no channel layer is configured")
        for channel in options["channels"]:
            if not channel.startswith(events.LANE_CHANNEL_PREFIX):
                raise CommandError(
                    f"{channel!r} is not a Tileflow lane (they start with {events.LANE_CHANNEL_PREFIX!r})"
                )
        if options["verbosity"] > 0:
            logging.getLogger("tileflow").setLevel(logging.INFO)
        config = settings.TILEFLOW
        runner = TaskRunner(options["threads"] or config["WORKER_THREADS"] or None)
        runs = 0 if is_local(layer) else options["runs"] or config["WORKER_RUNS"]
        taking = f"; {runs} runs at a time from {events.RUNS_CHANNEL}" if runs else ""
        self.stdout.write(
            f"Tileflow worker: {runner.threads} {'thread' if runner.threads == 1 else 'threads'} on "
            f"{', '.join(options['channels'])}{taking}"
        )

        async def serve():
            stop = asyncio.Event()
            main = asyncio.current_task()
            loop = asyncio.get_running_loop()
            drain_seconds = config["WORKER_DRAIN_SECONDS"]

            def on_signal(number: int) -> None:
                if stop.is_set():
                    self.stdout.write("Tileflow worker: stopping now")
                    main.cancel()
                    return
                stop.set()
                self.stdout.write(
                    f"Tileflow worker: {signal.Signals(number).name}: finishing what it holds "
                    f"(at most {drain_seconds:g} s; a second signal stops at once)"
                )
                loop.call_later(drain_seconds, main.cancel)

            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, on_signal, number)
            lanes = [serve_lane(layer, channel, runner, stop=stop) for channel in options["channels"]]
            if runs:
                host = RunHost(
                    layer,
                    runner,
                    runs_layer=runs_layer(layer),
                    capacity=runs,
                    lease_seconds=config["RUN_LEASE_SECONDS"],
                    budget=memory_budget(),
                )
                lanes.append(host.serve(stop))
            await asyncio.gather(*lanes)
            self.stdout.write("Tileflow worker: drained, stopping")

        try:
            asyncio.run(serve())
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # drained: a late signal changes nothing (was 143)
        except (KeyboardInterrupt, asyncio.CancelledError):
            pass
        finally:
            runner.shutdown()
