"""From per-pixel change to clean change regions."""

from __future__ import annotations

import inspect

import numpy as np
from scipy import ndimage
from skimage import morphology

from satcheck.config import CleanupConfig

# scikit-image renamed the argument (area_threshold -> max_size); look it up once, not per window.
_HOLE_SIZE_ARG = ("max_size" if "max_size" in inspect.signature(morphology.remove_small_holes).parameters
                  else "area_threshold")


def clean_mask(mask: np.ndarray, cfg: CleanupConfig, px_area_m2: float) -> np.ndarray:
    """Open (drop specks and slivers), close, fill small holes, drop small regions."""
    out = mask.astype(bool)
    if cfg.open_px:
        out = ndimage.binary_opening(out, morphology.disk(cfg.open_px))
    if cfg.close_px:
        out = _close(out, cfg.close_px)
    hole_px = int(cfg.fill_holes_m2 / px_area_m2)
    if hole_px > 0:
        out = morphology.remove_small_holes(out, **{_HOLE_SIZE_ARG: hole_px})
    min_px = int(cfg.min_area_m2 / px_area_m2)
    if min_px > 1 and out.any():
        lab, n = ndimage.label(out)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = sizes >= min_px
        keep[0] = False
        out = keep[lab]
    return out


def _close(mask: np.ndarray, r: int) -> np.ndarray:
    # Pad so that closing does not glue regions to the window border.
    se = morphology.disk(r)
    padded = np.pad(mask, r, mode="constant")
    return ndimage.binary_closing(padded, se)[r:-r, r:-r]
