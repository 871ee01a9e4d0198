"""Cloud, cloud-shadow and value scaling on decimated reads.

Clouds are large, bright, colourless and soft-edged; roofs are small and
sharp.  The masks are computed once per pair on a decimated read (clouds
are hundreds of metres across, so a few metres per pixel is plenty) and
looked up per window, which keeps memory flat and lets a shadow be linked
to a cloud that lies in another window.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from satcheck.config import MaskConfig


def dn_scale(dtype: str, sample: np.ndarray) -> float:
    """The number that maps stored values to about 0..1 reflectance."""
    if dtype == "uint8":
        return 255.0
    if dtype.startswith("float"):
        top = float(np.nanmax(sample)) if sample.size else 1.0
        return 1.0 if top <= 1.5 else 10000.0
    top = float(np.max(sample)) if sample.size else 0.0
    for bits in (10, 11, 12):
        if top < 2**bits:
            return float(2**bits - 1)
    return 10000.0  # Sentinel-2 / Landsat style reflectance × 10000


def cloud_and_shadow(refl: np.ndarray, valid: np.ndarray, cfg: MaskConfig, px_m: float,
                     other: np.ndarray | None = None, other_valid: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of cloud and cloud shadow on a decimated reflectance image (bands R, G, B, ...).

    ``other`` is the other date on the same grid.  Where it is given, a shadow is a dark place that is
    also much darker than it is on the other date: forest, water and dark soil are dark on both dates
    and lie near clouds too, and a mine in forested hills must not vanish under a "shadow" mask.
    """
    shape = refl.shape[1:]
    if refl.shape[0] < 3 or not (cfg.cloud or cfg.shadow):
        return np.zeros(shape, bool)
    rgb = refl[:3]
    bright = rgb.mean(axis=0)
    sat = (rgb.max(axis=0) - rgb.min(axis=0)) / np.maximum(rgb.max(axis=0), 1e-3)
    min_px = max(1, int(cfg.min_cloud_m2 / (px_m * px_m)))
    cloud = np.zeros(shape, bool)
    if cfg.cloud:
        cand = (bright > cfg.cloud_brightness) & (sat < cfg.cloud_max_saturation) & valid
        # Thin cloud edges are dimmer: grow the cores into a lower threshold.
        soft = (bright > 0.7 * cfg.cloud_brightness) & (sat < 2 * cfg.cloud_max_saturation) & valid
        cand = _keep_large(cand, min_px)
        cloud = ndimage.binary_propagation(cand, mask=soft) if cand.any() else cand
    shadow = np.zeros(shape, bool)
    if cfg.shadow and cloud.any():
        clear = valid & ~cloud
        med = float(np.median(bright[clear])) if clear.any() else 0.0
        # Brightness relative to each date's median, so a change of sun or gain between dates cancels.
        # Shadow must be dark for the scene as well (ref <= 1): a bright field turned dark green is a
        # change to look at, not a shadow.
        ref = np.ones(shape, np.float32)
        if other is not None:
            o_ok = np.ones(shape, bool) if other_valid is None else other_valid
            o_bright = other[:3].mean(axis=0)
            o_med = float(np.median(o_bright[o_ok])) if o_ok.any() else 0.0
            if o_med > 0:
                ref = np.where(o_ok, np.minimum(o_bright / o_med, 1.0), 1.0)
        dark = (bright < cfg.shadow_brightness * med * ref) & clear
        near = ndimage.distance_transform_edt(~cloud) * px_m < 1500.0
        shadow = _keep_large(dark & near, max(1, min_px // 2))
        shadow = ndimage.binary_closing(shadow, iterations=2)
    grow = max(1, int(round(cfg.dilate_m / px_m)))
    out = cloud | shadow
    if out.any():
        out = ndimage.binary_dilation(out, iterations=grow)
    return out


def _keep_large(mask: np.ndarray, min_px: int) -> np.ndarray:
    if not mask.any():
        return mask
    lab, n = ndimage.label(mask)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[lab]


def upsample_lookup(lowres: np.ndarray, full_shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    """Nearest-neighbour values of a decimated mask for a window of the full grid."""
    fh, fw = full_shape
    lh, lw = lowres.shape
    r = np.minimum((np.arange(rows.start, rows.stop) * lh) // fh, lh - 1)
    c = np.minimum((np.arange(cols.start, cols.stop) * lw) // fw, lw - 1)
    return lowres[np.ix_(r, c)]
