"""The run's faster paths (issue 20) give what the plain ones gave: each is compared with a reference.

* ``window_pieces`` counts pixels of the changed pixels only: compared with the counts over the whole extent.
* ``PairReader`` makes the decimated read, the masks and the statistics while it measures the shifts, from the
  earlier tiles as georeferenced, and keeps them where the shifts do not move the tiles: compared with those made
  after the shifts from the moved tiles, as before.
* A run overlaps cleanup, polygons and the probability COG with scoring, and draws chips in threads: its patches,
  changes, probability and chips are compared with a run through the reference implementations.
"""

from __future__ import annotations

import hashlib

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio import features
from rasterio.transform import Affine, from_origin
from scipy import ndimage
from shapely.geometry import shape

import satcheck.align as align
import satcheck.batch.tile as tile
import satcheck.masks as masks
from satcheck.align import PairReader, PairStatistics
from satcheck.batch.pipeline import detect_changes
from satcheck.config import RunConfig
from satcheck.detect.base import BUILDING, CONSTRUCTION, EXCAVATION, HARDENED
from satcheck.detect.polygons import Piece, window_pieces
from satcheck.pairs import pair_tiles
from satcheck.tiles import open_tile
from tests.enforcement_data import jurisdiction
from tests.generate import misregister, square_pair
from tests.mask_scenes import cloud_pair


