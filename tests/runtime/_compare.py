"""Image comparison shared by the runtime tests."""

import math

from PIL import Image, ImageChops, ImageStat


def max_difference(a: Image.Image, b: Image.Image) -> int:
    """Return the largest per-channel difference between two images of the same size and mode."""
    assert a.mode == b.mode, (a.mode, b.mode)
    assert a.size == b.size, (a.size, b.size)
    extrema = ImageChops.difference(a, b).getextrema()
    return extrema[1] if isinstance(extrema[0], int) else max(high for _, high in extrema)


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Return the peak signal-to-noise ratio of `a` against `b` in dB (inf when they are identical)."""
    assert a.mode == b.mode, (a.mode, b.mode)
    assert a.size == b.size, (a.size, b.size)
    squares = ImageStat.Stat(ImageChops.difference(a, b)).sum2
    mean_square = sum(squares) / (len(squares) * a.width * a.height)
    return math.inf if mean_square == 0 else 10 * math.log10(255 * 255 / mean_square)
