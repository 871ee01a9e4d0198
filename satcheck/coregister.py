"""Co-registration: the shift between the two dates of a pair, measured from the images themselves.

Two dates placed by their georeference alone are often a few pixels apart
(other sensor, other orthorectification DEM).  Every edge then shows up as
a thin band of change.  The shift is measured by cross-correlating the edge
images of a few chips spread over the pair, which is insensitive to the
brightness and colour differences between dates; a shift is trusted only
when most chips agree on it, because real change, water or a featureless
chip give scattered answers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from rasterio.windows import Window
from scipy import fft, ndimage

from satcheck.windows import spread_windows


@dataclass(frozen=True)
class Shift:
    """Where the earlier date lines up with the later one.

    The earlier date's pixel (r + rows, c + cols), on the later date's grid, shows what the later date's pixel
    (r, c) shows. ``chips`` gave an estimate, ``agreeing`` of them within a pixel of the median; ``agreed``:
    enough did for the shift to be used (otherwise rows and cols are 0: the dates stay where their
    georeference puts them).
    """

    rows: float = 0.0
    cols: float = 0.0
    chips: int = 0
    agreeing: int = 0
    agreed: bool = False

    @property
    def disputed(self) -> bool:
        """Enough chips gave an estimate, and they disagree: the misregistration varies across the area."""
        return self.chips >= 3 and not self.agreed

    def rounded(self) -> tuple[int, int]:
        return round(self.rows), round(self.cols)

    def as_dict(self) -> dict[str, float | int]:
        return {"rows": round(self.rows, 2), "cols": round(self.cols, 2), "chips": self.chips,
                "agreeing": self.agreeing, "agreed": self.agreed}


NO_SHIFT = Shift()


def measuring_chips(window: Window, chip_px: int = 512) -> list[Window]:
    """Where a pair's shift is measured: 3 × 3 chips of ``chip_px`` on large windows, 2 × 2 of at least 256 px on
    smaller ones; none on windows under 342 px, too small to tell a shift from the change in them."""
    side = min(int(window.width), int(window.height))
    size = int(min(chip_px, 0.75 * side))
    if size < 256:
        return []
    return spread_windows(window, size, 3 if side >= 1536 else 2)


def measure_arrays(before: np.ndarray, after: np.ndarray, valid: np.ndarray, max_px: float,
                   chip_px: int = 512) -> Shift:
    """The shift of an earlier date (bands, h, w) against the later one, both in memory (evaluation, windows)."""
    chips = measuring_chips(Window(0, 0, after.shape[2], after.shape[1]), chip_px)
    if max_px <= 0 or not chips:
        return NO_SHIFT
    slices = [w.toslices() for w in chips]
    return estimate_shift([(before[:, r, c], after[:, r, c], valid[r, c]) for r, c in slices], max_px)


def _edges(img: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the mean of the first three bands: edges, whatever each date's brightness."""
    grey = img[: min(3, img.shape[0])].mean(0, dtype=np.float32)
    return np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1))


@functools.lru_cache(maxsize=4)
def _taper(h: int, w: int) -> np.ndarray:
    t = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    t.setflags(write=False)
    return t


def chip_shift(before: np.ndarray, after: np.ndarray, valid: np.ndarray, max_px: float) -> tuple[float, float] | None:
    """(rows, cols) of one chip pair (bands, h, w), or None where the chip has too little data or texture.

    Cross-correlation of the two edge images (zero mean, Hann-windowed, by FFT), its peak searched within
    ``max_px`` and refined to a fraction of a pixel by a parabola through it and its neighbours.
    """
    h, w = valid.shape
    if valid.mean() < 0.9 or h < 16 or w < 16:
        return None
    eb, ea = _edges(before), _edges(after)
    if eb[valid].std() < 1e-6 or ea[valid].std() < 1e-6:
        return None
    taper = np.where(valid, _taper(h, w), 0)
    eb = (eb - eb[valid].mean()) * taper
    ea = (ea - ea[valid].mean()) * taper
    # cc[k] = sum over x of after[x + k] * before[x]: peaks where the later date shows the earlier one moved by k.
    cross = fft.rfft2(ea, workers=-1) * np.conj(fft.rfft2(eb, workers=-1))
    # Half-way to phase correlation: damps the broad low frequencies of smooth fields, which blur the peak,
    # without letting noise at high frequencies count as much as structure.
    cross /= np.sqrt(np.abs(cross)) + 1e-12
    cc = fft.irfft2(cross, s=(h, w), workers=-1)
    m = int(min(max_px, h // 4, w // 4))
    near = np.roll(cc, (m, m), (0, 1))[: 2 * m + 1, : 2 * m + 1]  # shifts -m..m on both axes
    i, j = np.unravel_index(int(np.argmax(near)), near.shape)
    if i in (0, 2 * m) or j in (0, 2 * m):
        return None  # at the edge of the search: no peak inside it
    k_r = i - m + _vertex(near[i - 1, j], near[i, j], near[i + 1, j])
    k_c = j - m + _vertex(near[i, j - 1], near[i, j], near[i, j + 1])
    # after[x + k] = before[x]: the later date's pixel r is the earlier date's r - k.
    return -float(k_r), -float(k_c)


def _vertex(lo: float, mid: float, hi: float) -> float:
    """Offset from the middle sample of the top of a parabola through three samples one apart."""
    d = lo - 2 * mid + hi
    return 0.0 if d >= 0 else 0.5 * (lo - hi) / d


def estimate_shift(chips: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], max_px: float) -> Shift:
    """The pair's shift from its chips (before, after, valid), or :data:`NO_SHIFT` where they do not agree.

    Trusted when at least three chips and 60 % of those with an estimate lie within one pixel of their
    median; shifts are searched up to ``max_px`` pixels.
    """
    found = [s for s in (chip_shift(b, a, v, max_px) for b, a, v in chips) if s is not None]
    if len(found) < 3:
        return Shift(chips=len(found))
    est = np.asarray(found)
    med = np.median(est, axis=0)
    agreeing = int((np.hypot(*(est - med).T) <= 1.0).sum())
    if agreeing < max(3, math.ceil(0.6 * len(found))):
        return Shift(chips=len(found), agreeing=agreeing)
    return Shift(float(med[0]), float(med[1]), len(found), agreeing, True)


def shift_array(img: np.ndarray, shift: Shift) -> np.ndarray:
    """An earlier date (bands, h, w), or its mask (h, w), moved onto the later date's pixels by whole pixels (edges
    repeated), as a run moves an earlier tile on the same grid: no resampling."""
    rows, cols = shift.rounded()
    if rows == cols == 0:
        return img
    h, w = img.shape[-2:]
    if abs(rows) >= h or abs(cols) >= w:
        raise ValueError(f"a shift of ({rows}, {cols}) px does not fit an image of {h} x {w}")
    # out[r, c] = img[r + rows, c + cols], edges repeated: slices, where ndimage.shift spent tens of ms a window.
    out = np.empty_like(img)
    r0, r1, c0, c1 = max(0, -rows), min(h, h - rows), max(0, -cols), min(w, w - cols)
    out[..., r0:r1, c0:c1] = img[..., r0 + rows:r1 + rows, c0 + cols:c1 + cols]
    out[..., :r0, c0:c1] = out[..., r0:r0 + 1, c0:c1]
    out[..., r1:, c0:c1] = out[..., r1 - 1:r1, c0:c1]
    out[..., :c0] = out[..., c0:c0 + 1]
    out[..., c1:] = out[..., c1 - 1:c1]
    return out
