"""Small geometry helpers shared by change polygons and patches."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Transformer


def polygonal_part(g):
    """The polygons of a geometry (make_valid can return lines and points beside them)."""
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    parts = [p for p in getattr(g, "geoms", []) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def touching_groups(geoms: list | np.ndarray) -> list[list[int]]:
    """Indices of ``geoms`` grouped so that geometries that intersect, directly or through others, share a group.

    Groups come in order of their smallest index, members in increasing order.
    """
    arr = np.asarray(geoms, dtype=object)
    parent = np.arange(len(arr))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if len(arr):
        left, right = shapely.STRtree(arr).query(arr, predicate="intersects")
        for a, b in zip(left, right):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(len(arr)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def box_in(bounds: tuple, src, dst, segments: int = 32) -> shapely.Geometry:
    """The box ``bounds`` (left, bottom, right, top) of CRS ``src`` as a polygon in ``dst``, its edges densified
    into ``segments`` pieces so that the reprojected outline stays close; where some corners cannot be transformed
    (far outside the target's area), the hull of those that can; empty where fewer than three can."""
    ring = shapely.segmentize(shapely.box(*bounds), max(bounds[2] - bounds[0], bounds[3] - bounds[1], 1e-9) / segments)
    xy = shapely.get_coordinates(ring)
    x, y = Transformer.from_crs(src, dst, always_xy=True).transform(xy[:, 0], xy[:, 1], errcheck=False)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.all():
        return shapely.Polygon(np.column_stack([x, y]))
    if ok.sum() < 3:
        return shapely.Polygon()
    return shapely.MultiPoint(np.column_stack([x[ok], y[ok]])).convex_hull
