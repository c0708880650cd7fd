"""ICC profiles for tests: Display P3 built by `runtime.icc` (Debian ships none), and Debian's own profiles."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from runtime.icc import matrix_profile

DEBIAN_PROFILES = Path("/usr/share/color/icc")
ADOBE_RGB_PRIMARIES = ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060))


@cache
def display_p3() -> bytes:
    return matrix_profile()


@cache
def adobe_rgb_like() -> bytes:
    return matrix_profile(ADOBE_RGB_PRIMARIES, description="Adobe RGB (1998) primaries, sRGB curve")


def debian_profile(name: str) -> bytes:
    """Return a profile shipped by Debian's colord-data, icc-profiles-free or libgs-common (scripts/system-deps.sh)."""
    for path in DEBIAN_PROFILES.rglob(name):
        return path.read_bytes()
    raise FileNotFoundError(f"{name} not under {DEBIAN_PROFILES}: run scripts/system-deps.sh")
