"""Training examples: synthetic scenes, real labelled pairs, and real no-change pairs with pasted objects.

Every example is drawn from a seeded generator and goes through the same
radiometric normalisation as a run (:mod:`satcheck.radiometry`), then
through the augmentations that matter for enforcement imagery: a
different radiometry on each date, a shift of one or two pixels between
dates, flips and rotations, scale, dropping NIR, and swapping the dates
(new construction seen backwards is demolition, which is not flagged, so
the label becomes empty).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from queue import Empty

import numpy as np
from scipy import ndimage

from satcheck.datasets import load_dataset
from satcheck.errors import DatasetError
from satcheck.model.runtime import to_input
from satcheck.radiometry import normalise_pair
from satcheck.synth.scene import make_pair

IGNORE = 255


@dataclass
class Example:
    before: np.ndarray  # float32 (4, h, w) reflectance-like; NIR plane may be absent (3 bands)
    after: np.ndarray
    label: np.ndarray  # uint8 (h, w): 0, 1, or IGNORE
    change_class: np.ndarray  # uint8 (h, w): 0 unknown, 1 construction, 2 excavation
    gsd: float = 0.5  # metres per pixel (real high-resolution pairs: about 0.5)


# ----------------------------------------------------------------------------- sources

ZOOM = (0.6, 1.6)  # crops are zoomed by a log-uniform factor in this range
COARSE_ZOOM = (1.0, 2.0)  # 10 m imagery is only ever enlarged (uniform): the network never sees coarser pixels
NAIP_M = 5.0  # the NAIP series of ../shared/data is resampled to 5 m
OSCD_M = 10.0


def pixel_range(sizes: dict[str, list[float]]) -> list[float]:
    """Pixel sizes (m) the network sees in training: each source's pixel sizes (by source name) over its zoom."""
    lo = [g / (COARSE_ZOOM if name == "oscd" else ZOOM)[1] for name, gs in sizes.items() for g in gs]
    hi = [g / (COARSE_ZOOM if name == "oscd" else ZOOM)[0] for name, gs in sizes.items() for g in gs]
    return [round(min(lo), 2), round(max(hi), 2)]


def _synth_one(args) -> Example:
    seed, size, gsd = args
    rng = np.random.default_rng(seed)
    p = make_pair(seed, (size, size), gsd, rich=False, collar=False, cloud=rng.random() < 0.3,
                  changes=rng.random() < 0.85, min_builds=max(2, int(6 * (size * gsd / 384) ** 2)))
    label = (p.truth > 0).astype(np.uint8)
    # Pixels under cloud carry no label either way.
    return Example(p.before, p.after, label, p.truth.copy(), gsd)


def synthetic_pool(n: int, seed: int, size: int = 384, workers: int | None = None) -> list[Example]:
    rng = np.random.default_rng(seed)
    jobs = [(int(seed * 100_000 + i), size, float(rng.choice([0.5, 0.8, 1.0, 1.0, 1.5, 2.0]))) for i in range(n)]
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1:
        with get_context("fork").Pool(workers) as pool:
            return pool.map(_synth_one, jobs, chunksize=4)
    return [_synth_one(j) for j in jobs]


def folder_pool(root: Path, names: list[str] | None) -> list[Example]:
    out = []
    for p in load_dataset(root, names):
        cls = p.change_class if p.change_class is not None else p.label.astype(np.uint8)
        out.append(Example(p.before[:4], p.after[:4], p.label, cls, p.px_m or 0.5))
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
        out.append(Example(before, after, label, label.copy(), OSCD_M))
    return out


# ----------------------------------------------------------------------------- sampling

