"""Context a reviewer needs around a patch: farmland, basic farmland, permit and admin outlines.

One definition of the layers and their colours, used by the chips, the locator and the review page's map.
"""

from __future__ import annotations

from dataclasses import dataclass

import shapely
from shapely.geometry import box

from satcheck.labels import is_blank

# layer of satcheck.rules.RuleLayers -> (RGB colour, English, Chinese)
LAYER_STYLE: dict[str, tuple[tuple[int, int, int], str, str]] = {
    "farmland": ((80, 220, 80), "farmland", "耕地"),
    "basic_farmland": ((0, 200, 255), "basic farmland", "永久基本农田"),
    "mining_permits": ((255, 80, 255), "mining permit", "采矿权"),
    "approved_land": ((120, 160, 255), "approved land", "批准用地"),
    "admin": ((255, 255, 255), "admin unit", "行政区"),
}
CHIP_LAYERS = ("farmland", "basic_farmland", "mining_permits", "approved_land")
LOCATOR_RADIUS_M = 1000.0  # the locator shows the patch within about 2 km


@dataclass(frozen=True)
class Outline:
    layer: str
    geom: object  # shapely geometry, in the layers' CRS
    label: str = ""


def hex_colour(layer: str) -> str:
    r, g, b = LAYER_STYLE[layer][0]
    return f"#{r:02x}{g:02x}{b:02x}"


def text(v) -> str:
    """A value as a label on a chip: blank for missing values (:func:`satcheck.labels.is_blank`)."""
    return "" if is_blank(v) else str(v)


def _layer(rules, name: str):
    """One layer of a RuleLayers, or of a dict of GeoDataFrames by layer name."""
    if rules is None:
        return None
    return rules.get(name) if isinstance(rules, dict) else getattr(rules, name, None)


def _label(layer: str, row) -> str:
    for k in {"farmland": ("class_code", "class_name"), "mining_permits": ("permit_no", "holder"),
              "approved_land": ("approval_no",), "admin": ("name", "code")}.get(layer, ()):
        if text(row.get(k) if hasattr(row, "get") else None):
            return text(row.get(k))
    return ""


def build_indexes(rules, layers=(*CHIP_LAYERS, "admin")) -> None:
    """Build the spatial index of each layer now: a GeoDataFrame builds it on first use, which threads drawing
    patches at once would race to do; once built, they only read it."""
    for name in layers:
        gdf = _layer(rules, name)
        if gdf is not None and len(gdf):
            _ = gdf.sindex


def outlines(rules, bounds: tuple[float, float, float, float], layers=CHIP_LAYERS, limit: int = 2000) -> list[Outline]:
    """Parts of the rule layers inside ``bounds`` (minx, miny, maxx, maxy in the layers' CRS), clipped to it."""
    if rules is None:
        return []
    win = box(*bounds)
    found: list[Outline] = []
    for name in layers:
        gdf = _layer(rules, name)
        if gdf is None or len(gdf) == 0:
            continue
        idx = gdf.sindex.query(win, predicate="intersects")
        for i in idx[:limit]:
            row = gdf.iloc[int(i)]
            g = shapely.intersection(row.geometry, win)
            if not g.is_empty:
                found.append(Outline(name, g, _label(name, row)))
    return found


def admin_at(rules, point) -> Outline | None:
    """The admin unit that holds ``point`` (whole, not clipped), or None."""
    gdf = _layer(rules, "admin")
    if gdf is None or len(gdf) == 0:
        return None
    idx = gdf.sindex.query(point, predicate="intersects")
    if len(idx) == 0:
        return None
    row = gdf.iloc[int(idx[0])]
    label = " ".join(t for t in (text(row.get("name")), text(row.get("code"))) if t)
    return Outline("admin", row.geometry, label)
