"""Decode targets' memory: reused only once its image is gone, always zero when handed out, bounded."""

import gc
import io
import mmap
import time

import pytest
from PIL import Image

from runtime.decode import decode_rows, probe
from runtime.targets import TARGETS, TargetMemory


def noisy(width: int, height: int, mode: str, sigma: int) -> Image.Image:
    channels = [Image.effect_noise((width, height), sigma + band) for band in range(len(mode))]
    return channels[0] if mode == "L" else Image.merge(mode, channels)


def test_a_mapping_comes_back_zeroed_once_its_image_is_gone():
    memory = TargetMemory()
    first = memory.image("RGBX", 300, 200)
    first.paste((9, 8, 7, 255), (0, 0, 300, 200))
    del first
    gc.collect()
    assert memory.wait_idle()

    second = memory.image("RGBX", 300, 200)

    assert memory.reused == 1
    assert second.tobytes("raw", "RGBX") == bytes(300 * 200 * 4)


def test_a_mapping_is_not_shared_while_its_image_or_a_part_of_it_lives():
    memory = TargetMemory()
    first = memory.image("RGB", 300, 200)
    part = first  # what a source tile of the decoder's target holds: the image itself
    del first
    assert memory.wait_idle()

    second = memory.image("RGB", 300, 200)
    second.paste((255, 0, 0), (0, 0, 300, 200))

    assert memory.reused == 0
    assert part.getextrema() == ((0, 0), (0, 0), (0, 0))  # untouched by the new image's writes


def test_only_the_same_size_is_reused():
    memory = TargetMemory()
    memory.image("RGB", 300, 200)
    gc.collect()
    assert memory.wait_idle()

    memory.image("RGB", 200, 300 + 1)

    assert memory.reused == 0
    assert memory.kept_bytes() == 300 * 200 * 4  # still kept for a target of its size


def test_what_is_kept_is_bounded_and_given_back_when_idle():
    memory = TargetMemory(keep_bytes=300 * 200 * 4 * 2, idle_seconds=0.2)
    images = [memory.image("RGB", 300, 200) for _ in range(3)] + [memory.image("RGB", 600, 400)]
    del images
    gc.collect()
    assert memory.wait_idle()
    assert memory.kept_bytes() == 300 * 200 * 4 * 2  # two kept; the third and the large one dropped

    deadline = time.monotonic() + 5
    while memory.kept_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert memory.kept_bytes() == 0


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_decoding_into_reused_memory_gives_each_image_its_own_pixels(mode):
    images = [noisy(1200, 900, mode, sigma) for sigma in (30, 60, 90)]  # noise: a JPEG of ~1 MB
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=95)
        data = buffer.getvalue()
        # Several 64 kB reads: bands are yielded while later rows are not decoded yet, so a "row done"
        # mark left over from the previous image would hand out its pixels.
        assert len(data) > 4 * 65536
        header = probe(io.BytesIO(data), 10**8)
        reused = TARGETS.reused

        decoded = Image.new(mode, image.size)
        for y0, y1, band, top in decode_rows(data, header, 64):
            decoded.paste(band.crop((0, y0 - top, band.width, y1 - top)).convert(mode), (0, y0))
        del band

        assert decoded.tobytes() == Image.open(io.BytesIO(data)).convert(mode).tobytes()
        gc.collect()
        assert TARGETS.wait_idle()
        if image is not images[0]:
            assert TARGETS.reused == reused + 1


def resident_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_large_target_gives_its_finished_rows_back_to_the_kernel():
    memory = TargetMemory(release_from=32 * 1024 * 1024)
    image = memory.image("RGBX", 4000, 4000)  # 64 MB
    image.paste((9, 8, 7, 255), (0, 0, 4000, 4000))
    releaser = memory.releaser(image)
    assert releaser is not None and memory.releaser(image) is releaser
    before = resident_kb()

    releaser.release(3001)

    given_back_kb = before - resident_kb()
    assert given_back_kb > 40_000, f"only {given_back_kb} kB went back of ~47,000"
    rows = memory.rows_released(image)
    assert rows == 3001 * 16000 // mmap.PAGESIZE * mmap.PAGESIZE // 16000  # whole pages only
    assert image.crop((0, 0, 4000, rows)).getextrema() == ((0, 0),) * 4  # given back: zero
    assert image.getpixel((3999, rows)) == (9, 8, 7, 255)  # the row the boundary cuts keeps its last pixel
    assert image.crop((0, 3001, 4000, 4000)).getextrema() == ((9, 9), (8, 8), (7, 7), (255, 255))
    releaser.release(10)  # behind what is given back already: nothing to do
    assert memory.rows_released(image) == rows


def test_small_targets_and_other_images_give_nothing_back():
    memory = TargetMemory(release_from=300 * 200 * 4 + 1)
    assert memory.releaser(memory.image("RGB", 300, 200)) is None
    assert memory.releaser(Image.new("RGB", (3000, 2000))) is None
    assert memory.rows_released(Image.new("RGB", (3000, 2000))) == 0


def test_a_target_that_gave_rows_back_is_not_kept_for_reuse():
    memory = TargetMemory(release_from=300 * 200 * 4)
    image = memory.image("RGB", 300, 200)
    memory.releaser(image).release(100)
    del image
    gc.collect()
    assert memory.wait_idle()
    assert memory.kept_bytes() == 0

    again = memory.image("RGB", 300, 200)

    assert memory.reused == 0
    assert again.getextrema() == ((0, 0),) * 3
