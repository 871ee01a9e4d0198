"""Window arithmetic on rasterio :class:`~rasterio.windows.Window` objects.

One box convention everywhere: ``Window(col_off, row_off, width, height)``
in pixels of the grid in question.  All functions are pure.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from rasterio.windows import Window


def window_grid(width: int, height: int, size: int, bounds: Window | None = None) -> list[Window]:
    """Non-overlapping windows of at most ``size`` pixels covering ``bounds``.

    ``bounds`` defaults to the whole ``width`` × ``height`` raster.  Windows
    are ordered row by row, so results written in this order are stable.
    """
    if size <= 0:
        raise ValueError(f"window size must be positive, got {size}")
    b = bounds or Window(0, 0, width, height)
    c0, r0 = int(b.col_off), int(b.row_off)
    c1, r1 = c0 + int(b.width), r0 + int(b.height)
    return [
        Window(c, r, min(size, c1 - c), min(size, r1 - r))
        for r in range(r0, r1, size)
        for c in range(c0, c1, size)
    ]


def with_halo(core: Window, halo: int, width: int, height: int) -> tuple[Window, tuple[slice, slice]]:
    """Grow ``core`` by ``halo`` pixels, clipped to the raster.

    Returns the grown window and the slices that cut the core back out of an
    array read with it.
    """
    if halo < 0:
        raise ValueError(f"halo must be >= 0, got {halo}")
    c0 = max(0, int(core.col_off) - halo)
    r0 = max(0, int(core.row_off) - halo)
    c1 = min(width, int(core.col_off + core.width) + halo)
    r1 = min(height, int(core.row_off + core.height) + halo)
    grown = Window(c0, r0, c1 - c0, r1 - r0)
    rows = slice(int(core.row_off) - r0, int(core.row_off) - r0 + int(core.height))
    cols = slice(int(core.col_off) - c0, int(core.col_off) - c0 + int(core.width))
    return grown, (rows, cols)


def overlapping_windows(width: int, height: int, size: int, overlap: int) -> Iterator[Window]:
    """Windows of exactly ``size`` (where the raster allows) stepping by ``size - overlap``.

    The last row and column are shifted back to end at the raster edge, so
    no window is smaller than needed and every pixel is covered.
    """
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, size), got {overlap} for size {size}")
    step = size - overlap

    def starts(n: int) -> list[int]:
        if n <= size:
            return [0]
        s = list(range(0, n - size, step))
        s.append(n - size)
        return s

    for r in starts(height):
        for c in starts(width):
            yield Window(c, r, min(size, width - c), min(size, height - r))


def spread_windows(window: Window, size: int, per_side: int) -> list[Window]:
    """``per_side`` × ``per_side`` square windows of side ``size`` spread evenly over ``window``, corners included."""
    h, w = int(window.height), int(window.width)
    size = min(size, h, w)

    def starts(n: int) -> list[int]:
        if per_side == 1 or n == size:
            return [(n - size) // 2]
        return sorted({round(i * (n - size) / (per_side - 1)) for i in range(per_side)})

    return [Window(int(window.col_off) + c, int(window.row_off) + r, size, size)
            for r in starts(h) for c in starts(w)]


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    """Weights that fall linearly to a small positive value over ``overlap`` pixels at each edge.

    Summing weighted predictions of overlapping windows and dividing by the
    summed weights gives a seamless mosaic: a constant prediction stays
    exactly constant across window borders.
    """
    def ramp(n: int) -> np.ndarray:
        w = np.ones(n, dtype=np.float32)
        k = min(overlap, n // 2)
        if k > 0:
            r = (np.arange(k, dtype=np.float32) + 0.5) / k
            w[:k] = r
            w[n - k:] = r[::-1]
        return w

    return np.outer(ramp(height), ramp(width))


def intersect(a: Window, b: Window) -> Window | None:
    """The common part of two windows on the same grid, or None."""
    c0 = max(a.col_off, b.col_off)
    r0 = max(a.row_off, b.row_off)
    c1 = min(a.col_off + a.width, b.col_off + b.width)
    r1 = min(a.row_off + a.height, b.row_off + b.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)
