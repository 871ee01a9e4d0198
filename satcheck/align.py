"""Reading a pair (:mod:`satcheck.pairs`): two dates of the same place on one grid.

The later tile's grid is the reference.  Earlier tiles are warped onto it
on the fly (``WarpedVRT``), so a pair can mix CRSs, resolutions and
tilings.  Statistics that must be the same for every window of a pair
(histogram matching, value scaling, cloud masks) come from one decimated
read when the pair is opened; pixels are then read window by window.
"""

from __future__ import annotations

import contextlib
import functools
import math
import queue
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NodataShadowWarning
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from satcheck.config import RunConfig
from satcheck.coregister import NO_SHIFT, Shift, estimate_shift, measure_arrays, measuring_chips, shift_array
from satcheck.errors import NoOverlapError, SatcheckError, TileReadError
from satcheck.masks import dn_scale, pair_masks, upsample_lookup
from satcheck.pairs import Pair, footprint, grid_offset
from satcheck.provider_masks import provider_cloud
from satcheck.radiometry import Normalisation, apply_table, fit_normalisation
from satcheck.tiles import TileInfo
from satcheck.windows import intersect


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class PairStatistics:
    """What a pair's decimated read gives every window: the scale of each date's stored values, the cloud and
    shadow mask on the decimated grid, the normalisation fitted there (and its lookup tables for integer tiles),
    and the decimated reflectances with where both are clear."""

    scale_b: float
    scale_a: float
    masked_lr: np.ndarray
    norm: Normalisation
    table_b: np.ndarray | None
    table_a: np.ndarray | None
    sample_raw: tuple[np.ndarray, np.ndarray, np.ndarray]


_RESAMPLING = {"nearest": Resampling.nearest, "bilinear": Resampling.bilinear, "cubic": Resampling.cubic}

# An alpha band beside a nodata value is common in delivered tiles; nodata wins, as intended.
warnings.filterwarnings("ignore", category=NodataShadowWarning)


@dataclass
class PairWindow:
    """Pixels of one window of a pair, both dates scaled to about 0..1."""

    window: Window
    before: np.ndarray  # float32 (bands, h, w)
    after: np.ndarray
    valid: np.ndarray  # bool (h, w): both dates have data, no cloud or shadow
    masked: np.ndarray  # bool (h, w): cloud or shadow on either date


class _ShiftedSource:
    """An earlier tile on the later tile's pixel grid, read with shifted, boundless windows."""

    def __init__(self, src, offset: tuple[int, int]):
        self.src = src
        self.row, self.col = offset
        self.count, self.dtypes = src.count, src.dtypes

    def _shift(self, kw: dict) -> dict:
        w = kw["window"]
        moved = Window(w.col_off + self.col, w.row_off + self.row, w.width, w.height)
        inside = (moved.col_off >= 0 and moved.row_off >= 0 and moved.col_off + moved.width <= self.src.width
                  and moved.row_off + moved.height <= self.src.height)
        return kw | {"window": moved, "boundless": not inside}

    def read(self, **kw):
        kw = self._shift(kw)
        return self.src.read(fill_value=0, **kw) if kw["boundless"] else self.src.read(**kw)

    def read_masks(self, band: int, **kw):
        return self.src.read_masks(band, **self._shift(kw))


