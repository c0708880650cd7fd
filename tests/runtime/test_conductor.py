"""Runs through the real conductor, channel layer and lane worker: exact, streamed, bounded, robust."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time

import pytest
from PIL import Image

from runtime import api
from runtime.conductor import RunLimits, RunSpec
from runtime.geometry import tile_grid
from runtime.testing import chain, make_image, reference_flow
from runtime.tiles import Size
from tests.runtime._compare import max_difference
from tests.runtime.test_exactness import random_step

pytestmark = pytest.mark.usefixtures("fresh_channel_layer")


async def run(graph: dict, image: Image.Image, tmp_path, *, fmt: str = "PNG", **limits) -> api.Conductor:
    source = tmp_path / f"in.{fmt.lower()}"
    image.save(source, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    spec = RunSpec(f"run-{random.random()}", graph, source, tmp_path / "out", RunLimits(**limits))
    conductor = await api.start(spec, owner="tests")
    await asyncio.wait_for(conductor.finished.wait(), 60)
    return conductor


def output(conductor: api.Conductor, node: str = "out") -> Image.Image:
    image = Image.open(conductor.outputs[node].path)
    image.load()
    return image


@pytest.mark.parametrize("seed", range(12))
async def test_random_chains_through_the_bridge_equal_pillow(seed, tmp_path):
    rng = random.Random(1000 + seed)
    graph = chain(*[random_step(rng) for _ in range(rng.randint(1, 4))], output={"format": "png"})
    image = make_image(rng.randint(1, 300), rng.randint(1, 300), rng.choice(["L", "RGB", "RGBA"]), seed)
    conductor = await run(
        graph, image, tmp_path, tile_size=rng.choice([32, 64, 128]), max_in_flight=rng.choice([1, 3, 8])
    )
    assert conductor.status == "succeeded", conductor.error
    assert max_difference(output(conductor), reference_flow(graph, image)["out"]) == 0
    snapshot = conductor.snapshot()
    assert all(node["done"] == node["total"] for node in snapshot["nodes"].values()), snapshot["nodes"]


@pytest.mark.parametrize("seed", range(4))
async def test_a_grid_without_short_rows_gives_the_same_pixels(seed, tmp_path):
    rng = random.Random(2000 + seed)
    graph = chain(*[random_step(rng) for _ in range(rng.randint(1, 3))], output={"format": "png"})
    image = make_image(rng.randint(60, 300), rng.randint(60, 300), rng.choice(["L", "RGB", "RGBA"]), seed)
    tile_size = rng.choice([64, 128])
    conductor = await run(graph, image, tmp_path, tile_size=tile_size, interactive=False)
    assert conductor.status == "succeeded", conductor.error
    assert max_difference(output(conductor), reference_flow(graph, image)["out"]) == 0
    source_tiles = len(tile_grid(Size(*image.size), tile_size, short=False))
    assert conductor.snapshot()["nodes"]["in"]["total"] == source_tiles < len(tile_grid(Size(*image.size), tile_size))


@pytest.mark.parametrize("interactive", [True, False])
async def test_a_small_image_runs_in_tiles_twice_as_large(interactive, tmp_path):
    graph = chain(
        ("resize", {"scale": 0.5}), ("watermark", {"text": "© ACME", "font_size": 12}), output={"format": "png"}
    )
    small, large = make_image(250, 190, "RGB", 7), make_image(300, 290, "RGB", 8)  # at most 16 tiles of 64, and more
    for image in (small, large):
        conductor = await run(graph, image, tmp_path, tile_size=64, interactive=interactive, small_image_tiles=16)
        assert conductor.status == "succeeded", conductor.error
        assert max_difference(output(conductor), reference_flow(graph, image)["out"]) == 0
        expected = tile_grid(Size(*image.size), 128 if image is small else 64, interactive)
        assert conductor.snapshot()["nodes"]["in"]["total"] == len(expected)


def test_the_grid_of_a_run_follows_the_image_size():
    limits = RunLimits(tile_size=512, small_image_tiles=16)
    assert limits.grid(Size(1732, 1155)) == (1024, True)  # a 2 MP photo
    assert limits.grid(Size(2048, 2048)) == (1024, True)  # 16 tiles exactly
    assert limits.grid(Size(2049, 2048)) == (512, True)
    assert RunLimits(tile_size=512, small_image_tiles=16, interactive=False).grid(Size(2000, 1500)) == (1024, False)
    assert RunLimits(tile_size=512).grid(Size(10, 10)) == (512, True)  # off unless asked for


async def test_fan_out_yields_both_outputs_from_one_decode(tmp_path):
    graph = {
        "nodes": [
            {"id": "in", "type": "source", "params": {}},
            {"id": "mark", "type": "watermark", "params": {"text": "© ACME 水印", "font_size": 20}},
            {"id": "full", "type": "output", "params": {"format": "jpeg", "quality": 90}},
            {"id": "tiny", "type": "resize", "params": {"scale": 0.1}},
            {"id": "thumb", "type": "output", "params": {"format": "png"}},
        ],
        "edges": [
            {"from": "in", "to": "mark"},
            {"from": "mark", "to": "full"},
            {"from": "in", "to": "tiny"},
            {"from": "tiny", "to": "thumb"},
        ],
    }
    image = make_image(640, 480, "RGB", 5)
    conductor = await run(graph, image, tmp_path, tile_size=128)
    assert conductor.status == "succeeded", conductor.error
    nodes = conductor.snapshot()["nodes"]
    source_tiles = len(tile_grid(Size(640, 480), 128))
    assert source_tiles == 5 * 6  # rows 16, 32, 64, 128, 128, 112
    assert nodes["in"]["done"] == nodes["in"]["total"] == source_tiles  # every source tile decoded once
    references = reference_flow(graph, image)
    assert max_difference(output(conductor, "thumb"), references["thumb"]) == 0
    assert output(conductor, "full").size == (640, 480)
    for node, tool in (("full", ["jpeginfo", "-c"]), ("thumb", ["pngcheck", "-q"])):
        done = await asyncio.to_thread(
            subprocess.run, [*tool, str(conductor.outputs[node].path)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


async def test_a_step_that_raises_fails_the_run_naming_the_node(tmp_path):
    from runtime.registry import Step, StepRegistry, TileKind, registry, step

    scratch = StepRegistry()

    @step("explode", label="Explode", category="Test", target=scratch)
    class Explode(Step):
        """Raise on the third tile."""

        kind = TileKind.POINT

        def process(self, tile, ctx):
            if tile.box.y0 > 0:
                raise ValueError("this tile is cursed")
            ctx.write(tile)

    registry.register(Explode)
    try:
        graph = chain(("grayscale", {}), ("explode", {}))
        conductor = await run(graph, make_image(200, 200, "RGB", 1), tmp_path, tile_size=64)
    finally:
        registry._steps.pop("explode")
    assert conductor.status == "failed"
    assert conductor.error == "node 'explode1' failed: ValueError: this tile is cursed"
    assert conductor.snapshot()["nodes"]["explode1"]["status"] == "failed"
    assert not list((tmp_path / "out").glob("*")), "a failed run leaves no partial output"


async def test_memory_follows_the_work_in_flight_not_the_image(tmp_path, monkeypatch):
    from runtime.store import TileStore

    peak = {"tiles": 0}
    original = TileStore.put

    def counting_put(self, index, tile):
        added = original(self, index, tile)
        peak["tiles"] = max(peak["tiles"], len(self))
        return added

    monkeypatch.setattr(TileStore, "put", counting_put)
    graph = chain(("grayscale", {}), output={"format": "png"})
    conductor = await run(graph, make_image(1024, 2048, "RGB", 2), tmp_path, tile_size=64, max_in_flight=4)
    assert conductor.status == "succeeded"
    total = conductor.snapshot()["nodes"]["in"]["total"]
    assert total == len(tile_grid(Size(1024, 2048), 64)) == 16 * 34  # rows 16, 32, then 32 of 64 (or fewer)
    assert peak["tiles"] < total / 4, f"{peak['tiles']} of {total} tiles held at once"


async def test_an_image_that_breaks_while_decoding_fails_the_source_node(tmp_path):
    image = make_image(300, 200, "RGB", 4)
    source = tmp_path / "cut.bmp"
    image.save(source, "BMP")
    source.write_bytes(source.read_bytes()[:40_000])
    spec = RunSpec("cut", chain(("grayscale", {})), source, tmp_path / "out", RunLimits(tile_size=64))
    conductor = await api.start(spec, owner="tests")
    await asyncio.wait_for(conductor.finished.wait(), 60)
    assert conductor.status == "failed" and "truncated" in conductor.error
    nodes = conductor.snapshot()["nodes"]
    assert nodes["in"]["status"] == "failed"
    assert nodes["grayscale0"]["status"] == "pending"


async def test_cancelling_the_runs_task_ends_it_as_cancelled_whatever_it_waited_for(tmp_path):
    # Server shutdown (and a test's teardown) cancels the run's task itself, not through api.cancel.
    # Python 3.11's wait_for dropped a cancellation that arrived with the awaited event: the run went
    # on alone, re-sending tiles to workers that had been cancelled with it, for minutes.
    source = tmp_path / "in.png"
    make_image(512, 384).save(source)
    rng = random.Random(5)
    cancelled = 0
    for attempt in range(40):
        graph = chain(("blur", {"radius": 1}))
        spec = RunSpec(f"cancel-{attempt}", graph, source, tmp_path / f"{attempt}", RunLimits(tile_size=32))
        conductor = await api.start(spec, owner="tests")
        while not conductor.finished.is_set() and not (conductor.record.nodes and conductor.record.nodes["blur0"].done):
            await asyncio.sleep(0)  # until tiles flow: results keep arriving in the conductor's inbox
        for _ in range(rng.randrange(20)):
            await asyncio.sleep(0)
        if conductor.finished.is_set():
            continue
        api._runs[spec.execution].task.cancel()
        await asyncio.wait_for(conductor.finished.wait(), 5)
        assert conductor.status == "cancelled", (attempt, conductor.status)
        cancelled += 1
    assert cancelled >= 20


class SavesRecorder:
    """A recorder that notes, for each save, when it came (loop time) and what it held."""

    def __init__(self) -> None:
        self.saves: list[tuple[float, str, str | None, bool]] = []

    async def save(self, snapshot: dict, *, final: bool) -> None:
        now = asyncio.get_running_loop().time()
        self.saves.append((now, snapshot["status"], snapshot["first_output_at"], final))


async def run_recorded(
    graph: dict, image: Image.Image, tmp_path, **limits
) -> tuple[api.Conductor, SavesRecorder, float]:
    """Run `graph`; return the conductor, its recorder and the loop time the run was started at."""
    source = tmp_path / "in.png"
    image.save(source)
    recorder = SavesRecorder()
    spec = RunSpec(f"run-{random.random()}", graph, source, tmp_path / "out", RunLimits(**limits))
    started = asyncio.get_running_loop().time()
    conductor = await api.start(spec, owner="tests", recorder=recorder)
    await asyncio.wait_for(conductor.finished.wait(), 60)
    return conductor, recorder, started


async def test_the_running_state_is_saved_with_the_first_band(tmp_path):
    conductor, recorder, _ = await run_recorded(chain(("grayscale", {})), make_image(300, 200), tmp_path)

    assert conductor.status == "succeeded"
    # One save, not a "running" save racing the first band for the cores and another for its time.
    _, status, first_output_at, final = recorder.saves[0]
    assert (status, final) == ("running", False) and first_output_at is not None
    assert recorder.saves[-1][1:] == ("succeeded", first_output_at, True)


async def test_a_slow_first_band_still_gets_its_run_saved_as_running_early(tmp_path):
    from runtime.recording import STARTED_SAVE_DELAY
    from runtime.registry import Step, StepRegistry, TileKind, registry, step

    @step("dawdle", label="Dawdle", category="Test", target=StepRegistry())
    class Dawdle(Step):
        """Take a second over each tile."""

        kind = TileKind.POINT

        def process(self, tile, ctx):
            time.sleep(1.0)
            ctx.write(tile)

    registry.register(Dawdle)
    try:
        conductor, recorder, started = await run_recorded(chain(("dawdle", {})), make_image(64, 64), tmp_path)
    finally:
        registry._steps.pop("dawdle")

    assert conductor.status == "succeeded"
    (first_at, status, first_output_at, _), (second_at, _, second_output_at, _) = recorder.saves[:2]
    assert status == "running" and first_output_at is None  # saved while the band was still being made
    assert STARTED_SAVE_DELAY <= first_at - started < 0.9
    assert second_output_at is not None and second_at - started >= 1.0  # and again when it came out


def fan_out_graph(*, source_to_output: bool) -> dict:
    nodes = [
        {"id": "in", "type": "source", "params": {}},
        {"id": "half", "type": "resize", "params": {"scale": 0.5}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
        # Tiles without a stamp are handed on as they are: uncut parts of the decoder's image.
        {"id": "gray", "type": "watermark", "params": {"text": "© ACME", "font_size": 20}},
        {"id": "flat", "type": "output", "params": {"format": "png"}},
    ]
    edges = [{"from": "in", "to": "half"}, {"from": "half", "to": "out"}, {"from": "gray", "to": "flat"}]
    edges.append({"from": "in", "to": "flat"} if source_to_output else {"from": "in", "to": "gray"})
    if source_to_output:
        nodes = [node for node in nodes if node["id"] != "gray"]
        edges = [edge for edge in edges if "gray" not in edge.values()]
    return {"nodes": nodes, "edges": edges}


@pytest.mark.parametrize("source_to_output", [False, True])
async def test_a_large_jpegs_rows_go_back_behind_its_tasks_and_every_pixel_is_still_right(
    tmp_path, monkeypatch, source_to_output
):
    from runtime.targets import TARGETS, RowReleaser

    monkeypatch.setattr(TARGETS, "release_from", 1)  # every target is "large"
    given = []
    original = RowReleaser.release
    monkeypatch.setattr(RowReleaser, "release", lambda self, rows: given.append(rows) or original(self, rows))
    graph = fan_out_graph(source_to_output=source_to_output)
    image = make_image(640, 960, "RGB", 7)
    conductor = await run(graph, image, tmp_path, fmt="JPEG", tile_size=64, max_in_flight=2)
    assert conductor.status == "succeeded", conductor.error

    decoded = Image.open(tmp_path / "in.jpeg").convert("RGB")
    references = reference_flow(graph, decoded)
    assert max_difference(output(conductor, "out"), references["out"]) == 0
    assert max_difference(output(conductor, "flat"), references["flat"]) == 0
    if source_to_output:
        assert given == []  # an encoder reads the source's tiles as they are: nothing may go back
    else:
        assert given == sorted(given) and given[-1] == 960 and len(given) > 5  # row by row, behind the tasks


async def test_tiles_a_step_hands_on_as_they_are_outlive_the_rows_given_back(tmp_path, monkeypatch):
    from runtime.targets import TARGETS

    monkeypatch.setattr(TARGETS, "release_from", 1)
    # Most tiles have no stamp, so the watermark hands on the source's tiles themselves: parts of the target.
    graph = chain(("watermark", {"text": "© ACME", "font_size": 20}), output={"format": "png"})
    image = make_image(640, 960, "RGB", 8)
    conductor = await run(graph, image, tmp_path, fmt="JPEG", tile_size=64, max_in_flight=2)
    assert conductor.status == "succeeded", conductor.error
    decoded = Image.open(tmp_path / "in.jpeg").convert("RGB")
    assert max_difference(output(conductor), reference_flow(graph, decoded)["out"]) == 0


async def test_a_run_admitted_with_its_cost_is_budgeted_at_that_cost_without_estimating_it_again(tmp_path, monkeypatch):
    from runtime import admission
    from runtime.decode import probe

    source = tmp_path / "in.png"
    make_image(640, 480, "RGB", 3).save(source)
    graph = chain(("grayscale", {}), output={"format": "png"})
    header = probe(source, 10**9)
    cost = await api.admit(graph, header, RunLimits())
    assert cost == admission.estimate_under(RunLimits(), graph, header)
    asked: list[int] = []
    original_acquire = admission.MemoryBudget.acquire

    def acquire(self, amount):
        asked.append(amount)
        return original_acquire(self, amount)

    def estimated_again(spec):
        raise AssertionError("the cost was estimated again")

    monkeypatch.setattr(admission.MemoryBudget, "acquire", acquire)
    monkeypatch.setattr(admission, "spec_cost", estimated_again)
    spec = RunSpec("run-admitted", graph, source, tmp_path / "out", RunLimits(), header=header, cost=cost)
    conductor = await api.start(spec, owner="tests")
    await asyncio.wait_for(conductor.finished.wait(), 60)
    assert conductor.status == "succeeded" and asked == [cost.total]


async def test_runs_waiting_for_their_owners_slot_count_against_the_queue_limit(tmp_path, settings):
    from runtime.admission import QueueFull
    from runtime.decode import probe
    from runtime.upload import UploadStream

    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_CONCURRENT_RUNS_PER_USER": 1, "MAX_QUEUED_RUNS": 1}
    source = tmp_path / "in.png"
    make_image(64, 48, "RGB", 4).save(source)
    header = probe(source, 10**9)
    graph = chain(("grayscale", {}), output={"format": "png"})
    arriving = [UploadStream() for _ in range(2)]  # inputs that never end: the runs hold on
    owner = f"slots-{random.random()}"
    conductors = []
    for index, upload in enumerate(arriving):
        execution = f"waiting-{index}-{random.random()}"
        spec = RunSpec(execution, graph, source, tmp_path / f"o{index}", header=header, input_stream=upload)
        conductors.append(await api.start(spec, owner=owner))
    try:
        await asyncio.sleep(0.2)
        assert [conductor.status for conductor in conductors] == ["running", "queued"], [c.error for c in conductors]
        with pytest.raises(QueueFull):
            await api.admit(graph, header, owner=owner)  # it would wait behind the queued one
        assert await api.admit(graph, header, owner=f"another-{random.random()}") is not None  # starts at once
    finally:
        for upload in arriving:
            upload.fail("the test is over")
        for conductor in conductors:
            conductor.cancel()
            await asyncio.wait_for(conductor.finished.wait(), 30)
