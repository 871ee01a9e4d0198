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

from satcheck.align import Pair, PairReader
from satcheck.atomic import atomic_path
from satcheck.config import RunConfig
from satcheck.coregister import Shift
from satcheck.detect.cleanup import clean_mask
from satcheck.detect.polygons import Piece, window_pieces
from satcheck.masks import mask_warning
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

    def mask_report(self) -> dict[str, float]:
        """Shares of the pair masked as cloud or shadow (either date) and without data, as run.json gives them."""
        n = max(self.pixels, 1)
        return {"cloud_shadow": round(self.masked / n, 4), "nodata": round(self.nodata / n, 4)}

    def shift_report(self, pair: Pair) -> list[dict]:
        """Per earlier tile: its name and :meth:`Shift.as_dict`, as run.json gives them; tiles whose chips disagreed
        also get ``windows``, how the pair's windows measured on their own moved."""
        return [{"tile": b.path.name} | s.as_dict() | ({"windows": self.windows} if self.windows and s.disputed
                                                       else {}) for b, s in zip(pair.befores, self.shifts)]


def detect_pair(pair: Pair, detector, config: RunConfig, prob_path: Path | None,
                progress: Callable[[int], None] | None = None) -> TileResult:
    """Score, clean and polygonise one pair; write its probability COG to ``prob_path`` (None: skip)."""
    a = pair.after
    px_area = pair.after.pixel_area_m2
    halo = max(config.window.halo, detector.halo + config.cleanup.open_px + config.cleanup.close_px + 2)
    pieces: list[Piece] = []
    n_masked = n_nodata = done = 0
    profile = {"driver": "GTiff", "width": a.width, "height": a.height, "count": 1, "dtype": "uint8",
               "crs": a.crs, "transform": a.transform, "nodata": PROB_NODATA, "tiled": True,
               # The scratch copy lives seconds: the fastest codec; the COG made from it is DEFLATE.
               "blockxsize": 512, "blockysize": 512, "compress": "zstd", "zstd_level": 1}
    dst = scratch = None
    if prob_path is not None and config.output.probability_cog:
        prob_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_scratch(prob_path)
        fd, name = tempfile.mkstemp(prefix=f".{prob_path.stem}.", suffix=".scratch.tif", dir=prob_path.parent)
        os.close(fd)
        scratch = Path(name)
        dst = rasterio.open(scratch, "w", **profile)
    cores = window_grid(a.width, a.height, config.window.size, pair.window)
    grown = [with_halo(c, halo, a.width, a.height) for c in cores]
    try:
        readers = config.window.readers or min(4, max(1, (config.detect.model.threads or os.cpu_count() or 1) // 2))
        with PairReader(pair, config, readers) as reader, ThreadPoolExecutor(readers) as io:
            shifts = reader.shifts
            detector.prepare(reader.sample if detector.needs_sample else None, reader.px_m)
            warning = detector.imagery_warning()
            # Reading and decoding the next windows overlaps scoring this one (GDAL releases the GIL); with a
            # fast detector (a GPU) the model no longer hides the reading, so several windows are read at once.
            ahead = collections.deque(io.submit(reader.read, g[0]) for g in grown[:readers])
            for i, core in enumerate(cores):
                pw = ahead.popleft().result()
                if i + readers < len(cores):
                    ahead.append(io.submit(reader.read, grown[i + readers][0]))
                rows, cols = grown[i][1]
                scores = detector.score(pw)
                mask = (scores.probability >= detector.threshold) & pw.valid
                mask = clean_mask(mask, config.cleanup, px_area)[rows, cols]
                prob = scores.probability[rows, cols]
                n_masked += int(pw.masked[rows, cols].sum())
                n_nodata += int((~pw.valid[rows, cols] & ~pw.masked[rows, cols]).sum())
                if dst is not None:
                    valid = pw.valid[rows, cols]
                    q = np.where(valid, np.round(np.clip(prob, 0, 1) * PROB_SCALE), PROB_NODATA).astype(np.uint8)
                    dst.write(q[None], window=core)
                pieces.extend(window_pieces(mask, prob, scores.change_type[rows, cols],
                                            rasterio.windows.transform(core, a.transform), a.path.name))
                done += int(core.width * core.height)
                if progress:
                    progress(done)
            windows = reader.window_report()
        if dst is not None:
            dst.close()
            with atomic_path(prob_path) as tmp:
                rasterio.shutil.copy(scratch, tmp, driver="COG", compress="DEFLATE", overview_resampling="average",
                                     num_threads="ALL_CPUS")
    finally:
        if dst is not None:
            dst.close()
            scratch.unlink(missing_ok=True)
    share = n_masked / max(pair.pixels, 1)
    return TileResult(pair.name, pieces, pair.pixels, n_masked, shifts, warning, windows, nodata=n_nodata,
                      mask_warning=mask_warning(pair.after.path.name, share, config.masks))


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
