"""flows.body_pipe: a streamed body read by a thread in order, bounded, and never waited on forever."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.core.exceptions import RequestAborted
from django.http.multipartparser import MultiPartParserError

from flows.body_pipe import BodyPipe


async def _pieces(pieces, *, then: BaseException | None = None):
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece
    if then is not None:
        raise then


def test_a_thread_reads_the_body_in_order_while_the_pump_is_held_to_its_capacity():
    pipe = BodyPipe(capacity=1000)
    pieces = [bytes([n]) * 300 for n in range(20)]
    most = []

    def read_all() -> bytes:
        out = bytearray()
        while chunk := pipe.read(256):
            most.append(pipe._buffered)
            out += chunk
        return bytes(out)

    async def main() -> bytes:
        pump = asyncio.create_task(pipe.pump(_pieces(pieces)))
        read = await asyncio.to_thread(read_all)
        await pump
        return read

    assert asyncio.run(main()) == b"".join(pieces)
    assert max(most) < 1000 + 300, "the pump ran past the pipe's capacity"


@pytest.mark.parametrize(
    "failure, reason",
    [(RequestAborted(), "client went away"), (TimeoutError("stalled"), "could not be read: stalled")],
)
def test_a_body_that_breaks_off_fails_the_waiting_read_with_the_reason(failure, reason):
    pipe = BodyPipe()
    errors = []

    def read_all() -> None:
        try:
            while pipe.read(1 << 16):
                pass
        except MultiPartParserError as error:
            errors.append(str(error))

    async def main() -> None:
        reader = threading.Thread(target=read_all)
        reader.start()
        await pipe.pump(_pieces([b"x" * 100], then=failure))
        await asyncio.to_thread(reader.join, 5)

    asyncio.run(main())
    assert len(errors) == 1 and reason in errors[0]


def test_a_reader_that_stops_early_lets_the_pump_drop_the_rest():
    pipe = BodyPipe(capacity=10)

    async def main() -> None:
        pump = asyncio.create_task(pipe.pump(_pieces([b"y" * 10] * 50)))
        assert await asyncio.to_thread(pipe.read, 5) == b"yyyyy"
        pipe.close_reading()
        await asyncio.wait_for(pump, 5)  # not stuck waiting for room

    asyncio.run(main())
