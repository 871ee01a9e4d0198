"""Cleaning change masks region by region gives the same mask as cleaning the whole window."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage import morphology

from satcheck.config import CleanupConfig
from satcheck.detect.cleanup import clean_mask


def whole_window(mask: np.ndarray, cfg: CleanupConfig, px_area_m2: float) -> np.ndarray:
    """The plain definition: every step over the whole window."""
    out = mask
    if cfg.open_px:
        r = cfg.open_px
        out = ndimage.binary_opening(np.pad(out, r, mode="edge"), morphology.disk(r))[r:-r, r:-r]
    if cfg.close_px:
        r = cfg.close_px
        out = ndimage.binary_closing(np.pad(out, r), morphology.disk(r))[r:-r, r:-r]
    lab, n = ndimage.label(~out)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    enclosed = np.ones(n + 1, bool)
    enclosed[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = False
    fill = enclosed & (sizes <= int(cfg.fill_holes_m2 / px_area_m2))
    fill[0] = False
    out = out | fill[lab]
    lab, n = ndimage.label(out)
    keep = np.bincount(lab.ravel(), minlength=n + 1) >= int(cfg.min_area_m2 / px_area_m2)
    keep[0] = False
    return keep[lab]


def sparse_mask(seed: int, shape=(300, 260), objects: int = 12) -> np.ndarray:
    """Scattered blobs, rings (with holes) and specks, some at the window edge."""
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, bool)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(objects):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r = rng.uniform(1, 14)
        d = np.hypot(yy - cy, xx - cx)
        m |= (d < r) & ~((d < r * rng.uniform(0, 0.6)) & (rng.random() < 0.5))
    m ^= rng.random(shape) < 0.01  # specks and pinholes
    return m


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), open_px=st.integers(0, 3), close_px=st.integers(0, 10),
       px=st.sampled_from([0.5, 1.0, 2.0]))
def test_region_by_region_equals_whole_window(seed, open_px, close_px, px):
    cfg = CleanupConfig(open_px=open_px, close_px=close_px, fill_holes_m2=30.0, min_area_m2=20.0)
    mask = sparse_mask(seed)
    assert np.array_equal(clean_mask(mask, cfg, px * px), whole_window(mask, cfg, px * px))


def test_empty_and_full_windows():
    cfg = CleanupConfig()
    assert not clean_mask(np.zeros((70, 90), bool), cfg, 1.0).any()
    assert clean_mask(np.ones((70, 90), bool), cfg, 1.0).all()


def test_enclosed_hole_is_filled_but_an_open_bay_is_not():
    cfg = CleanupConfig(open_px=0, close_px=0, fill_holes_m2=50, min_area_m2=0)
    m = np.zeros((60, 60), bool)
    m[10:30, 10:30] = True
    m[15:20, 15:20] = False          # 25 px hole inside: filled
    m[40:60, 10:30] = True
    m[50:60, 15:20] = False          # bay open to the window edge: kept
    out = clean_mask(m, cfg, 1.0)
    assert out[15:20, 15:20].all()
    assert not out[50:60, 15:20].any()
