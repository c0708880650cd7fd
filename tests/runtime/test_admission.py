"""The memory budget: what a run is expected to cost, and runs waiting for memory in order."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from PIL import Image

from runtime.admission import (
    MB,
    MemoryBudget,
    QueueFull,
    RunTooLarge,
    default_capacity,
    estimate,
    physical_memory,
)
from runtime.decode import probe
from runtime.testing import chain


def header_of(width: int, height: int, format: str = "PNG", **save):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format=format, **save)
    return probe(buffer, 10**9)


def cost(graph, header):
    return estimate(graph, header, tile_size=512, max_in_flight=8)


def test_the_decoded_image_counts_four_bytes_a_pixel_and_the_work_around_it_on_top():
    header = header_of(3000, 2000)
    result = cost(chain(("resize", {"scale": 0.5})), header)
    assert result.decode == 3000 * 2000 * 4
    assert result.working > 0
    assert result.total == result.decode + result.working


def test_bigger_pictures_cost_more_and_a_buffering_encoder_holds_its_output():
    small, large = header_of(1000, 1000), header_of(4000, 3000)
    graph = chain(("resize", {"scale": 0.5}), output={"format": "jpeg"})
    assert cost(graph, large).total > 10 * cost(graph, small).decode
    webp = chain(("resize", {"scale": 0.5}), output={"format": "webp"})
    assert cost(webp, large).working - cost(graph, large).working >= 2000 * 1500 * 4


def test_tiles_still_in_flight_never_count_more_than_the_whole_image():
    one_tile = header_of(400, 300)  # every store is one tile: one task in flight, not eight
    graph = chain(("grayscale", {}), ("rotate", {"angle": 90}), output={"format": "jpeg"})
    assert estimate(graph, one_tile, tile_size=512, max_in_flight=8, short_rows=False) == estimate(
        graph, one_tile, tile_size=512, max_in_flight=1, short_rows=False
    )


def test_a_small_image_is_estimated_on_the_grid_it_runs_on():
    header = header_of(1732, 1155)
    graph = chain(("resize", {"scale": 0.5}), output={"format": "jpeg"})
    planned = estimate(graph, header, tile_size=512, max_in_flight=8, small_image_tiles=16)
    assert planned == estimate(graph, header, tile_size=1024, max_in_flight=8)
    assert planned != cost(graph, header)


def test_shrink_on_load_and_orientation_change_the_decode_cost():
    jpeg = header_of(4000, 3000, "JPEG")
    assert jpeg.streamable
    plain = chain(("resize", {"scale": 0.25}))
    fast = {**plain, "nodes": [{**plain["nodes"][0], "params": {"fast_decode": True}}, *plain["nodes"][1:]]}
    assert cost(fast, jpeg).decode == 1000 * 750 * 4
    assert cost(plain, jpeg).decode == 4000 * 3000 * 4
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = header_of(4000, 3000, "JPEG", exif=exif)  # decoded whole, then transposed: two images at once
    assert not rotated.streamable
    assert cost(plain, rotated).decode == 2 * 4000 * 3000 * 4


def test_the_default_budget_is_a_quarter_of_memory():
    assert physical_memory() > 64 * MB
    assert default_capacity() == int(physical_memory() * 0.25)


async def test_runs_that_fit_start_at_once_and_others_wait_first_come_first_served():
    budget = MemoryBudget(100, max_queued=10)
    first = await budget.acquire(60)
    order: list[str] = []

    async def run(name: str, size: int) -> None:
        grant = await budget.acquire(size)
        order.append(name)
        await asyncio.sleep(0.01)
        grant.release()

    large = asyncio.create_task(run("large", 90))
    await asyncio.sleep(0)
    small = asyncio.create_task(run("small", 10))  # fits now, but must not overtake the large one
    await asyncio.sleep(0.02)
    assert order == [] and budget.waiting == 2 and budget.in_use == 60
    first.release()
    await asyncio.gather(large, small)
    assert order == ["large", "small"]
    assert budget.in_use == 0 and budget.running == 0


async def test_a_run_cancelled_while_it_waits_leaves_the_queue_and_lets_the_next_in():
    budget = MemoryBudget(100, max_queued=10)
    held = await budget.acquire(50)
    blocked = asyncio.create_task(budget.acquire(80))
    await asyncio.sleep(0)
    behind = asyncio.create_task(budget.acquire(40))
    await asyncio.sleep(0)
    assert budget.waiting == 2
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    grant = await asyncio.wait_for(behind, 1)
    assert budget.waiting == 0 and budget.in_use == 90
    grant.release()
    held.release()
    held.release()  # a second release gives nothing back twice
    assert budget.in_use == 0


async def test_a_grant_released_from_another_thread_wakes_a_waiter_on_the_loop():
    budget = MemoryBudget(100, max_queued=10)
    held = await budget.acquire(100)
    waiter = asyncio.create_task(budget.acquire(100))
    await asyncio.sleep(0)
    threading.Thread(target=held.release).start()
    grant = await asyncio.wait_for(waiter, 2)
    assert budget.in_use == 100
    grant.release()


async def test_a_run_larger_than_the_whole_budget_is_refused_with_the_figures():
    budget = MemoryBudget(200 * MB, max_queued=10)
    with pytest.raises(RunTooLarge) as refused:
        await budget.acquire(450 * MB)
    assert "needs about 450 MB" in str(refused.value) and "budget of 200 MB" in str(refused.value)
    with pytest.raises(RunTooLarge):
        budget.check(450 * MB)


async def test_a_full_queue_refuses_new_runs_with_a_time_to_retry():
    budget = MemoryBudget(100, max_queued=1)
    held = await budget.acquire(100)
    budget.check(10)  # nobody waits yet: this one may queue
    waiting = asyncio.create_task(budget.acquire(10))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull) as full:
        budget.check(10)
    assert full.value.retry_after >= 1 and "1 runs are waiting" in str(full.value)
    held.release()
    (await waiting).release()
    budget.check(10)


def test_a_rotation_holds_its_whole_output_before_the_first_row_can_be_encoded():
    header = header_of(4000, 3000)
    rotated = cost(chain(("rotate", {"angle": 90}), output={"format": "jpeg"}), header)
    in_order = cost(chain(("grayscale", {}), output={"format": "jpeg"}), header)
    assert rotated.working - in_order.working >= 3000 * 4000 * 4 * 3 // 4  # most of the rotated image


def test_a_palette_image_decodes_at_one_byte_a_pixel():
    buffer = io.BytesIO()
    Image.new("P", (3000, 2000)).save(buffer, "PNG")
    header = probe(buffer, 10**9)
    assert cost(chain(("resize", {"scale": 0.5})), header).decode == 3000 * 2000


def test_a_large_jpeg_whose_rows_go_back_counts_the_window_of_rows_between_its_readers_and_its_decoder():
    jpeg = header_of(12000, 8000, "JPEG")  # 384 MB decoded: its rows go back behind the tasks
    window = (8 + 2 + 2 + 1) * 512 * 12000 * 4  # the source store's window, and the row a page boundary cuts
    assert cost(chain(("resize", {"scale": 0.5})), jpeg).decode == window
    assert cost(chain(("rotate", {"angle": 90})), jpeg).decode == window  # its store holds it, counted there
    straight = {  # an encoder reads the source's tiles as they are: the whole target stays
        "nodes": [{"id": "in", "type": "source", "params": {}}, {"id": "out", "type": "output", "params": {}}],
        "edges": [{"from": "in", "to": "out"}],
    }
    assert cost(straight, jpeg).decode == 12000 * 8000 * 4
    assert cost(chain(("resize", {"scale": 0.5})), header_of(6000, 4000, "JPEG")).decode == 6000 * 4000 * 4  # small


def gray_image(width: int, height: int, format: str):
    buffer = io.BytesIO()
    Image.new("L", (width, height), 90).save(buffer, format)
    return probe(buffer, 10**9)


def test_a_gray_jpeg_decodes_into_a_four_byte_target_and_hands_on_copies_of_its_bands():
    jpeg, png = gray_image(4000, 3000, "JPEG"), gray_image(4000, 3000, "PNG")
    assert jpeg.streamable and jpeg.mode == png.mode == "L"
    graph = chain(("resize", {"scale": 0.5}))
    assert cost(graph, jpeg).decode == 4000 * 3000 * 4  # RGBX: libjpeg expands gray; bands are converted back
    assert cost(graph, png).decode == 4000 * 3000
    # Its source store holds a window of copied (L) bands, as a PNG's does; a colour JPEG's holds none.
    assert cost(graph, jpeg).working == cost(graph, png).working
    colour_jpeg, colour_png = header_of(4000, 3000, "JPEG"), header_of(4000, 3000)
    window = 4000 * min((8 + 2 + 2) * 512, 3000) * 4  # taller than the image: all of it
    assert cost(graph, colour_png).working - cost(graph, colour_jpeg).working == window


def test_a_large_gray_jpeg_gives_each_band_back_once_copied():
    jpeg = gray_image(12000, 8000, "JPEG")  # a 384 MB target
    assert cost(chain(("resize", {"scale": 0.5})), jpeg).decode == 2 * 512 * 12000 * 4


def test_a_run_its_owner_cannot_start_yet_waits_in_the_queue_even_when_memory_is_free():
    budget = MemoryBudget(1000, max_queued=2)
    budget.check(10, queued=5)  # memory is free and nobody waits for it: it starts now
    with pytest.raises(QueueFull):
        budget.check(10, queued=5, slot_free=False)  # it would wait for its owner's slot behind five
    budget.check(10, queued=1, slot_free=False)  # room in the queue
