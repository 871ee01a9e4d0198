"""Change regions as polygons in map coordinates.

Windows are polygonised separately; pieces of one region that meet at a
window (or tile) border are merged afterwards, and their score sums and
pixel counts added, so the result does not depend on where windows fall.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features
from rasterio.crs import CRS
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import shape

from satcheck.detect.base import BUILDING, CONSTRUCTION, EXCAVATION, HARDENED
from satcheck.geometry import touching_groups


@dataclass
class Piece:
    geometry: shapely.Geometry
    score_sum: float
    n_px: int
    n_construction: int  # every construction pixel: building, hardened, or not told apart
    n_excavation: int
    source: str
    n_building: int = 0
    n_hardened: int = 0


def window_pieces(mask: np.ndarray, probability: np.ndarray, change_type: np.ndarray, transform: Affine,
                  source: str) -> list[Piece]:
    """Polygons of the change regions in one window, with their pixel statistics."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return []
    # Only the extent of the change: labelling and counting the whole window would cost more than the shapes.
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mask, probability, change_type = mask[r0:r1, c0:c1], probability[r0:r1, c0:c1], change_type[r0:r1, c0:c1]
    transform = transform * Affine.translation(int(c0), int(r0))
    lab, n = ndimage.label(mask)
    # Statistics of the changed pixels only (a few percent of the extent): each region's sum adds the same
    # values in the same order as over the whole extent, and one count per (region, type) gives every type's.
    on = np.asarray(mask, bool).ravel()
    idx = lab.ravel()[on]
    sums = np.bincount(idx, weights=probability.ravel()[on], minlength=n + 1)
    counts = np.bincount(idx, minlength=n + 1)
    types = change_type.ravel()[on].astype(np.intp)
    k = int(types.max()) + 1 if types.size else 1
    by_type = np.bincount(idx * k + types, minlength=(n + 1) * k).reshape(n + 1, k)

    def of(code: int) -> np.ndarray:
        return by_type[:, code] if code < k else np.zeros(n + 1, np.intp)

    n_build, n_hard = of(BUILDING), of(HARDENED)
    n_con = n_build + n_hard + of(CONSTRUCTION)
    n_exc = of(EXCAVATION)
    pieces: dict[int, list] = {}
    for geom, value in features.shapes(lab.astype(np.int32), mask=mask, transform=transform, connectivity=8):
        pieces.setdefault(int(value), []).append(shape(geom))
    out = []
    for v, geoms in pieces.items():
        g = geoms[0] if len(geoms) == 1 else shapely.union_all(geoms)
        out.append(Piece(g, float(sums[v]), int(counts[v]), int(n_con[v]), int(n_exc[v]), source,
                         int(n_build[v]), int(n_hard[v])))
    return out


def change_type_of(pieces: list[Piece]) -> str:
    """The change type of a region by its pixels' votes: excavation against construction first, since that
    decides the rule that applies; then building against hardened ground among the construction pixels."""
    n_con = sum(p.n_construction for p in pieces)
    if sum(p.n_excavation for p in pieces) > n_con:
        return "excavation"
    n_build, n_hard = sum(p.n_building for p in pieces), sum(p.n_hardened for p in pieces)
    if n_build + n_hard < n_con - (n_build + n_hard):
        return "construction"  # mostly pixels of a detector that does not tell them apart
    return "building" if n_build >= n_hard else "hardened"


def merge_pieces(pieces: list[Piece], crs: CRS, min_area_m2: float = 0.0,
                 min_mean_score: float = 0.0) -> gpd.GeoDataFrame:
    """Merge pieces that touch into change polygons; one row per change. ``crs`` is in metres."""
    columns = ["change_id", "change_type", "area_m2", "mean_score", "pixels", "source", "geometry"]
    if not pieces:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry="geometry", crs=crs)
    groups = touching_groups([p.geometry for p in pieces])
    rows = []
    for members in groups:
        ps = [pieces[i] for i in members]
        geom = ps[0].geometry if len(ps) == 1 else shapely.union_all([p.geometry for p in ps])
        geom = shapely.make_valid(geom)
        n = sum(p.n_px for p in ps)
        area = float(geom.area)
        if area < min_area_m2 or sum(p.score_sum for p in ps) / max(n, 1) < min_mean_score:
            continue
        rows.append({
            "change_type": change_type_of(ps),
            "area_m2": round(area, 2),
            "mean_score": round(sum(p.score_sum for p in ps) / max(n, 1), 4),
            "pixels": n,
            "source": ",".join(sorted({p.source for p in ps})),
            "geometry": geom,
        })
    if not rows:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry="geometry", crs=crs)
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    # Stable order: north to south, west to east, so ids do not depend on processing order.
    c = gdf.geometry.representative_point()
    gdf = gdf.assign(_y=-c.y.round(3), _x=c.x.round(3)).sort_values(["_y", "_x"]).drop(columns=["_y", "_x"])
    gdf.insert(0, "change_id", np.arange(1, len(gdf) + 1))
    return gdf.reset_index(drop=True)