class ExampleSampler:
    """Draws augmented, normalised training crops from weighted sources."""

    def __init__(self, sources: dict[str, tuple[float, list]], crop: int, seed: int,
                 paste_objects: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 paste_real: float = 0.0, normalise: str = "histogram"):
        self.names = [k for k, (w, items) in sources.items() if items and w > 0]
        weights = np.asarray([sources[k][0] for k in self.names], float)
        self.p = weights / weights.sum()
        self.sources = {k: sources[k][1] for k in self.names}
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.paste = paste_objects or []
        self.paste_real = paste_real
        self.normalise = normalise

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        xs_b, xs_a, ys, cs = [], [], [], []
        for _ in range(n):
            src = self.names[self.rng.choice(len(self.names), p=self.p)]
            b, a, y, c = self._draw(src)
            xs_b.append(b)
            xs_a.append(a)
            ys.append(y)
            cs.append(c)
        return np.stack(xs_b), np.stack(xs_a), np.stack(ys), np.stack(cs)

    # --------------------------------------------------------------- one example
    def _draw(self, src: str):
        rng = self.rng
        if src == "naip":
            ex = self._naip_example()
        else:
            items = self.sources[src]
            ex = items[rng.integers(len(items))]
        scale = float(np.exp(rng.uniform(*np.log(ZOOM))))
        if src == "oscd":
            scale = float(rng.uniform(*COARSE_ZOOM))
        b, a, y, c = self._crop(ex, scale)
        if self.paste_real and self.paste and src not in ("naip", "oscd") and rng.random() < self.paste_real:
            # Real buildings (from 0.5 m pairs) on synthetic farmland and in other real pairs, at the crop's scale.
            y, c = y.copy(), c.copy()
            k = 0.5 * scale / ex.gsd
            for _ in range(int(rng.integers(1, 4))):
                self._paste(a, y, c, (0.7 * k, 1.4 * k), match=True)
        b, a, y, c = self._geometry(b, a, y, c)
        b = self._radiometry(b)
        a = self._radiometry(a)
        # Misregistration: shift the earlier date by up to 2 pixels.
        dy, dx = rng.integers(-2, 3, 2)
        b = np.roll(b, (int(dy), int(dx)), axis=(1, 2))
        if rng.random() < 0.15:
            b, a = a, b
            y = np.where(y == IGNORE, IGNORE, 0).astype(np.uint8)
            c = np.zeros_like(c)
        if b.shape[0] >= 4 and rng.random() < 0.4:
            b, a = b[:3], a[:3]
        ok = y != IGNORE
        nb, na = normalise_pair(b, a, ok if ok.sum() > 100 else np.ones_like(ok), self.normalise)
        return to_input(nb), to_input(na), y, c

    def _crop(self, ex: Example, scale: float):
        rng = self.rng
        h, w = ex.label.shape
        side = int(round(self.crop / scale))
        side = min(side, h, w)
        r = int(rng.integers(0, h - side + 1))
        c0 = int(rng.integers(0, w - side + 1))
        sl = (slice(r, r + side), slice(c0, c0 + side))
        b, a = ex.before[:, sl[0], sl[1]], ex.after[:, sl[0], sl[1]]
        y, c = ex.label[sl], ex.change_class[sl]
        if side != self.crop:
            f = self.crop / side
            b = ndimage.zoom(b, (1, f, f), order=1)[:, : self.crop, : self.crop]
            a = ndimage.zoom(a, (1, f, f), order=1)[:, : self.crop, : self.crop]
            y = ndimage.zoom(y, f, order=0)[: self.crop, : self.crop]
            c = ndimage.zoom(c, f, order=0)[: self.crop, : self.crop]
        return b.astype(np.float32), a.astype(np.float32), y, c

    def _geometry(self, b, a, y, c):
        k = int(self.rng.integers(4))
        flip = self.rng.random() < 0.5
        out = []
        for arr, spatial in ((b, (1, 2)), (a, (1, 2)), (y, (0, 1)), (c, (0, 1))):
            arr = np.rot90(arr, k, axes=spatial)
            if flip:
                arr = np.flip(arr, axis=spatial[1])
            out.append(np.ascontiguousarray(arr))
        return out

    def _radiometry(self, img: np.ndarray) -> np.ndarray:
        rng = self.rng
        bands = img.shape[0]
        gain = rng.uniform(0.75, 1.3) * rng.uniform(0.9, 1.1, bands)
        gamma = rng.uniform(0.8, 1.25)
        haze = rng.uniform(0, 0.08) * np.asarray([0.8, 0.9, 1.0, 0.5][:bands])
        out = np.clip(img * gain[:, None, None], 0, 1) ** gamma + haze[:, None, None]
        out = out + rng.normal(0, rng.uniform(0.002, 0.015), out.shape)
        if rng.random() < 0.3:
            out = ndimage.gaussian_filter(out, (0, rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)))
        return out.astype(np.float32)

    def _naip_example(self) -> Example:
        """Two real NAIP years (crop change, misregistration, no construction), sometimes with pasted buildings."""
        rng = self.rng
        stack = self.sources["naip"]
        i, j = rng.choice(len(stack), 2, replace=False)
        side = 256
        h, w = stack[0].shape[1:]
        r, c = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        b = stack[min(i, j)][:, r:r + side, c:c + side].copy()
        a = stack[max(i, j)][:, r:r + side, c:c + side].copy()
        y = np.zeros((side, side), np.uint8)
        if self.paste and rng.random() < 0.7:
            for _ in range(int(rng.integers(1, 4))):
                # Real objects come from 0.5 m imagery; NAIP here is 5 m, so shrink them.
                self._paste(a, y, None, (0.3, 0.8))
        # NAIP frames carry real nodata at their edges.
        y[(b[:3].sum(0) == 0) | (a[:3].sum(0) == 0)] = IGNORE
        return Example(b, a, y, (y == 1).astype(np.uint8))

    def _paste(self, a: np.ndarray, y: np.ndarray, c: np.ndarray | None, zoom: tuple[float, float],
               match: bool = False) -> None:
        """Paste one real changed object into the later date ``a`` and label it construction.

        ``match`` scales the object's bands by the ratio of the two images'
        medians, so a roof from bright 8-bit imagery does not stand out of a
        darker scene by its brightness alone.
        """
        rng = self.rng
        obj, m, median = self.paste[int(rng.integers(len(self.paste)))]
        f = rng.uniform(*zoom)
        obj = ndimage.zoom(obj, (1, f, f), order=1)
        m = ndimage.zoom(m.astype(np.uint8), f, order=0).astype(bool)
        oh, ow = m.shape
        side_h, side_w = y.shape
        if oh < 3 or ow < 3 or oh >= side_h or ow >= side_w or m.sum() < 6:
            return
        r, c0 = int(rng.integers(0, side_h - oh)), int(rng.integers(0, side_w - ow))
        if match:
            obj = obj[:3] * (np.median(a[:3], axis=(1, 2)) / np.maximum(median[:3], 1e-3))[:, None, None]
        region = a[:3, r:r + oh, c0:c0 + ow]
        region[:, m] = obj[:3][:, m]
        if a.shape[0] >= 4:
            # No NIR in the source: roofs and concrete reflect NIR about like red.
            a[3, r:r + oh, c0:c0 + ow][m] = obj[0][m]
        y[r:r + oh, c0:c0 + ow][m] = 1
        if c is not None:
            c[r:r + oh, c0:c0 + ow][m] = 1