def reference_window_pieces(mask, probability, change_type, transform, source):
    """window_pieces as it was: statistics by bincounts over the whole extent of the change."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return []
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mask, probability, change_type = mask[r0:r1, c0:c1], probability[r0:r1, c0:c1], change_type[r0:r1, c0:c1]
    transform = transform * Affine.translation(int(c0), int(r0))
    lab, n = ndimage.label(mask)
    idx = lab.ravel()
    sums = np.bincount(idx, weights=probability.ravel(), minlength=n + 1)
    counts = np.bincount(idx, minlength=n + 1)
    types = change_type.ravel()
    n_build = np.bincount(idx, weights=(types == BUILDING), minlength=n + 1)
    n_hard = np.bincount(idx, weights=(types == HARDENED), minlength=n + 1)
    n_con = n_build + n_hard + np.bincount(idx, weights=(types == CONSTRUCTION), minlength=n + 1)
    n_exc = np.bincount(idx, weights=(types == EXCAVATION), minlength=n + 1)
    pieces: dict[int, list] = {}
    for geom, value in features.shapes(lab.astype(np.int32), mask=mask, transform=transform, connectivity=8):
        pieces.setdefault(int(value), []).append(shape(geom))
    out = []
    for v, geoms in pieces.items():
        g = geoms[0] if len(geoms) == 1 else shapely.union_all(geoms)
        out.append(Piece(g, float(sums[v]), int(counts[v]), int(n_con[v]), int(n_exc[v]), source,
                         int(n_build[v]), int(n_hard[v])))
    return out


def reference_pair_masks(before, b_ok, after, a_ok, cfg, px_m, provider_b=None, provider_a=None):
    return (masks.cloud_and_shadow(before, b_ok, cfg, px_m, after, a_ok, provider_b)
            | masks.cloud_and_shadow(after, a_ok, cfg, px_m, before, b_ok, provider_a))


def _same_pieces(a: list[Piece], b: list[Piece]) -> None:
    assert len(a) == len(b)
    for p, q in zip(a, b):
        assert shapely.to_wkb(p.geometry) == shapely.to_wkb(q.geometry)
        assert (p.score_sum, p.n_px, p.n_construction, p.n_excavation, p.source, p.n_building, p.n_hardened) == \
               (q.score_sum, q.n_px, q.n_construction, q.n_excavation, q.source, q.n_building, q.n_hardened)


@pytest.mark.parametrize("seed", range(6))
def test_window_pieces_counts_as_the_whole_extent_did(seed):
    rng = np.random.default_rng(seed)
    h, w = 300, 260
    mask = ndimage.binary_opening(ndimage.gaussian_filter(rng.random((h, w)), 4) > 0.52)
    if seed == 5:
        mask[:] = False
    prob = rng.random((h, w)).astype(np.float32)
    types = rng.choice([CONSTRUCTION, EXCAVATION, BUILDING, HARDENED][: 2 + seed % 3], (h, w)).astype(np.uint8)
    t = from_origin(592000.0, 2994000.0, 0.5, 0.5)
    _same_pieces(window_pieces(mask, prob, types, t, "T.tif"), reference_window_pieces(mask, prob, types, t, "T.tif"))


def _assert_same_stats(got: PairStatistics, want: PairStatistics) -> None:
    assert (got.masked_lr == want.masked_lr).all()
    for k in ("table_b", "table_a"):
        assert (getattr(got, k) is None) == (getattr(want, k) is None)
        if getattr(got, k) is not None:
            assert np.array_equal(getattr(got, k), getattr(want, k))
    for x, y in zip(got.sample_raw, want.sample_raw):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("scene", ["cloud", "shifted"])
def test_statistics_made_beside_the_shifts_are_those_made_after_them(tmp_path, scene):
    if scene == "cloud":  # cloud and shadow; the earlier date left where it is
        p = cloud_pair(tmp_path)
        b, a = p.before, p.after
    else:  # the earlier tile 3 m off: the shift is measured and the statistics are made again from it moved
        b, a, _ = square_pair(tmp_path, size=768)
        misregister(b, 3.0, 0.0)
    pair = pair_tiles([open_tile(b)], [open_tile(a)])[0]
    with PairReader(pair, RunConfig()) as r:
        assert r._moves(r.shifts) == (scene == "shifted")
        if scene == "cloud":
            assert r._stats.masked_lr.any()
        # The reference: the statistics of the tiles as the shifts move them, from handles of their own.
        _assert_same_stats(r._stats, r._statistics(r.shifts))


def _digest(out) -> dict:
    d = {}
    for name, layer in (("changes.gpkg", "changes"), ("patches.gpkg", "patches")):
        g = gpd.read_file(out / name, layer=layer)
        d[layer] = (len(g), [shapely.to_wkb(x) for x in g.geometry], g.drop(columns="geometry").to_csv(index=False))
    for f in sorted((out / "probability").glob("*.tif")):
        with rasterio.open(f) as src:
            d[f.name] = hashlib.sha256(src.read().tobytes()).hexdigest()
    d["chips"] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted((out / "chips").glob("*.png"))}
    return d


@pytest.mark.parametrize("detector", ["cva", "model"])
def test_a_run_gives_the_patches_of_the_reference_path(tmp_path, monkeypatch, detector):
    jurisdiction(tmp_path)
    cfg = RunConfig().with_overrides(**{"detect.detector": detector})
    fast = detect_changes(tmp_path / "before", tmp_path / "after", tmp_path / "fast", cfg, rules=tmp_path / "rules")
    assert len(fast.patches) >= (7 if detector == "cva" else 1)
    # The reference path: polygons counted over the whole extent, masks one date after the other, the statistics
    # always made again after the shifts, every COG waited for as its pair ends, chips one patch at a time.
    monkeypatch.setattr(tile, "window_pieces", reference_window_pieces)
    monkeypatch.setattr(align, "pair_masks", reference_pair_masks)
    monkeypatch.setattr(PairReader, "_moves", lambda self, shifts: True)
    monkeypatch.setattr("satcheck.report.chips.MAX_THREADS", 1)
    plain = tile.detect_pair

    def waiting(*a, **k):
        k["wait"] = True
        return plain(*a, **k)

    monkeypatch.setattr("satcheck.batch.pipeline.detect_pair", waiting)
    ref = detect_changes(tmp_path / "before", tmp_path / "after", tmp_path / "ref", cfg, rules=tmp_path / "rules")
    assert len(ref.patches) == len(fast.patches)
    assert _digest(tmp_path / "fast") == _digest(tmp_path / "ref")
    assert not list((tmp_path / "fast" / "probability").glob(".*"))  # no scratch copy left


def test_probability_writer_leaves_nothing_behind_when_the_run_fails(tmp_path):
    from rasterio.windows import Window

    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint8", "crs": "EPSG:4547",
               "transform": from_origin(592000.0, 2994000.0, 1.0, 1.0), "nodata": 255}
    w = tile.ProbabilityWriter(tmp_path / "p" / "T.tif", profile)
    w.write(np.full((32, 32), 0.5, np.float32), np.ones((32, 32), bool), Window(0, 0, 32, 32))
    w.close()  # as after an error: no COG, no scratch copy
    assert list((tmp_path / "p").iterdir()) == []
    w = tile.ProbabilityWriter(tmp_path / "p" / "T.tif", profile)
    w.write(np.full((64, 64), 0.5, np.float32), np.ones((64, 64), bool), Window(0, 0, 64, 64))
    w.finish()
    w.wait()
    assert [f.name for f in (tmp_path / "p").iterdir()] == ["T.tif"]
    with rasterio.open(tmp_path / "p" / "T.tif") as src:
        assert (src.read(1) == 125).all()
