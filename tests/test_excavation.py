"""No mining from agriculture: changes typed excavation that look like a field or pond changing as a whole."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from rasterio.transform import from_origin
from shapely.geometry import box

from satcheck.batch.excavation import drop_field_changes
from satcheck.config import CleanupConfig
from satcheck.detect.excavation import dig_evidence
from satcheck.pairs import pair_tiles
from satcheck.tiles import open_tile
from tests.generate import CRS_4547, ORIGIN, write

SIZE = 160
GREEN, STUBBLE, SOIL, SPOIL = (0.10, 0.22, 0.08), (0.30, 0.28, 0.20), (0.34, 0.30, 0.24), (0.75, 0.70, 0.62)


def fields(seed: int = 5) -> np.ndarray:
    """(3, SIZE, SIZE): four fields of crop with dark ridges between them, and a little noise."""
    img = np.empty((3, SIZE, SIZE), np.float32)
    img[:] = np.asarray(GREEN, np.float32)[:, None, None]
    img[:, 78:82, :] = img[:, :, 78:82] = 0.35  # dirt paths between the fields
    return img + np.random.default_rng(seed).normal(0, 0.01, img.shape).astype(np.float32)


def evidence(before, after, inside):
    ring = np.zeros_like(inside)
    r0, r1 = np.where(inside.any(1))[0][[0, -1]]
    c0, c1 = np.where(inside.any(0))[0][[0, -1]]
    ring[max(r0 - 20, 0):r1 + 21, max(c0 - 20, 0):c1 + 21] = True  # RING_M at 1 m
    return dig_evidence(before, after, np.ones(inside.shape, bool), inside, ring & ~inside)


def test_a_harvested_field_among_harvested_fields_is_field_change():
    before = fields()
    after = before.copy()
    for sl in (np.s_[:, :78, :78], np.s_[:, :78, 82:], np.s_[:, 82:, :78]):  # three fields harvested
        after[sl] = np.asarray(STUBBLE, np.float32)[:, None, None]
    after[:, :78, :78] = np.asarray(SOIL, np.float32)[:, None, None]  # and one of them ploughed
    inside = np.zeros((SIZE, SIZE), bool)
    inside[:78, :78] = True
    e = evidence(before, after, inside)
    assert e.contrast < 1.5
    assert e.old_outline > 0.6  # it changed within its ridges
    assert e.is_field_change(1.5, 0.6)


def test_a_pit_dug_across_a_field_is_not():
    before = fields()
    after = before.copy()
    after[:, 20:60, 30:70] = np.asarray(SPOIL, np.float32)[:, None, None]
    inside = np.zeros((SIZE, SIZE), bool)
    inside[20:60, 30:70] = True
    e = evidence(before, after, inside)
    assert e.contrast > 2 and e.old_outline < 0.2
    assert not e.is_field_change(1.5, 0.6)


def test_a_drained_pond_changes_inside_its_old_banks():
    before = fields()
    before[:, 30:60, 30:60] = 0.04  # dark water
    after = before.copy()
    after[:, 30:60, 30:60] = np.asarray(SPOIL, np.float32)[:, None, None]  # its bright bed: contrast alone keeps it
    inside = np.zeros((SIZE, SIZE), bool)
    inside[30:60, 30:60] = True
    e = evidence(before, after, inside)
    assert e.contrast > 1.5
    assert e.is_field_change(1.5, 0.6)  # the outline was the pond's bank


def test_unseen_surroundings_decide_nothing():
    before = after = fields()
    inside = np.zeros((SIZE, SIZE), bool)
    inside[20:60, 30:70] = True
    e = dig_evidence(before, after, np.zeros(inside.shape, bool), inside, ~inside)
    assert e.contrast is None and e.old_outline is None and not e.is_field_change(1.5, 0.6)


def test_run_drops_dug_looking_fields_keeps_pits_and_construction(tmp_path):
    before = fields()
    after = before.copy()
    after[:, :78, :78] = np.asarray(SOIL, np.float32)[:, None, None]  # field ploughed: typed excavation
    after[:, 82:, 82:] = np.asarray(STUBBLE, np.float32)[:, None, None]
    after[:, 100:140, 20:60] = np.asarray(SPOIL, np.float32)[:, None, None]  # pit
    t = from_origin(*ORIGIN, 1.0, 1.0)
    b = open_tile(write(tmp_path / "b" / "S_20260901.tif", before, t))
    a = open_tile(write(tmp_path / "a" / "S_20261001.tif", after, t))
    x0, y0 = ORIGIN
    at = lambda r0, r1, c0, c1: box(x0 + c0, y0 - r1, x0 + c1, y0 - r0)  # noqa: E731
    changes = gpd.GeoDataFrame(
        {"change_id": [1, 2, 3], "change_type": ["excavation", "excavation", "building"]},
        geometry=[at(0, 78, 0, 78), at(100, 140, 20, 60), at(0, 78, 0, 78)], crs=CRS_4547)
    kept = drop_field_changes(changes, pair_tiles([b], [a]), CleanupConfig())
    assert kept["change_type"].tolist() == ["excavation", "building"]  # the field typed excavation is gone
    assert kept.geometry.iloc[0].equals(changes.geometry.iloc[1])
    assert kept["change_id"].tolist() == [1, 2]
    off = CleanupConfig(excavation_min_contrast=0, excavation_max_old_outline=1)
    assert len(drop_field_changes(changes, pair_tiles([b], [a]), off)) == 3


def test_a_ploughed_field_typed_building_is_dropped_where_configured(tmp_path):
    """``cleanup.building_max_old_outline`` (off by default) drops a change typed building whose outline lies on
    the earlier date's field edges, and keeps a roof built across a field, however dark."""
    before = fields()
    after = before.copy()
    after[:, :78, :78] = np.asarray(SOIL, np.float32)[:, None, None]  # ploughed field taken for a roof
    after[:, 100:130, 95:125] = 0.12  # a dark roof inside another field
    t = from_origin(*ORIGIN, 1.0, 1.0)
    b = open_tile(write(tmp_path / "b" / "S_20260901.tif", before, t))
    a = open_tile(write(tmp_path / "a" / "S_20261001.tif", after, t))
    x0, y0 = ORIGIN
    at = lambda r0, r1, c0, c1: box(x0 + c0, y0 - r1, x0 + c1, y0 - r0)  # noqa: E731
    changes = gpd.GeoDataFrame({"change_id": [1, 2], "change_type": ["building", "building"]},
                               geometry=[at(0, 78, 0, 78), at(100, 130, 95, 125)], crs=CRS_4547)
    pairs = pair_tiles([b], [a])
    assert len(drop_field_changes(changes, pairs, CleanupConfig())) == 2
    kept = drop_field_changes(changes, pairs, CleanupConfig(building_max_old_outline=0.6))
    assert kept["change_id"].tolist() == [1] and kept.geometry.iloc[0].equals(changes.geometry.iloc[1])