class _DrawFailed:
    """What the drawing process sends instead of a batch when drawing raised."""

    def __init__(self, error: BaseException):
        self.error = error


def _draw_batches(sampler: ExampleSampler, n: int, count: int, queue) -> None:
    try:
        for _ in range(count):
            queue.put(sampler.batch(n))
    except BaseException as e:  # noqa: BLE001 - handed to the training process, which re-raises it
        queue.put(_DrawFailed(e))


class BatchPrefetcher:
    """Draws a sampler's batches in a separate process, ``ahead`` batches in advance.

    Drawing a batch (cropping, zooming, per-date radiometry, normalisation)
    is single-threaded numpy and takes longer than a training step on a
    small CPU, so it runs beside the step instead of before it. One process
    draws every batch from one forked copy of the sampler, so the batches
    and their order are exactly those of ``sampler.batch`` called in turn:
    the same seed gives the same training with or without prefetching.
    """

    poll_s = 5.0  # how often a waiting training process checks that the drawing process is still there

    def __init__(self, sampler: ExampleSampler, n: int, count: int, ahead: int = 4):
        ctx = get_context("fork")
        self._queue = ctx.Queue(maxsize=max(1, ahead))
        self._process = ctx.Process(target=_draw_batches, args=(sampler, n, count, self._queue), daemon=True)
        self._process.start()

    def batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        while True:
            try:
                item = self._queue.get(timeout=self.poll_s)
                break
            except Empty:
                if not self._process.is_alive():
                    raise DatasetError(f"the process drawing training batches stopped (exit code "
                                       f"{self._process.exitcode}); train with 'prefetch: 0' to see why") from None
        if isinstance(item, _DrawFailed):
            raise item.error
        return item

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()

    def __enter__(self) -> "BatchPrefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
