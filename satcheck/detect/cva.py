"""Classical baseline: shift-tolerant change vector analysis.

The magnitude of the spectral difference is taken, for each later pixel,
against the best-matching earlier pixel within ``max_shift_px`` (so a
misregistration of a pixel or two does not light up every edge).  Only
change *towards* a non-vegetated surface counts, since crops greening or
ripening is not construction.  The threshold is Otsu's on a decimated
sample of the pair, floored so a quiet scene does not flag its noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from satcheck.align import PairWindow
from satcheck.config import CvaConfig
from satcheck.detect.base import CONSTRUCTION, EXCAVATION, ChangeScores


def shift_tolerant_difference(after: np.ndarray, before: np.ndarray, max_shift: int) -> np.ndarray:
    """min over shifts s (|s| <= max_shift) of ||after(p) - before(p + s)||, per pixel."""
    best = None
    h, w = after.shape[1:]
    pad = max_shift
    bp = np.pad(before, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            shifted = bp[:, pad + dy: pad + dy + h, pad + dx: pad + dx + w]
            d = np.sqrt(np.square(after - shifted).sum(axis=0))
            best = d if best is None else np.minimum(best, d, out=best)
    return best / np.sqrt(after.shape[0])


def _not_vegetation(img: np.ndarray) -> np.ndarray:
    """1 where a pixel looks non-vegetated, 0 where clearly green, smooth in between."""
    r, g, b = img[0], img[1], img[2]
    if img.shape[0] >= 4:
        nir = img[3]
        idx = (nir - r) / np.maximum(nir + r, 1e-3)
        return np.clip((0.45 - idx) / 0.3, 0, 1)
    exg = (2 * g - r - b) / np.maximum(r + g + b, 1e-3)
    return np.clip((0.15 - exg) / 0.15, 0, 1)


def change_type(after: np.ndarray) -> np.ndarray:
    """Excavation where the later surface looks like bare earth (red-yellow, bright), else construction."""
    r, g, b = after[0], after[1], after[2]
    soil = (r - b > 0.12) & (r >= g) & ((r + g + b) / 3 > 0.35)
    return np.where(soil, EXCAVATION, CONSTRUCTION).astype(np.uint8)


class CvaDetector:
    name = "cva"

    def __init__(self, cfg: CvaConfig):
        self.cfg = cfg
        self.halo = cfg.max_shift_px + 4
        self.magnitude_threshold = cfg.threshold or cfg.min_threshold
        self.threshold = 0.5
        self.needs_sample = cfg.threshold is None  # the automatic threshold comes from the whole pair

    def _magnitude(self, pw_before: np.ndarray, pw_after: np.ndarray, shift: int) -> np.ndarray:
        d = shift_tolerant_difference(pw_after, pw_before, shift)
        d *= _not_vegetation(pw_after)
        return ndimage.uniform_filter(d, 3)

    def prepare(self, sample: PairWindow | None, px_m: float | None) -> None:
        if self.cfg.threshold is not None or sample is None:
            return
        mag = self._magnitude(sample.before, sample.after, 1)
        values = mag[sample.valid]
        if values.size < 16:
            return
        t = float(threshold_otsu(values))
        self.magnitude_threshold = max(self.cfg.min_threshold, t)

    def imagery_warning(self) -> str | None:
        return None  # a difference of reflectances: no training range to be outside of

    def score(self, pw: PairWindow) -> ChangeScores:
        mag = self._magnitude(pw.before, pw.after, self.cfg.max_shift_px)
        prob = np.clip(mag / (2 * self.magnitude_threshold), 0, 1).astype(np.float32)
        prob[~pw.valid] = 0
        if self.cfg.parcel_rule < 1.0:
            prob = suppress_parcel_change(prob, pw.before, self.threshold, self.cfg.parcel_rule, self.cfg.edge_threshold)
        return ChangeScores(prob, change_type(pw.after))


def edges(img: np.ndarray, misregistration_px: int, threshold: float) -> np.ndarray:
    """Strong edges of an image, widened by the misregistration tolerance.

    The threshold is absolute (on normalised brightness), so the result
    does not depend on how the image is cut into windows.
    """
    bright = ndimage.gaussian_filter(img[:3].mean(axis=0), 1.0)
    grad = np.hypot(ndimage.sobel(bright, 0), ndimage.sobel(bright, 1))
    strong = grad > threshold
    return ndimage.binary_dilation(strong, iterations=misregistration_px + 1)


def suppress_parcel_change(prob: np.ndarray, before: np.ndarray, threshold: float, max_share: float,
                           edge_threshold: float = 0.2) -> np.ndarray:
    """Damp change regions whose outline follows edges that were already there.

    A field that was harvested or ploughed changes as a whole, inside the
    ridges and paths that bounded it before; a new building draws a new
    outline.  Regions whose boundary lies on old edges for more than
    ``max_share`` of its length are taken for crop change.
    """
    mask = prob >= threshold
    if not mask.any():
        return prob
    lab, n = ndimage.label(mask)
    boundary = mask & ~ndimage.binary_erosion(mask, iterations=1, border_value=1)
    old = edges(before, 2, edge_threshold)
    idx = lab[boundary]
    on_old = np.bincount(idx, weights=old[boundary], minlength=n + 1)
    total = np.bincount(idx, minlength=n + 1)
    share = on_old / np.maximum(total, 1)
    damp = (share > max_share) & (total > 0)
    damp[0] = False
    out = prob.copy()
    out[damp[lab]] *= 0.4
    return out
