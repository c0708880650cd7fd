"""Image comparison shared by the runtime tests."""

from PIL import Image, ImageChops


def max_difference(a: Image.Image, b: Image.Image) -> int:
    """Return the largest per-channel difference between two images of the same size and mode."""
    assert a.mode == b.mode, (a.mode, b.mode)
    assert a.size == b.size, (a.size, b.size)
    extrema = ImageChops.difference(a, b).getextrema()
    return extrema[1] if isinstance(extrema[0], int) else max(high for _, high in extrema)
