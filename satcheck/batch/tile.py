"""Detection on one tile pair, window by window, with the next window read while this one is scored."""

from __future__ import annotations

import collections
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.shutil

from satcheck.align import PairReader
from satcheck.atomic import atomic_path
from satcheck.config import RunConfig
from satcheck.coregister import Shift
from satcheck.detect.cleanup import clean_mask
from satcheck.detect.polygons import Piece, window_pieces
from satcheck.masks import mask_warning
from satcheck.pairs import Pair
from satcheck.windows import window_grid, with_halo

PROB_NODATA = 255
PROB_SCALE = 250  # probability 1.0 is stored as 250


@dataclass
class TileResult:
    name: str
    pieces: list[Piece]
    pixels: int
    masked: int
    shifts: tuple[Shift, ...] = ()  # each earlier tile's misregistration, measured and corrected
    warning: str | None = None  # the detector's Detector.imagery_warning for this pair
    windows: dict | None = None  # PairReader.window_report: windows measured on their own
    nodata: int = 0  # pixels without data on either date (not counted in ``masked``)
    mask_warning: str | None = None  # masks.mask_warning: much of the pair is cloud or shadow
    probability: ProbabilityWriter | None = None  # detect_pair(wait=False): its COG, still being written

    def mask_report(self) -> dict[str, float]:
        """Shares of the pair masked as cloud or shadow (either date) and without data, as run.json gives them."""
        n = max(self.pixels, 1)
        return {"cloud_shadow": round(self.masked / n, 4), "nodata": round(self.nodata / n, 4)}

    def shift_report(self, pair: Pair) -> list[dict]:
        """Per earlier tile: its name and :meth:`Shift.as_dict`, as run.json gives them; tiles whose chips disagreed
        also get ``windows``, how the pair's windows measured on their own moved."""
        return [{"tile": b.path.name} | s.as_dict() | ({"windows": self.windows} if self.windows and s.disputed
                                                       else {}) for b, s in zip(pair.befores, self.shifts)]


class ProbabilityWriter:
    """The probability COG of one pair, written off the critical path by one thread of its own.

    Each window's probability is quantised and written to a scratch GeoTIFF there, and after the last window the
    COG (DEFLATE, overviews) is made from it there too, while the run goes on with the next pair or its patches;
    GDAL releases the GIL while it compresses. The thread owns the dataset (rasterio closes a handle only in the
    thread that opened it). At most ``ahead`` windows wait to be written, so memory stays bounded. :meth:`wait`
    returns once the COG is in place and raises what failed; :meth:`close` (also on error) waits and removes
    the scratch copy.
    """

    def __init__(self, path: Path, profile: dict, ahead: int = 2):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_scratch(path)
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".scratch.tif", dir=path.parent)
        os.close(fd)
        self.scratch = Path(name)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="satcheck-cog")
        self._ahead = ahead
        self._pending: collections.deque = collections.deque()
        self._dst = None
        self._done = None
        try:
            self._dst = self._pool.submit(rasterio.open, self.scratch, "w", **profile).result()
        except BaseException:
            self.close()
            raise

    def write(self, prob: np.ndarray, valid: np.ndarray, window) -> None:
        """Queue the probability (0..1) of one core window; ``valid``: where it has data (else nodata)."""
        while len(self._pending) >= self._ahead:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, prob, valid, window))

    def _write(self, prob: np.ndarray, valid: np.ndarray, window) -> None:
        q = np.where(valid, np.round(np.clip(prob, 0, 1) * PROB_SCALE), PROB_NODATA).astype(np.uint8)
        self._dst.write(q[None], window=window)

    def finish(self) -> None:
        """After the last window: make the COG in the writer's thread; :meth:`wait` for it."""
        if self._done is None:
            self._done = self._pool.submit(self._finish)

    def _finish(self) -> None:
        self._dst.close()
        with atomic_path(self.path) as tmp:
            rasterio.shutil.copy(self.scratch, tmp, driver="COG", compress="DEFLATE", overview_resampling="average",
                                 num_threads="ALL_CPUS")

    def wait(self) -> None:
        """Block until the COG is written (raising what failed in the writer's thread); then :meth:`close`."""
        try:
            while self._pending:
                self._pending.popleft().result()
            if self._done is not None:
                self._done.result()
        finally:
            self.close()

    def close(self) -> None:
        """Stop (what was queued still runs), close the scratch copy and remove it; idempotent."""
        if self._pool is None:
            return
        if self._dst is not None:
            self._pool.submit(self._dst.close)
        self._pool.shutdown(wait=True)
        self._pool = None
        self.scratch.unlink(missing_ok=True)