class PairReader(contextlib.AbstractContextManager):
    """Reads aligned, normalised windows of a :class:`Pair`.

    ``read`` may be called from up to ``readers`` threads at once. GDAL's dataset handles must not be used by
    two threads at a time, and rasterio closes a handle only in the thread that opened it, so all handles are
    opened here, one set per reader, and each read borrows a set; the statistics are computed once.
    """

    def __init__(self, pair: Pair, config: RunConfig, readers: int = 1):
        self.pair = pair
        self.config = config
        self._stack = contextlib.ExitStack()
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self.px_m = pair.after.pixel_m
        self._before_dtype = np.result_type(*(b.dtype for b in pair.befores)).name
        try:
            # The shifts are measured in a thread of their own while the decimated read, the masks and the
            # statistics are made from the earlier tiles where their georeference puts them; those are kept
            # where the shifts do not move the earlier tiles (most pairs: none agreed on, or less than half a
            # pixel on the same grid), else made again from the moved tiles.
            early_handles = contextlib.ExitStack()
            self._stack.enter_context(early_handles)
            with ThreadPoolExecutor(1, thread_name_prefix="satcheck-shifts") as pool:
                measuring = pool.submit(self._measure_shifts)
                try:
                    unmoved = self._open(early_handles)
                    early = self._statistics(None, unmoved)
                except SatcheckError as exc:  # raised below only if the moved tiles say the same
                    early = exc
                except BaseException:
                    measuring.cancel()
                    raise
                self.shifts = measuring.result()
            # One shift for a whole earlier tile fails where the misregistration varies across it (relief
            # displacement in hills, an earlier date stitched from several scenes): then each window, about a
            # kilometre, is measured on its own. Pairs whose tiles agreed on a shift, or were too small to measure,
            # pay nothing for this.
            self._per_window = (config.align.coregister_windows and config.align.coregister_max_px > 0
                                and any(s.disputed for s in self.shifts))
            self.window_shifts: list[Shift] = []  # one per window measured (appended from the reader threads)
            moved = self._moves(self.shifts)
            if moved:
                early_handles.close()
            # The handles of the decimated read (their blocks in GDAL's cache) read the first windows.
            sets = [] if moved else [unmoved]
            while len(sets) < max(1, readers):
                sets.append(self._open(self._stack, self.shifts))
            stats = self._statistics(self.shifts, sets[0]) if moved else early
            if isinstance(stats, BaseException):
                raise stats
            self._stats: PairStatistics = stats
            for handles in sets:
                self._idle.put(handles)
        except BaseException:
            self._stack.close()
            raise

    @contextlib.contextmanager
    def _sources(self):
        """A set of handles for this read: the later tile, and each earlier tile on the later tile's grid."""
        handles = self._idle.get()
        try:
            yield handles
        finally:
            self._idle.put(handles)

    def _open(self, stack: contextlib.ExitStack, shifts: Sequence[Shift] | None = None) -> tuple:
        """A set of handles, each earlier tile moved by its shift (none: as georeferenced), closed with ``stack``."""
        a = self.pair.after
        try:
            after = stack.enter_context(rasterio.open(a.path))
            befores = []
            for b, shift in zip(self.pair.befores, shifts or [NO_SHIFT] * len(self.pair.befores)):
                rows, cols = shift.rounded()
                src = stack.enter_context(rasterio.open(b.path))
                offset = grid_offset(b, a)
                if offset is not None:
                    # Same CRS, pixel size and pixel edges: read directly, no resampling (whole-pixel shifts).
                    befores.append(_ShiftedSource(src, (offset[0] + rows, offset[1] + cols)))
                    continue
                # Warped anyway: the earlier date moves by the measured shift, fractions of a pixel included.
                moved = a.transform * Affine.translation(shift.cols, shift.rows)
                befores.append(stack.enter_context(WarpedVRT(
                    src, crs=a.crs, transform=moved, width=a.width, height=a.height,
                    resampling=_RESAMPLING[self.config.align.resampling],
                    src_nodata=_source_nodata(b),
                    nodata=0 if b.nodata is None else b.nodata)))
        except rasterio.errors.RasterioIOError as exc:
            raise TileReadError(f"{a.path}: cannot be read ({exc}); check the file") from None
        return after, befores

    def _measure_shifts(self) -> tuple[Shift, ...]:
        """The misregistration of each earlier tile, measured on chips spread over the part of the pair it covers
        (earlier tiles from different scenes are each off by their own amount)."""
        a, max_px = self.pair.after, self.config.align.coregister_max_px
        if max_px <= 0:
            return (NO_SHIFT,) * len(self.pair.befores)
        shifts = []
        with contextlib.ExitStack() as stack:
            after, befores = self._open(stack)
            for b, src in zip(self.pair.befores, befores):
                part = footprint(b, a)
                part = intersect(part, self.pair.window) if part is not None else None
                chips = []
                for w in measuring_chips(part) if part is not None else []:
                    aft, a_ok = _read_source(after, w, None, a.band_indexes)
                    before, b_ok = _read_source(src, w, None, b.band_indexes)
                    chips.append((before, aft, a_ok & b_ok))
                shifts.append(estimate_shift(chips, max_px))
        return tuple(shifts)

    # ----------------------------------------------------------------- statistics
    def _moves(self, shifts: Sequence[Shift]) -> bool:
        """Whether ``shifts`` move any earlier tile from where its georeference puts it, as :meth:`_open` reads it:
        by a whole pixel on the later tile's grid, by any amount where it is warped onto it."""
        a = self.pair.after
        return any((s.rounded() != (0, 0)) if grid_offset(b, a) is not None else (s.rows != 0 or s.cols != 0)
                   for b, s in zip(self.pair.befores, shifts))

    def _read_dn(self, window: Window, out_shape: tuple[int, int] | None = None, handles: tuple | None = None):
        """Stored values of both dates over ``window`` and where each date has data; from ``handles`` (a set of
        :meth:`_open`), else from a set borrowed for the read. A decimated read (``out_shape``) reads the later
        date in a thread of its own meanwhile (GDAL releases the GIL while it decodes)."""
        if handles is None:
            with self._sources() as borrowed:
                return self._read_dn(window, out_shape, borrowed)
        after_src, before_srcs = handles
        later = None
        with contextlib.ExitStack() as stack:
            if out_shape is not None:
                pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="satcheck-read"))
                later = pool.submit(_read_source, after_src, window, out_shape, self.pair.after.band_indexes)
            else:
                after, a_ok = _read_source(after_src, window, out_shape, self.pair.after.band_indexes)
            before, b_ok = None, None
            for src, tile in zip(before_srcs, self.pair.befores):
                data, ok = _read_source(src, window, out_shape, tile.band_indexes)
                if before is None:
                    # The usual case, one earlier tile: no per-pixel copy (values outside b_ok are never used).
                    before, b_ok = data.astype(self._before_dtype, copy=False), ok
                    if not ok.all():
                        before[:, ~ok] = 0  # as where no earlier tile covers: what detectors see at nodata
                    continue
                ok &= ~b_ok
                np.copyto(before, data, where=ok[None], casting="unsafe")
                b_ok |= ok
            if later is not None:
                after, a_ok = later.result()
        return before, after, b_ok, a_ok

    def _statistics(self, shifts: Sequence[Shift] | None, handles: tuple | None = None) -> PairStatistics:
        """The pair's decimated read (the earlier tiles moved by ``shifts``; None: as georeferenced; from
        ``handles`` where given, a set of :meth:`_open` for those shifts), its cloud and shadow masks and the
        normalisation fitted on it."""
        cfg = self.config
        win = self.pair.window
        side = cfg.normalise.sample_px
        f = max(1.0, max(win.width, win.height) / side)
        shape = (max(1, int(round(win.height / f))), max(1, int(round(win.width / f))))
        with contextlib.ExitStack() as stack:
            before, after, b_ok, a_ok = self._read_dn(win, shape, handles or self._open(stack, shifts))
        if shape[0] * shape[1] < 16:
            raise NoOverlapError(
                f"{self.pair.after.path}: the dates overlap by only {win.width} x {win.height} px of it, too few to "
                "compare; check that both dates show the same place at a similar pixel size")
        empty = [t.path for t, has in ((self.pair.befores[0], b_ok), (self.pair.after, a_ok)) if has.sum() < 16]
        if empty:
            raise NoOverlapError(
                f"{empty[0]}: has no data where the dates overlap (nodata, or NaN, everywhere), so nothing can be "
                "compared; check the file (a failed export?), or drop the pair")
        before, after = before.astype(np.float32), after.astype(np.float32)
        scale_b = dn_scale(self._before_dtype, before[:, b_ok])
        scale_a = dn_scale(self.pair.after.dtype, after[:, a_ok])
        rb, ra = before / scale_b, after / scale_a
        lr_px = self.px_m * f
        a = self.pair.after
        # The decimated read's grid: the pair window in shape[0] x shape[1] cells, for the provider's masks.
        lr_grid = (a.crs, a.transform * Affine.translation(win.col_off, win.row_off)
                   * Affine.scale(win.width / shape[1], win.height / shape[0]), shape)
        pv_b = provider_cloud(self.pair.befores, cfg.masks.cloud_mask, *lr_grid)
        pv_a = provider_cloud([a], cfg.masks.cloud_mask, *lr_grid)
        masked_lr = pair_masks(rb, b_ok, ra, a_ok, cfg.masks, lr_px, pv_b, pv_a)
        ok = b_ok & a_ok & ~masked_lr
        if ok.sum() < 16:
            raise NoOverlapError(
                f"{self.pair.after.path}: fewer than 16 sample pixels are clear on both dates; "
                "the pair is all nodata or cloud, drop it from the batch")
        norm = fit_normalisation(rb, ra, ok, cfg.normalise.method)
        return PairStatistics(scale_b, scale_a, masked_lr, norm, norm.table(scale_b, self._before_dtype, True),
                              norm.table(scale_a, self.pair.after.dtype, False), (rb, ra, ok))

    @functools.cached_property
    def sample(self) -> PairWindow:
        """A decimated, normalised view of the whole pair, for detectors that need scene statistics."""
        st = self._stats
        rb, ra, ok = st.sample_raw
        return PairWindow(self.pair.window, st.norm.apply(rb, True), st.norm.apply(ra, False), ok, st.masked_lr)

    # ----------------------------------------------------------------- windows
    def read(self, window: Window) -> PairWindow:
        """Both dates over ``window`` (on the later tile's grid), aligned and normalised."""
        before, after, b_ok, a_ok = self._read_dn(window)
        if self._per_window:
            before, b_ok = self._moved_in_window(before, after, b_ok, a_ok)
        pw = self.pair.window
        rows = slice(int(window.row_off - pw.row_off), int(window.row_off - pw.row_off + window.height))
        cols = slice(int(window.col_off - pw.col_off), int(window.col_off - pw.col_off + window.width))
        st = self._stats
        masked = _lookup_clipped(st.masked_lr, (int(pw.height), int(pw.width)), rows, cols)
        valid = b_ok & a_ok & ~masked
        return PairWindow(window, self._normalised(before, st.table_b, st.scale_b, True),
                          self._normalised(after, st.table_a, st.scale_a, False), valid, masked)

    def _moved_in_window(self, before: np.ndarray, after: np.ndarray, b_ok: np.ndarray,
                         a_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The earlier date of one window moved by the window's own shift, where its chips agree on one."""
        # Chips of 256 px: a quarter of the cost of the tile's 512 px ones, paid on every window.
        shift = measure_arrays(before, after, b_ok & a_ok, self.config.align.coregister_max_px, chip_px=256)
        if not shift.chips:
            return before, b_ok  # no chip measured: a window too narrow for chips (tile edges), or bare of edges
        self.window_shifts.append(shift)
        if shift.rounded() == (0, 0):
            return before, b_ok
        return shift_array(before, shift), shift_array(b_ok, shift)

    def window_report(self) -> dict[str, float | int] | None:
        """How the windows measured on their own moved: None where none was (no tile's chips disagreed)."""
        if not self.window_shifts:
            return None
        moved = [math.hypot(s.rows, s.cols) for s in self.window_shifts if s.agreed and s.rounded() != (0, 0)]
        return {"measured": len(self.window_shifts), "moved": len(moved),
                "largest_px": round(max(moved), 2) if moved else 0.0}

    def _normalised(self, dn: np.ndarray, table: np.ndarray | None, scale: float, before: bool) -> np.ndarray:
        if table is not None:
            return apply_table(table, dn)
        return self._stats.norm.apply(dn.astype(np.float32) / scale, before)

    def close(self) -> None:
        self._stack.close()

    def __exit__(self, *exc) -> None:
        self.close()


def _source_nodata(tile: TileInfo) -> float | None:
    """The value an earlier tile's pixels without data hold, for warping: its nodata tag, else NaN for float tiles
    (so the warp does not blend NaN into its neighbours), else none."""
    if tile.nodata is not None:
        return tile.nodata
    return float("nan") if np.dtype(tile.dtype).kind == "f" else None


def _read_source(src, window: Window, out_shape: tuple[int, int] | None,
                 indexes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Values of the image bands ``indexes`` and the data mask of one source over ``window``, at full resolution
    or decimated to ``out_shape``."""
    if out_shape is None:
        return _finite(src.read(indexes=indexes, window=window), src.read_masks(1, window=window) > 0)
    if isinstance(src, WarpedVRT):
        # Warping happens at the output resolution: GDAL's decimated read is the cheap path here.
        kw = {"window": window, "out_shape": out_shape, "resampling": Resampling.nearest}
        return _finite(src.read(indexes=indexes, **kw), src.read_masks(1, **kw) > 0)
    return _finite(*_decimated_by_strips(src, window, out_shape, indexes))


def _finite(data: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN (or infinity) in a float tile is nodata, whether or not the file says so: out of the data mask, and 0
    like every other pixel without data, so that no NaN reaches statistics, masks or detectors."""
    if data.dtype.kind != "f":
        return data, ok
    bad = ~np.isfinite(data).all(axis=0)
    if bad.any():
        data[:, bad] = 0
        ok = ok & ~bad
    return data, ok


def _decimated_by_strips(src, window: Window, out_shape: tuple[int, int], indexes: list[int], strip: int = 512):
    """Nearest-neighbour decimation, read as full-resolution strips.

    GDAL decodes every block for a decimated read anyway, and again for the mask; by strips, with the mask
    taken from blocks just decoded, the same pixels come back in well under half the time.
    """
    h, w = int(window.height), int(window.width)
    oh, ow = out_shape
    rows = np.minimum(((np.arange(oh) + 0.5) * h / oh).astype(int), h - 1)
    cols = np.minimum(((np.arange(ow) + 0.5) * w / ow).astype(int), w - 1)
    data = np.empty((len(indexes), oh, ow), src.dtypes[0])
    mask = np.empty((oh, ow), bool)
    for r0 in range(0, h, strip):
        i0, i1 = np.searchsorted(rows, r0), np.searchsorted(rows, r0 + strip)
        if i1 == i0:
            continue
        part = Window(window.col_off, window.row_off + r0, w, min(strip, h - r0))
        pick = rows[i0:i1] - r0
        data[:, i0:i1] = src.read(indexes=indexes, window=part)[:, pick][:, :, cols]
        mask[i0:i1] = src.read_masks(1, window=part)[pick][:, cols] > 0
    return data, mask


def _lookup_clipped(lowres: np.ndarray, full: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    """Like upsample_lookup, tolerating windows that reach past the pair window (halo at tile edge)."""
    h, w = full
    r0, r1 = rows.start, rows.stop
    c0, c1 = cols.start, cols.stop
    out = np.ones((r1 - r0, c1 - c0), bool)
    rr = slice(max(r0, 0), min(r1, h))
    cc = slice(max(c0, 0), min(c1, w))
    if rr.stop > rr.start and cc.stop > cc.start:
        out[rr.start - r0: rr.stop - r0, cc.start - c0: cc.stop - c0] = upsample_lookup(lowres, full, rr, cc)
    return out
