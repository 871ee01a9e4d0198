"""Training sources: synthetic scenes, real labelled pairs, and real no-change pairs for pasted objects.

Each example says what its label speaks of (``supervises``): the generator
knows every class of every changed pixel; LEVIR-CD marks buildings only and
says nothing of new yards and roads; DSIFN and OSCD mark construction
without telling buildings from hardened ground.  The loss
(:mod:`satcheck.model.losses`) trains each class only on what a source says.
Crops are drawn and augmented in :mod:`satcheck.model.sampling`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy import ndimage

from satcheck.datasets import load_dataset
from satcheck.synth.scene import make_pair

IGNORE = 255
# Classes of changed pixels (change_class), one per output of the network; 0: changed, class not known.
BUILDING, HARDENED, EXCAVATION = 1, 2, 3
# What a source's label speaks of: every class (with change_class), buildings only, or construction of
# either kind (building or hardened ground, not told apart).
SUPERVISES = ("all", "building", "construction")


@dataclass
class Example:
    before: np.ndarray  # float32 (4, h, w) reflectance-like; NIR plane may be absent (3 bands)
    after: np.ndarray
    label: np.ndarray  # uint8 (h, w): 0, 1, or IGNORE
    change_class: np.ndarray  # uint8 (h, w): 0 unknown, BUILDING, HARDENED or EXCAVATION (where supervises "all")
    gsd: float = 0.5  # metres per pixel (real high-resolution pairs: about 0.5)
    supervises: str = "all"  # one of SUPERVISES


# ----------------------------------------------------------------------------- sources

ZOOM = (0.6, 1.6)  # crops are zoomed by a log-uniform factor in this range
COARSE_ZOOM = (1.0, 2.0)  # 10 m imagery is only ever enlarged (uniform): the network never sees coarser pixels
NAIP_M = 5.0  # the NAIP series of ../shared/data is resampled to 5 m
OSCD_M = 10.0


def source_zoom(name: str, zooms: dict[str, tuple[float, float]] | None = None) -> tuple[float, float]:
    """The range a source's crops are zoomed by: its recipe's, else :data:`ZOOM` (10 m OSCD: :data:`COARSE_ZOOM`)."""
    if name == "oscd":
        return COARSE_ZOOM
    return tuple((zooms or {}).get(name) or ZOOM)


def pixel_range(sizes: dict[str, list[float]], zooms: dict[str, tuple[float, float]] | None = None) -> list[float]:
    """Pixel sizes (m) the network sees in training: each source's pixel sizes (by source name) over its zoom."""
    lo = [g / source_zoom(name, zooms)[1] for name, gs in sizes.items() for g in gs]
    hi = [g / source_zoom(name, zooms)[0] for name, gs in sizes.items() for g in gs]
    return [round(min(lo), 2), round(max(hi), 2)]


def _synth_one(args) -> Example:
    seed, size, gsd = args
    rng = np.random.default_rng(seed)
    p = make_pair(seed, (size, size), gsd, rich=False, collar=False, cloud=rng.random() < 0.3,
                  changes=rng.random() < 0.85, min_builds=max(2, int(6 * (size * gsd / 384) ** 2)))
    label = (p.truth > 0).astype(np.uint8)
    # The scene's surfaces use this module's class codes (building 1, hardened 2, excavation 3).
    return Example(p.before, p.after, label, p.surface, gsd)


def synthetic_pool(n: int, seed: int, size: int = 384, workers: int | None = None) -> list[Example]:
    rng = np.random.default_rng(seed)
    jobs = [(int(seed * 100_000 + i), size, float(rng.choice([0.5, 0.8, 1.0, 1.0, 1.5, 2.0]))) for i in range(n)]
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1:
        with get_context("fork").Pool(workers) as pool:
            return pool.map(_synth_one, jobs, chunksize=4)
    return [_synth_one(j) for j in jobs]


def folder_pool(root: Path, names: list[str] | None, supervises: str = "construction") -> list[Example]:
    """Labelled A/B/label pairs; their label speaks of ``supervises`` (their change classes are not used)."""
    out = []
    for p in load_dataset(root, names):
        out.append(Example(p.before[:4], p.after[:4], p.label, np.zeros_like(p.label), p.px_m or 0.5, supervises))
    return out


def naip_pool(folder: Path) -> list[np.ndarray]:
    """All dates of the NAIP series on the first date's grid: (dates, 4, h, w)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    files = sorted(folder.glob("*.tif"))
    with rasterio.open(files[0]) as ref:
        shape, crs, t = (ref.height, ref.width), ref.crs, ref.transform
    stack = []
    for f in files:
        with rasterio.open(f) as src:
            out = np.zeros((src.count, *shape), np.float32)
            reproject(src.read().astype(np.float32), out, src_transform=src.transform, src_crs=src.crs,
                      dst_transform=t, dst_crs=crs, resampling=Resampling.bilinear)
        stack.append(out / 255.0)
    return stack


def oscd_pool(root: Path, cities: list[str]) -> list[Example]:
    """OSCD cities, later date warped onto the earlier date's grid (where the label is)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    out = []
    for c in cities:
        d = root / c
        b_path, a_path = sorted(d.glob("before_*.tif"))[0], sorted(d.glob("after_*.tif"))[0]
        with rasterio.open(b_path) as b, rasterio.open(a_path) as a, rasterio.open(d / "label.tif") as lab:
            before = b.read().astype(np.float32) / 10000.0
            after = np.zeros_like(before)
            reproject(a.read().astype(np.float32) / 10000.0, after, src_transform=a.transform, src_crs=a.crs,
                      dst_transform=b.transform, dst_crs=b.crs, resampling=Resampling.bilinear)
            label = (lab.read(1) > 0).astype(np.uint8)
        # "Urban change": new buildings or hardened ground, not told apart.
        out.append(Example(before, after, label, np.zeros_like(label), OSCD_M, "construction"))
    return out


def paste_objects(pairs: list[Example], min_px: int = 60) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Changed objects of real labelled pairs: (later-date pixels of the bounding box, object mask, per-band
    median of that later date)."""
    objs = []
    for ex in pairs:
        median = np.median(ex.after, axis=(1, 2))
        lab, n = ndimage.label(ex.label == 1)
        for i, sl in enumerate(ndimage.find_objects(lab)):
            if sl is None:
                continue
            m = lab[sl] == i + 1
            if m.sum() >= min_px:
                objs.append((ex.after[:, sl[0], sl[1]].copy(), m, median))
    return objs
