from runtime.plan import compile_plan
from runtime.registry import ImageInfo, load_builtin_steps
from runtime.testing import chain
from runtime.tiles import Box, Size

load_builtin_steps()
SOURCE = ImageInfo(Size(1000, 700), "RGB")


def fan_out_graph():
    nodes = [
        {"id": "in", "type": "source", "params": {}},
        {"id": "small", "type": "resize", "params": {"scale": 0.5}},
        {"id": "gray", "type": "grayscale", "params": {}},
        {"id": "mark", "type": "watermark", "params": {"text": "hi"}},
        {"id": "turn", "type": "rotate", "params": {"angle": 90}},
        {"id": "a", "type": "output", "params": {}},
        {"id": "b", "type": "output", "params": {"format": "jpeg"}},
    ]
    edges = [("in", "small"), ("small", "gray"), ("gray", "a"), ("small", "mark"), ("mark", "turn"), ("turn", "b")]
    return {"nodes": nodes, "edges": [{"from": f, "to": t} for f, t in edges]}


def test_geometry_is_known_per_node():
    plan = compile_plan(chain(("resize", {"scale": 0.5}), ("rotate", {"angle": 90}), ("grayscale", {})), SOURCE)
    assert plan.nodes["resize0"].output == ImageInfo(Size(500, 350), "RGB")
    assert plan.nodes["rotate1"].output == ImageInfo(Size(350, 500), "RGB")
    assert plan.nodes["out"].output == ImageInfo(Size(350, 500), "L")
    assert plan.order == ("in", "resize0", "rotate1", "grayscale2", "out")


def test_linear_chain_is_one_segment_and_totals_count_tiles():
    plan = compile_plan(chain(("resize", {"scale": 0.5}), ("watermark", {"text": "x"})), SOURCE, tile_size=128)
    assert plan.stores == ("in", "watermark1")
    assert [(s.input_store, s.chain) for s in plan.segments] == [("in", ("resize0", "watermark1"))]
    assert len(plan.tasks) == 4 * 5  # 500 x 350: 128-px columns, rows 16, 32, 64, 128, 110
    assert plan.totals == {"in": 8 * 8, "resize0": 20, "watermark1": 20, "out": 20}
    assert all(task.boxes[-1] == task.out_box for task in plan.tasks)


def test_fan_out_cuts_segments_at_the_shared_node():
    plan = compile_plan(fan_out_graph(), SOURCE, tile_size=128)
    assert plan.stores == ("in", "small", "gray", "turn")
    assert [(s.input_store, s.chain) for s in plan.segments] == [
        ("in", ("small",)),
        ("small", ("gray",)),
        ("small", ("mark", "turn")),
    ]
    assert plan.outputs == ("a", "b")
    assert plan.totals["a"] == plan.totals["gray"] == 20


def test_blur_after_resize_needs_a_wider_halo_at_the_source():
    resize_only = compile_plan(chain(("resize", {"scale": 0.5})), SOURCE, tile_size=64)
    with_blur = compile_plan(chain(("resize", {"scale": 0.5}), ("blur", {"radius": 4})), SOURCE, tile_size=64)
    inner = Box(128, 112, 192, 176)  # an inner tile: rows at 64 px are 16, 32, then 64 tall
    alone = next(t for t in resize_only.tasks if t.out_box == inner).region
    blurred = next(t for t in with_blur.tasks if t.out_box == inner).region
    assert blurred.contains(alone) and blurred != alone
    assert alone.x0 - blurred.x0 >= 2 * with_blur.nodes["blur1"].step.halo - 2


def test_tasks_come_in_row_order_and_upstream_first():
    plan = compile_plan(fan_out_graph(), SOURCE, tile_size=128)
    done: dict[str, set[int]] = {"in": set(range(len(plan.grid("in"))))}
    for task in plan.tasks:
        segment = plan.segments[task.segment]
        assert set(plan.needed_tiles(task)) <= done[segment.input_store]
        done.setdefault(segment.chain[-1], set()).add(task.index)
    first_gray = next(i for i, t in enumerate(plan.tasks) if plan.segments[t.segment].chain == ("gray",))
    assert first_gray < len(plan.tasks) // 2  # the gray output starts long before the resize is finished
    linear = compile_plan(chain(("grayscale", {})), SOURCE, tile_size=128)
    assert [t.out_box.y0 for t in linear.tasks] == sorted(t.out_box.y0 for t in linear.tasks)


def test_reference_counts_cover_tasks_and_outputs():
    plan = compile_plan(fan_out_graph(), SOURCE, tile_size=128)
    counts = plan.reference_counts()
    assert all(count >= 1 for count in counts["gray"])  # read once by output a
    assert sum(counts["small"]) >= len(plan.grid("small")) * 2  # read by both branches


def test_the_first_output_band_needs_only_the_first_source_rows():
    plan = compile_plan(
        chain(("resize", {"scale": 0.5}), ("watermark", {"text": "x"})), ImageInfo(Size(6000, 4000), "RGB")
    )
    columns = 6  # 3000 px wide in 512-px columns
    first_band = plan.tasks[:columns]
    assert [task.out_box for task in first_band] == [Box(x, 0, min(x + 512, 3000), 32) for x in range(0, 3000, 512)]
    source_rows = {index // 12 for task in first_band for index in plan.needed_tiles(task)}  # 6000 / 512 = 12
    assert source_rows == {0, 1}  # source rows 0..96 of 4000: 32 + 64
    assert max(task.region.height for task in first_band) < 100