def detect_pair(pair: Pair, detector, config: RunConfig, prob_path: Path | None,
                progress: Callable[[int], None] | None = None, wait: bool = True) -> TileResult:
    """Score, clean and polygonise one pair; write its probability COG to ``prob_path`` (None: skip).

    ``wait=False`` returns while the COG is still being made (in a thread of its own): the caller then owns
    ``TileResult.probability`` and must :meth:`~ProbabilityWriter.wait` for it (or close it).
    """
    a = pair.after
    px_area = pair.after.pixel_area_m2
    halo = max(config.window.halo, detector.halo + config.cleanup.open_px + config.cleanup.close_px + 2)
    pieces: list[Piece] = []
    n_masked = n_nodata = done = 0
    profile = {"driver": "GTiff", "width": a.width, "height": a.height, "count": 1, "dtype": "uint8",
               "crs": a.crs, "transform": a.transform, "nodata": PROB_NODATA, "tiled": True,
               # The scratch copy lives seconds: the fastest codec; the COG made from it is DEFLATE.
               "blockxsize": 512, "blockysize": 512, "compress": "zstd", "zstd_level": 1}
    writer = None
    if prob_path is not None and config.output.probability_cog:
        writer = ProbabilityWriter(prob_path, profile)
    cores = window_grid(a.width, a.height, config.window.size, pair.window)
    grown = [with_halo(c, halo, a.width, a.height) for c in cores]
    try:
        readers = config.window.readers or min(4, max(1, (config.detect.model.threads or os.cpu_count() or 1) // 2))
        with PairReader(pair, config, readers) as reader, ThreadPoolExecutor(readers) as io, \
                ThreadPoolExecutor(1, thread_name_prefix="satcheck-window") as after_model:
            shifts = reader.shifts
            detector.prepare(reader.sample if detector.needs_sample else None, reader.px_m)
            warning = detector.imagery_warning()

            def cleaned(i: int, pw, scores) -> tuple[list[Piece], int, int]:
                """Threshold, cleanup, counts, probability and polygons of window ``i`` after scoring."""
                core, (rows, cols) = cores[i], grown[i][1]
                mask = (scores.probability >= detector.threshold) & pw.valid
                mask = clean_mask(mask, config.cleanup, px_area)[rows, cols]
                prob = scores.probability[rows, cols]
                masked = int(pw.masked[rows, cols].sum())
                nodata = int((~pw.valid[rows, cols] & ~pw.masked[rows, cols]).sum())
                if writer is not None:
                    writer.write(prob, pw.valid[rows, cols], core)
                return (window_pieces(mask, prob, scores.change_type[rows, cols],
                                      rasterio.windows.transform(core, a.transform), a.path.name), masked, nodata)

            # Reading and decoding the next windows overlaps scoring this one (GDAL releases the GIL); with a
            # fast detector (a GPU) the model no longer hides the reading, so several windows are read at once.
            # What comes after the model (cleanup, polygons, the probability) is done in a thread of its own
            # while the next window is scored; pieces are kept in the order of the windows.
            ahead = collections.deque(io.submit(reader.read, g[0]) for g in grown[:readers])
            behind = None  # the previous window's cleanup, running while this one is scored

            def settle() -> None:
                nonlocal n_masked, n_nodata, done
                got, masked, nodata = behind[0].result()
                pieces.extend(got)
                n_masked += masked
                n_nodata += nodata
                done += int(behind[1].width * behind[1].height)
                if progress:
                    progress(done)

            for i, core in enumerate(cores):
                pw = ahead.popleft().result()
                if i + readers < len(cores):
                    ahead.append(io.submit(reader.read, grown[i + readers][0]))
                scores = detector.score(pw)
                if behind is not None:
                    settle()
                behind = (after_model.submit(cleaned, i, pw, scores), core)
            if behind is not None:
                settle()
            windows = reader.window_report()
        if writer is not None:
            writer.finish()
            if wait:
                writer.wait()
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    share = n_masked / max(pair.pixels, 1)
    return TileResult(pair.name, pieces, pair.pixels, n_masked, shifts, warning, windows, nodata=n_nodata,
                      mask_warning=mask_warning(pair.after.path.name, share, config.masks),
                      probability=None if wait else writer)


def _remove_stale_scratch(prob_path: Path) -> None:
    """Scratch copies of this tile's probability that a killed process left (``.STEM.XXXXXXXX.scratch.tif``, as
    :func:`tempfile.mkstemp` names them); a tile is scored by one process at a time."""
    own = re.compile(re.escape(f".{prob_path.stem}.") + r"[A-Za-z0-9_]{8}\.scratch\.tif")
    for f in prob_path.parent.iterdir():
        if own.fullmatch(f.name):
            f.unlink(missing_ok=True)


def reproject_pieces(pieces: list[Piece], src, dst) -> list[Piece]:
    if not pieces or src == dst:
        return pieces
    g = gpd.GeoSeries([p.geometry for p in pieces], crs=src).to_crs(dst)
    for p, geom in zip(pieces, g):
        p.geometry = geom
    return pieces


def write_pieces(pieces: list[Piece], crs, path: Path) -> None:
    rows = [{"score_sum": p.score_sum, "n_px": p.n_px, "n_construction": p.n_construction,
             "n_excavation": p.n_excavation, "source": p.source, "n_building": p.n_building,
             "n_hardened": p.n_hardened, "geometry": p.geometry} for p in pieces]
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs) if rows else \
        gpd.GeoDataFrame({"score_sum": [], "n_px": [], "n_construction": [], "n_excavation": [], "source": [],
                          "n_building": [], "n_hardened": []}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, layer="pieces", driver="GPKG", engine="pyogrio")


def read_pieces(path: Path, crs) -> list[Piece]:
    gdf = gpd.read_file(path, layer="pieces", engine="pyogrio")
    if len(gdf) and gdf.crs is not None and gdf.crs != crs:
        gdf = gdf.to_crs(crs)
    # Pieces written before building and hardened ground were told apart have no such columns.
    return [Piece(r.geometry, float(r.score_sum), int(r.n_px), int(r.n_construction), int(r.n_excavation), str(r.source),
                  int(getattr(r, "n_building", 0)), int(getattr(r, "n_hardened", 0)))
            for r in gdf.itertuples()]
