"""Drawing training crops: weighted sources, augmentation, pasted real objects, prefetching.

Every example is drawn from a seeded generator and goes through the same
radiometric normalisation as a run (:mod:`satcheck.radiometry`), then
through the augmentations that matter for enforcement imagery: a
different radiometry on each date, a shift of one or two pixels between
dates, flips and rotations, scale, dropping NIR, and swapping the dates
(new construction seen backwards is demolition, which is not flagged, so
the label becomes empty).
"""

from __future__ import annotations

from multiprocessing import get_context
from queue import Empty

import numpy as np
from scipy import ndimage

from satcheck.errors import DatasetError
from satcheck.model.data import BUILDING, COARSE_ZOOM, IGNORE, SUPERVISES, Example, source_zoom
from satcheck.model.runtime import to_input
from satcheck.radiometry import normalise_pair


class ExampleSampler:
    """Draws augmented, normalised training crops from weighted sources."""

    def __init__(self, sources: dict[str, tuple[float, list]], crop: int, seed: int,
                 paste_objects: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 paste_real: float = 0.0, normalise: str = "histogram",
                 zooms: dict[str, tuple[float, float]] | None = None):
        self.names = [k for k, (w, items) in sources.items() if items and w > 0]
        weights = np.asarray([sources[k][0] for k in self.names], float)
        self.p = weights / weights.sum()
        self.sources = {k: sources[k][1] for k in self.names}
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.paste = paste_objects or []
        self.paste_real = paste_real
        self.normalise = normalise
        self.zooms = {k: source_zoom(k, zooms) for k in self.names}

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Before, after (n, 5, crop, crop), label, change class (n, crop, crop) and what each label speaks
        of (n,: index into SUPERVISES)."""
        xs_b, xs_a, ys, cs, gs = [], [], [], [], []
        for _ in range(n):
            src = self.names[self.rng.choice(len(self.names), p=self.p)]
            b, a, y, c, g = self._draw(src)
            xs_b.append(b)
            xs_a.append(a)
            ys.append(y)
            cs.append(c)
            gs.append(SUPERVISES.index(g))
        return np.stack(xs_b), np.stack(xs_a), np.stack(ys), np.stack(cs), np.asarray(gs, np.int64)

    # --------------------------------------------------------------- one example
    def _draw(self, src: str):
        rng = self.rng
        if src == "naip":
            ex = self._naip_example()
        else:
            items = self.sources[src]
            ex = items[rng.integers(len(items))]
        scale = float(np.exp(rng.uniform(*np.log(self.zooms[src]))))
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
        return to_input(nb), to_input(na), y, c, ex.supervises

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
        return Example(b, a, y, np.where(y == 1, BUILDING, 0).astype(np.uint8), supervises="all")

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
            c[r:r + oh, c0:c0 + ow][m] = BUILDING


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

    def batch(self) -> tuple[np.ndarray, ...]:
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


