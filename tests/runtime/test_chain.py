import threading

import pytest

from runtime.chain import ChainError, run_chain
from runtime.registry import ImageInfo, Step, StepContext, StepRegistry, TileKind, step
from runtime.steps.blur import Blur
from runtime.steps.grayscale import Grayscale
from runtime.testing import make_image
from runtime.tiles import Box, Size, Tile

custom = StepRegistry()
INFO = ImageInfo(Size(40, 30), "RGB")


@step("drop", label="Drop", category="Test", target=custom)
class Drop(Step):
    """Write nothing."""

    def process(self, tile, ctx):
        pass


@step("halves", label="Halves", category="Test", target=custom)
class Halves(Step):
    """Write the left and the right half of the box as two tiles."""

    def process(self, tile, ctx):
        box = ctx.out_box
        middle = (box.x0 + box.x1) // 2
        ctx.write(tile.crop(Box(box.x0, box.y0, middle, box.y1)))
        ctx.write(tile.crop(Box(middle, box.y0, box.x1, box.y1)))


@step("corner", label="Corner", category="Test", target=custom)
class Corner(Step):
    """Write only the top-left pixel."""

    kind = TileKind.GEOMETRY

    def process(self, tile, ctx):
        box = ctx.out_box
        ctx.write(tile.crop(Box(box.x0, box.y0, box.x0 + 1, box.y0 + 1)))


def whole_tile():
    image = make_image(40, 30)
    return image, Tile.from_image(INFO.size.box, image)


def test_a_step_writing_nothing_ends_the_chain():
    _, tile = whole_tile()
    steps = [("d", Drop(Drop.Params(), INFO)), ("g", Grayscale(Grayscale.Params(), INFO))]
    result = run_chain(steps, (INFO.size.box, INFO.size.box), tile)
    assert result.tiles == ()
    assert set(result.busy) == {"d"}


def test_two_half_tiles_each_go_through_a_point_step():
    image, tile = whole_tile()
    steps = [("h", Halves(Halves.Params(), INFO)), ("g", Grayscale(Grayscale.Params(), INFO))]
    result = run_chain(steps, (INFO.size.box, INFO.size.box), tile)
    assert [t.box for t in result.tiles] == [Box(0, 0, 20, 30), Box(20, 0, 40, 30)]
    assert result.tiles[1].image().tobytes() == image.convert("L").crop((20, 0, 40, 30)).tobytes()
    assert set(result.busy) == {"h", "g"}


def test_two_half_tiles_are_assembled_for_a_step_with_a_halo():
    image, tile = whole_tile()
    blur = Blur(Blur.Params(radius=2), INFO)
    steps = [("h", Halves(Halves.Params(), INFO)), ("b", blur)]
    inner = Box(10, 5, 30, 25)
    result = run_chain(steps, (blur.needs(inner), inner), tile.crop(blur.needs(inner)))
    (written,) = result.tiles
    assert written.box == inner
    assert written.image().tobytes() == image.filter(blur.filter).crop(inner.as_tuple()).tobytes()


def test_tiles_that_miss_the_region_the_next_step_needs_fail_loudly():
    _, tile = whole_tile()
    blur = Blur(Blur.Params(radius=2), INFO)
    steps = [("c", Corner(Corner.Params(), INFO)), ("b", blur)]
    with pytest.raises(ChainError):
        run_chain(steps, (INFO.size.box, INFO.size.box), tile)


def test_steps_report_progress_and_run_from_threads():
    image, tile = whole_tile()
    done: list[str] = []
    steps = [("g", Grayscale(Grayscale.Params(), INFO))]
    outputs = []

    def work():
        outputs.append(run_chain(steps, (INFO.size.box,), tile, on_step_done=done.append).tiles[0].data)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert done == ["g"] * 8
    assert set(outputs) == {image.convert("L").tobytes()}


def test_context_gives_the_box_and_both_images():
    seen: list[StepContext] = []

    class Spy(Step):
        def process(self, tile, ctx):
            seen.append(ctx)
            ctx.write(tile)

    _, tile = whole_tile()
    run_chain([("s", Spy(Spy.Params(), INFO))], (INFO.size.box,), tile)
    assert seen[0].node_id == "s" and seen[0].out_box == INFO.size.box and seen[0].output == INFO


@step("same", label="Same", category="Test", target=custom)
class Same(Step):
    """Hand the input on as it is."""

    def process(self, tile, ctx):
        ctx.write(tile)


def test_what_a_chain_hands_back_holds_its_own_pixels_not_a_part_of_the_decoders_image():
    target = make_image(120, 90)  # what a source tile is an uncut part of
    box = Box(40, 30, 80, 60)
    tile = Tile.of_parent(box, target, (0, 0))
    assert tile.parent() is not None
    info = ImageInfo(Size(120, 90), "RGB")

    result = run_chain([("s", Same(Same.Params(), info))], (box,), tile)

    (out,) = result.tiles
    assert out.parent() is None  # the target's rows may be given back once the task is done
    assert out.view().tobytes() == target.crop(box.as_tuple()).tobytes()
