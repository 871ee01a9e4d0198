"""Context a reviewer needs around a patch: farmland, basic farmland, permit and admin outlines.

One definition of the layers and their colours, used by the chips, the locator and the review page's map.
"""

from __future__ import annotations

from dataclasses import dataclass

import shapely
from shapely.geometry import box

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


def _label(layer: str, row) -> str:
    for k in {"farmland": ("class_code", "class_name"), "mining_permits": ("permit_no", "holder"),
              "approved_land": ("approval_no",), "admin": ("name", "code")}.get(layer, ()):
        v = row.get(k) if hasattr(row, "get") else None
        if v is not None and str(v) not in ("", "nan", "None"):
            return str(v)
    return ""


def outlines(rules, bounds: tuple[float, float, float, float], layers=CHIP_LAYERS, limit: int = 2000) -> list[Outline]:
    """Parts of the rule layers inside ``bounds`` (minx, miny, maxx, maxy in the layers' CRS), clipped to it."""
    if rules is None:
        return []
    win = box(*bounds)
    found: list[Outline] = []
    for name in layers:
        gdf = getattr(rules, name, None) if not isinstance(rules, dict) else rules.get(name)
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
    gdf = None if rules is None else (rules.get("admin") if isinstance(rules, dict) else getattr(rules, "admin", None))
    if gdf is None or len(gdf) == 0:
        return None
    idx = gdf.sindex.query(point, predicate="intersects")
    if len(idx) == 0:
        return None
    row = gdf.iloc[int(idx[0])]
    name, code = row.get("name"), row.get("code")
    label = " ".join(str(v) for v in (name, code) if v is not None and str(v) not in ("", "nan", "None"))
    return Outline("admin", row.geometry, label)
