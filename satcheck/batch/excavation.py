"""Dropping changes typed excavation (and, where configured, building) that look like a field or pond changing as a
whole, not a pit or a roof.

Each such change is read from both dates' tiles around its polygon (a few hundred metres; there are few of them)
and judged by :func:`satcheck.detect.excavation.dig_evidence`.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from rasterio.features import geometry_mask
from rasterio.transform import from_origin

from satcheck.config import CleanupConfig
from satcheck.detect.excavation import RING_M, DigEvidence, dig_evidence
from satcheck.pairs import Pair, earlier_tiles
from satcheck.report.draw import TileHandles, read_rgb

MAX_SIDE_PX = 1024  # a large change is judged on a coarser grid: the measures are means, so this bounds memory


def drop_field_changes(changes: gpd.GeoDataFrame, pairs: list[Pair], cfg: CleanupConfig) -> gpd.GeoDataFrame:
    """``changes`` without those typed excavation whose later date does not stand out from the ground around them
    (``cfg.excavation_min_contrast``) or whose outline follows the earlier date's edges
    (``cfg.excavation_max_old_outline``), and without those typed building whose outline follows them
    (``cfg.building_max_old_outline``)."""
    if not len(changes):
        return changes
    dig_on = cfg.excavation_min_contrast > 0 or cfg.excavation_max_old_outline < 1
    dug = changes.index[changes["change_type"] == "excavation"] if dig_on else changes.index[:0]
    built = changes.index[changes["change_type"] == "building"] if cfg.building_max_old_outline < 1 else dug[:0]
    if not len(dug) and not len(built):
        return changes
    befores = earlier_tiles(pairs)
    afters = [p.after for p in pairs]
    pixel_m = min(a.pixel_m for a in afters)
    with TileHandles() as handles:  # excavations lie close together (a pit and its spoil): blocks read once
        evidence = {i: _evidence(changes.geometry.loc[i], changes.crs, befores, afters, pixel_m, handles)
                    for i in dug.append(built)}
    drop = [i for i in dug if evidence[i].is_field_change(cfg.excavation_min_contrast, cfg.excavation_max_old_outline)]
    # A roof is often no brighter than the field around it, so buildings are judged by their outline alone.
    drop += [i for i in built if evidence[i].is_field_change(0.0, cfg.building_max_old_outline)]
    if not drop:
        return changes
    kept = changes.drop(index=drop).reset_index(drop=True)
    kept["change_id"] = np.arange(1, len(kept) + 1)  # numbered 1..n, as merge_pieces numbers them
    return kept


def _evidence(geom, crs, befores, afters, pixel_m: float, handles: TileHandles) -> DigEvidence:
    """What tells a field changing as a whole from a pit or a roof, read around the change ``geom``."""
    minx, miny, maxx, maxy = geom.buffer(RING_M + 2 * pixel_m).bounds
    res = max(pixel_m, (maxx - minx) / MAX_SIDE_PX, (maxy - miny) / MAX_SIDE_PX)
    w, h = max(1, int(np.ceil((maxx - minx) / res))), max(1, int(np.ceil((maxy - miny) / res)))
    transform = from_origin(minx, maxy, res, res)
    b, ok_b = read_rgb(befores, crs, transform, w, h, handles=handles)
    a, ok_a = read_rgb(afters, crs, transform, w, h, handles=handles)
    inside = ~geometry_mask([geom], (h, w), transform)
    ring = ~geometry_mask([geom.buffer(RING_M)], (h, w), transform) & ~inside
    return dig_evidence(b, a, ok_b & ok_a, inside, ring)
