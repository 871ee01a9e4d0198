"""One run: two dates of tiles in, change polygons and probability rasters out."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from satcheck import __version__
from satcheck.align import Pair, PairReader, pair_tiles
from satcheck.atomic import atomic_path
from satcheck.batch.enforce import enforcement_outputs, patch_summary
from satcheck.config import RunConfig, dump_config
from satcheck.detect import get_detector
from satcheck.detect.cleanup import clean_mask
from satcheck.detect.polygons import Piece, merge_pieces, window_pieces
from satcheck.errors import OutputError
from satcheck.tiles import find_tiles, open_tile
from satcheck.windows import window_grid, with_halo

PROB_NODATA = 255
PROB_SCALE = 250  # probability 1.0 is stored as 250

Progress = Callable[[str, int, int], None]  # (pair name, pixels done, pixels total)


@dataclass
class RunResult:
    out: Path
    changes: gpd.GeoDataFrame
    pairs: list[Pair]
    detector: str
    seconds: float
    pixels: int
    masked_share: float
    outputs: dict[str, str] = field(default_factory=dict)
    patches: gpd.GeoDataFrame | None = None
    rule_problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        by_type = self.changes.groupby("change_type")["area_m2"].agg(["count", "sum"]) if len(self.changes) else None
        px_area = abs(self.pairs[0].after.res[0] * self.pairs[0].after.res[1]) if self.pairs else 0
        return {
            "satcheck": __version__,
            "detector": self.detector,
            "pairs": len(self.pairs),
            "megapixels": round(self.pixels / 1e6, 3),
            "area_km2": round(self.pixels * px_area / 1e6, 3),
            "masked_share": round(self.masked_share, 4),
            "changes": int(len(self.changes)),
            "changes_by_type": {} if by_type is None else {
                k: {"count": int(r["count"]), "area_m2": round(float(r["sum"]), 1)} for k, r in by_type.iterrows()},
            "change_area_m2": round(float(self.changes["area_m2"].sum()), 1) if len(self.changes) else 0.0,
            "seconds": round(self.seconds, 2),
            "mpx_per_s": round(self.pixels / 1e6 / max(self.seconds, 1e-9), 3),
            "outputs": self.outputs,
        } | ({"patches": patch_summary(self.patches), "rule_problems": self.rule_problems}
             if self.patches is not None else {})


def detect_changes(before: str | Path, after: str | Path, out: str | Path, config: RunConfig,
                   progress: Progress | None = None, rules: str | Path | None = None) -> RunResult:
    """Detect change between two dates of tiles and write the results under ``out``."""
    t0 = time.perf_counter()
    out = Path(out)
    befores = [open_tile(p) for p in find_tiles(before)]
    afters = [open_tile(p) for p in find_tiles(after)]
    pairs = pair_tiles(befores, afters)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder ({exc.strerror}); choose a writable --out") from None
    detector = get_detector(config.detect, pairs[0].after.count)
    crs = pairs[0].after.crs
    pieces: list[Piece] = []
    pixels = masked = 0
    outputs: dict[str, str] = {}
    total = sum(p.pixels for p in pairs)
    done = 0
    for pair in pairs:
        with PairReader(pair, config) as reader:
            detector.prepare(reader.sample, reader.px_m)
            prob_path = out / "probability" / f"{pair.name}.tif"
            pair_pieces, n_masked = _detect_pair(pair, reader, detector, config, prob_path,
                                                 lambda n: progress and progress(pair.name, done + n, total))
        done += pair.pixels
        pixels += pair.pixels
        masked += n_masked
        if pair.after.crs != crs:
            pair_pieces = _reproject_pieces(pair_pieces, pair.after.crs, crs)
        pieces.extend(pair_pieces)
        outputs.setdefault("probability", str(out / "probability"))
    px_area = abs(pairs[0].after.res[0] * pairs[0].after.res[1]) * _unit_factor(crs) ** 2
    changes = merge_pieces(pieces, crs, px_area, config.cleanup.min_area_m2)
    changes_path = out / "changes.gpkg"
    with atomic_path(changes_path) as tmp:
        changes.to_file(tmp, layer="changes", driver="GPKG", engine="pyogrio")
    outputs["changes"] = str(changes_path)
    patches, problems = None, []
    if rules is not None:
        patches, more, problems = enforcement_outputs(changes, pairs, rules, out, config)
        outputs.update(more)
    config_path = out / "config.yaml"
    with atomic_path(config_path) as tmp:
        tmp.write_text(dump_config(config), encoding="utf-8")
    outputs["config"] = str(config_path)
    result = RunResult(out, changes, pairs, detector.name, time.perf_counter() - t0, pixels,
                       masked / max(pixels, 1), outputs, patches, problems)
    summary_path = out / "run.json"
    outputs["summary"] = str(summary_path)
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(result.summary() | {
            "before": str(before), "after": str(after),
            "tiles": [{"after": str(p.after.path), "before": [str(b.path) for b in p.befores]} for p in pairs],
        }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def _unit_factor(crs) -> float:
    return crs.linear_units_factor[1] if crs.is_projected else 111_320.0


def _detect_pair(pair: Pair, reader: PairReader, detector, config: RunConfig, prob_path: Path,
                 progress: Callable[[int], None]) -> tuple[list[Piece], int]:
    a = pair.after
    px_area = abs(a.res[0] * a.res[1]) * _unit_factor(a.crs) ** 2
    halo = max(config.window.halo, detector.halo + config.cleanup.open_px + config.cleanup.close_px + 2)
    pieces: list[Piece] = []
    n_masked = 0
    done = 0
    profile = {"driver": "GTiff", "width": a.width, "height": a.height, "count": 1, "dtype": "uint8",
               "crs": a.crs, "transform": a.transform, "nodata": PROB_NODATA, "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    write_prob = config.output.probability_cog
    dst = None
    if write_prob:
        prob_path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{prob_path.stem}.", suffix=".scratch.tif", dir=prob_path.parent)
        os.close(fd)
        scratch = Path(name)
        dst = rasterio.open(scratch, "w", **profile)
    try:
        for core in window_grid(a.width, a.height, config.window.size, pair.window):
            grown, (rows, cols) = with_halo(core, halo, a.width, a.height)
            pw = reader.read(grown)
            scores = detector.score(pw)
            mask = (scores.probability >= detector.threshold) & pw.valid
            mask = clean_mask(mask, config.cleanup, px_area)[rows, cols]
            prob = scores.probability[rows, cols]
            valid = pw.valid[rows, cols]
            n_masked += int(pw.masked[rows, cols].sum())
            if dst is not None:
                q = np.where(valid, np.round(np.clip(prob, 0, 1) * PROB_SCALE), PROB_NODATA).astype(np.uint8)
                dst.write(q[None], window=core)
            pieces.extend(window_pieces(mask, prob, scores.change_type[rows, cols],
                                        rasterio.windows.transform(core, a.transform), a.path.name))
            done += int(core.width * core.height)
            progress(done)
        if dst is not None:
            dst.close()
            with atomic_path(prob_path) as tmp:
                rasterio.shutil.copy(scratch, tmp, driver="COG", compress="DEFLATE", overview_resampling="average")
    finally:
        if dst is not None:
            dst.close()
            scratch.unlink(missing_ok=True)
    return pieces, n_masked


def _reproject_pieces(pieces: list[Piece], src, dst) -> list[Piece]:
    g = gpd.GeoSeries([p.geometry for p in pieces], crs=src).to_crs(dst)
    for p, geom in zip(pieces, g):
        p.geometry = geom
    return pieces


__all__ = ["detect_changes", "RunResult", "Window"]
