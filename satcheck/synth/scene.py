"""A bi-temporal rural scene, drawn from a seed.

The scene imitates 1 m (or other GSD) four-band imagery of a county in
southern China: rice and dry-crop parcels with ridges, villages along
roads, a river and ponds, forested hills and an open-pit mine.  The later
date adds planted changes (construction on farmland, mine expansion, new
pits) and the nuisance change that enforcement must ignore: crop
phenology, harvest and ploughing, a different sun and haze, building
shadows that move with the sun, a misregistration of one to two pixels
and a cloud with its shadow.

Everything here works in pixel coordinates of the later image; callers
attach a geotransform.  Reflectances are floats in 0..1 until
:func:`to_dn` turns them into stored numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from rasterio import features
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, Polygon, box
from shapely.geometry.base import BaseGeometry

# Reflectance of each cover in R, G, B, NIR.
COVER = {
    "rice_green": (0.07, 0.15, 0.06, 0.46),
    "rice_ripe": (0.26, 0.25, 0.10, 0.34),
    "stubble": (0.27, 0.23, 0.16, 0.25),
    "ploughed": (0.15, 0.12, 0.09, 0.17),
    "flooded": (0.09, 0.12, 0.13, 0.09),
    "vegetable": (0.09, 0.19, 0.07, 0.50),
    "dry_crop": (0.16, 0.21, 0.09, 0.36),
    "fallow": (0.26, 0.22, 0.17, 0.27),
    "grass": (0.11, 0.17, 0.08, 0.38),
    "forest": (0.04, 0.08, 0.04, 0.38),
    "water": (0.04, 0.07, 0.07, 0.02),
    "concrete": (0.46, 0.46, 0.44, 0.41),
    "asphalt": (0.14, 0.14, 0.15, 0.14),
    "dirt": (0.33, 0.28, 0.21, 0.30),
    "roof_grey": (0.50, 0.50, 0.50, 0.45),
    "roof_red": (0.45, 0.20, 0.15, 0.35),
    "roof_blue": (0.18, 0.34, 0.60, 0.30),
    "roof_dark": (0.20, 0.20, 0.22, 0.20),
    "roof_white": (0.72, 0.72, 0.70, 0.66),
    "yard": (0.55, 0.54, 0.50, 0.48),
    "spoil": (0.56, 0.40, 0.27, 0.42),
    "spoil_light": (0.66, 0.55, 0.40, 0.50),
    "pit_water": (0.10, 0.17, 0.14, 0.05),
}
CROP_STATES = ("rice_green", "rice_ripe", "stubble", "ploughed", "flooded", "vegetable", "dry_crop", "fallow")
# Plausible month-to-month transitions; a parcel may also stay as it was.
CROP_NEXT = {
    "rice_green": ("rice_ripe", "rice_green", "rice_ripe"),
    "rice_ripe": ("stubble", "rice_ripe", "ploughed"),
    "stubble": ("ploughed", "stubble", "fallow"),
    "ploughed": ("flooded", "ploughed", "vegetable"),
    "flooded": ("rice_green", "flooded"),
    "vegetable": ("vegetable", "ploughed", "dry_crop"),
    "dry_crop": ("dry_crop", "fallow", "stubble"),
    "fallow": ("ploughed", "fallow", "grass"),
}
ROOFS = ("roof_grey", "roof_red", "roof_blue", "roof_dark", "roof_white")

CONSTRUCTION = 1
EXCAVATION = 2
# What a planted change becomes, as the network's classes: a roof, hardened ground (yard, pad, road), a pit.
SURFACES = {"building": 1, "hardened": 2, "excavation": 3}


@dataclass
class Parcel:
    geom: Polygon
    dlbm: str
    before: str
    after: str
    row_angle: float
    row_period: float


@dataclass
class PlantedChange:
    geom: Polygon
    kind: int  # CONSTRUCTION or EXCAVATION
    label: str


@dataclass
class Layout:
    """Date-independent geometry of the scene, in pixels."""

    size: tuple[int, int]
    gsd: float
    parcels: list[Parcel] = field(default_factory=list)
    roads: list[tuple[BaseGeometry, str]] = field(default_factory=list)
    water: list[BaseGeometry] = field(default_factory=list)
    forest: list[BaseGeometry] = field(default_factory=list)
    buildings: list[tuple[Polygon, str]] = field(default_factory=list)
    yards: list[Polygon] = field(default_factory=list)
    mine_before: list[Polygon] = field(default_factory=list)
    changes: list[PlantedChange] = field(default_factory=list)
    permits: list[dict] = field(default_factory=list)
    approved: list[dict] = field(default_factory=list)
    basic_farmland: list[Polygon] = field(default_factory=list)
    admin_split: BaseGeometry | None = None


@dataclass
class ScenePair:
    before: np.ndarray  # float32 (4, H, W) reflectance
    after: np.ndarray
    before_valid: np.ndarray  # bool (H, W)
    after_valid: np.ndarray
    truth: np.ndarray  # uint8 (H, W): 0 none, 1 construction, 2 excavation
    layout: Layout
    surface: np.ndarray | None = None  # uint8 (H, W): 0 none, then SURFACES' codes: what the changed land became


def _m(layout_or_gsd, metres: float) -> float:
    gsd = layout_or_gsd.gsd if isinstance(layout_or_gsd, Layout) else layout_or_gsd
    return metres / gsd


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float, n: int = 24, rough: float = 0.25) -> Polygon:
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * (1 + rough * rng.uniform(-1, 1, n))
    rad = ndimage.uniform_filter1d(rad, 3, mode="wrap")
    return Polygon(np.c_[cx + rad * np.cos(ang), cy + rad * np.sin(ang)]).buffer(0)


def _rect(cx: float, cy: float, w: float, h: float, angle: float = 0.0) -> Polygon:
    return affinity.rotate(box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), angle, origin=(cx, cy))


def build_layout(rng: np.random.Generator, size: tuple[int, int], gsd: float = 1.0, *, changes: bool = True,
                 rich: bool = True, min_builds: int = 2) -> Layout:
    """Draw the geometry of a scene.

    ``rich`` adds the fixed cast of the sample scene (permits, an approved
    plot, an expired permit); without it changes are placed at random,
    which is what training wants.
    """
    h, w = size
    L = Layout(size=size, gsd=gsd)
    frame = box(0, 0, w, h)

    # Hills with forest in one corner, a mine inside them.
    hx, hy = rng.choice([0.15, 0.85]) * w, rng.choice([0.15, 0.85]) * h
    hill = _blob(rng, hx, hy, 0.33 * min(w, h), rough=0.3).intersection(frame)
    L.forest.append(hill)

    # A river crossing the scene.
    t = np.linspace(-0.1, 1.1, 60)
    phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.04, 0.1)
    if rng.random() < 0.5:
        pts = np.c_[t * w, (0.5 + rng.uniform(-0.2, 0.2) + amp * np.sin(6 * t + phase)) * h]
    else:
        pts = np.c_[(0.5 + rng.uniform(-0.2, 0.2) + amp * np.sin(6 * t + phase)) * w, t * h]
    river = LineString(pts).buffer(_m(L, rng.uniform(8, 16))).intersection(frame)
    L.water.append(river)

    # Roads: a main road and a grid of field roads.
    main_angle = rng.uniform(-15, 15)
    cy = rng.uniform(0.3, 0.7) * h
    main = affinity.rotate(LineString([(-w, cy), (2 * w, cy)]), main_angle, origin=(w / 2, cy))
    L.roads.append((main.buffer(_m(L, 3.5)).intersection(frame), "concrete" if rng.random() < 0.6 else "asphalt"))
    spacing = _m(L, rng.uniform(160, 260))
    for x in np.arange(rng.uniform(0.3, 1.0) * spacing, w, spacing):
        L.roads.append((LineString([(x, -10), (x + rng.uniform(-20, 20), h + 10)]).buffer(_m(L, 1.5)), "dirt"))

    # Villages along the main road.
    n_villages = max(1, int(rng.integers(1, 3) * (w * h) / 1536**2 + 0.5))
    villages = []
    for _ in range(n_villages):
        vx = rng.uniform(0.1, 0.9) * w
        vy = cy + (vx - w / 2) * np.tan(np.radians(main_angle)) + rng.uniform(-40, 40) / gsd
        village = _blob(rng, vx, vy, _m(L, rng.uniform(70, 120)), rough=0.2)
        villages.append(village)
        ang = main_angle + rng.uniform(-5, 5)
        step = _m(L, 22)
        for gx in np.arange(vx - 120 / gsd, vx + 120 / gsd, step):
            for gy in np.arange(vy - 120 / gsd, vy + 120 / gsd, step):
                if rng.random() < 0.35:
                    continue
                bw, bh = _m(L, rng.uniform(9, 16)), _m(L, rng.uniform(8, 14))
                b = _rect(gx + rng.uniform(-2, 2), gy + rng.uniform(-2, 2), bw, bh, ang)
                if village.contains(b.centroid):
                    L.buildings.append((b, str(rng.choice(ROOFS))))
                    if rng.random() < 0.3:
                        L.yards.append(_rect(gx, gy + bh * 0.8, bw, bh * 0.6, ang))

    # The existing open pit in the hills.
    mx, my = hill.representative_point().coords[0]
    pit = _blob(rng, mx, my, _m(L, rng.uniform(60, 90)), rough=0.3).intersection(hill)
    if pit.is_empty or pit.area < 100:
        pit = _blob(rng, mx, my, _m(L, 60), rough=0.2)
    L.mine_before.append(pit)

    # Farmland parcels: strips inside blocks between field roads.
    taken = shapely.union_all([hill, river, *villages])
    road_union = shapely.union_all([g for g, _ in L.roads])
    strip_angle = main_angle + rng.choice([0.0, 90.0])
    pw_range = (18, 40)
    cell = _m(L, 120)
    for bx in np.arange(0, w, cell):
        for by in np.arange(0, h, cell):
            y = by
            while y < by + cell:
                sw = _m(L, rng.uniform(*pw_range))
                strip = box(bx, y, bx + cell, min(y + sw, by + cell))
                if strip_angle % 180 != 0:
                    strip = box(bx + (y - by), by, bx + min(y - by + sw, cell), by + cell)
                # Split long strips in two now and then.
                parts = [strip]
                if rng.random() < 0.4:
                    minx, miny, maxx, maxy = strip.bounds
                    if maxx - minx > maxy - miny:
                        mid = minx + (maxx - minx) * rng.uniform(0.3, 0.7)
                        parts = [box(minx, miny, mid, maxy), box(mid, miny, maxx, maxy)]
                    else:
                        mid = miny + (maxy - miny) * rng.uniform(0.3, 0.7)
                        parts = [box(minx, miny, maxx, mid), box(minx, mid, maxx, maxy)]
                for p in parts:
                    # Ridges between parcels: shrink each parcel a little.
                    g = p.buffer(-_m(L, 0.8)).difference(taken)
                    if road_union is not None:
                        g = g.difference(road_union.buffer(_m(L, 1)))
                    g = g.intersection(frame)
                    if g.is_empty or g.area < (60 / gsd**2):
                        continue
                    if g.geom_type == "MultiPolygon":
                        g = max(g.geoms, key=lambda q: q.area)
                    before = str(rng.choice(CROP_STATES))
                    after = str(rng.choice(CROP_NEXT[before]))
                    dlbm = "0101" if before in ("rice_green", "rice_ripe", "flooded", "stubble") else str(
                        rng.choice(["0102", "0103"]))
                    L.parcels.append(Parcel(g, dlbm, before, after, rng.uniform(0, 180),
                                            _m(L, rng.uniform(3, 7))))
                y += sw

    # Permanent basic farmland: the parcels in a broad band.
    band = _blob(rng, rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h, 0.35 * min(w, h), rough=0.2)
    L.basic_farmland = [p.geom for p in L.parcels if band.contains(p.geom.centroid)]

    # Two admin units split by a wavy line.
    split_x = rng.uniform(0.4, 0.6) * w
    L.admin_split = Polygon([(-1, -1), (split_x, -1), (split_x + rng.uniform(-80, 80), h + 1), (-1, h + 1)])

    if changes:
        _plant_changes(rng, L, hill, pit, villages, rich, min_builds)
    return L


def _free_parcel(rng: np.random.Generator, L: Layout, min_area: float) -> Parcel | None:
    big = [p for p in L.parcels if p.geom.area >= min_area and not getattr(p, "_used", False)]
    if not big:
        return None
    p = big[int(rng.integers(len(big)))]
    p._used = True  # type: ignore[attr-defined]
    return p


def _plant_construction(rng: np.random.Generator, L: Layout, parcel: Parcel, area_m2: float, label: str,
                        style: str | None = None) -> PlantedChange | None:
    g = parcel.geom
    minx, miny, maxx, maxy = g.bounds
    side = np.sqrt(area_m2) / L.gsd
    aspect = rng.uniform(0.5, 2.0)
    bw, bh = side * np.sqrt(aspect), side / np.sqrt(aspect)
    for _ in range(30):
        cx, cy = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        r = _rect(cx, cy, bw, bh, rng.uniform(-8, 8))
        if g.buffer(_m(L, 1.0)).contains(r):
            style = style or str(rng.choice(["house", "shed", "yard", "house"]))
            return PlantedChange(r, CONSTRUCTION, f"{label}:{style}")
    return None


def _plant_pit(rng: np.random.Generator, L: Layout, cx: float, cy: float, r_m: float, label: str,
               clip: BaseGeometry | None = None) -> PlantedChange:
    g = _blob(rng, cx, cy, _m(L, r_m), rough=0.3)
    if clip is not None:
        g = g.intersection(clip)
    if g.geom_type != "Polygon":
        g = max(getattr(g, "geoms", [g]), key=lambda q: q.area)
    return PlantedChange(g, EXCAVATION, label)


def _plant_changes(rng: np.random.Generator, L: Layout, hill: BaseGeometry, pit: Polygon, villages, rich: bool,
                   min_builds: int = 2) -> None:
    h, w = L.size
    frame = box(0, 0, w, h).buffer(-_m(L, 30))
    n_build = max(min_builds, int(rng.integers(4, 8) * (w * h) / 1536**2 + 0.5))
    for i in range(n_build):
        p = _free_parcel(rng, L, 900 / L.gsd**2)
        if p is None:
            break
        area = float(rng.choice([rng.uniform(200, 500), rng.uniform(400, 1500)]))
        c = _plant_construction(rng, L, p, area, f"farmland_construction_{i}")
        if c is not None and frame.contains(c.geom):
            L.changes.append(c)
    # The mine grows: a lobe on the pit's edge.
    edge = np.asarray(pit.exterior.coords)[int(rng.integers(len(pit.exterior.coords)))]
    grow = _plant_pit(rng, L, edge[0], edge[1], rng.uniform(35, 55), "mine_expansion")
    grow_geom = grow.geom.difference(pit)
    if not grow_geom.is_empty and grow_geom.area > 50:
        if grow_geom.geom_type != "Polygon":
            grow_geom = max(grow_geom.geoms, key=lambda q: q.area)
        L.changes.append(PlantedChange(grow_geom, EXCAVATION, "mine_expansion"))
    if not rich:
        if rng.random() < 0.5:
            q = hill.representative_point()
            L.changes.append(_plant_pit(rng, L, q.x + rng.uniform(-60, 60), q.y + rng.uniform(-60, 60),
                                        rng.uniform(15, 35), "new_pit", clip=frame))
        # Digging on farmland (取土, sand pits) and new concrete roads across fields.
        for _ in range(int(rng.integers(0, 3))):
            p = _free_parcel(rng, L, 600 / L.gsd**2)
            if p is not None:
                c = p.geom.centroid
                L.changes.append(_plant_pit(rng, L, c.x, c.y, rng.uniform(10, 30), "farmland_pit", clip=frame))
        if rng.random() < 0.3:
            p = _free_parcel(rng, L, 1500 / L.gsd**2)
            if p is not None:
                minx, miny, maxx, maxy = p.geom.bounds
                long_side = max(maxx - minx, maxy - miny)
                road = _rect((minx + maxx) / 2, (miny + maxy) / 2, _m(L, rng.uniform(4, 8)), long_side * 0.9,
                             0 if maxy - miny > maxx - minx else 90).intersection(p.geom)
                if road.geom_type == "Polygon" and road.area > 100 / L.gsd**2:
                    L.changes.append(PlantedChange(road, CONSTRUCTION, "new_road:yard_only"))
        return

    # The permit covers the old pit and half of the expansion.
    valid_permit = pit.buffer(_m(L, 15)).union(grow.geom.intersection(pit.buffer(_m(L, 25))))
    L.permits.append({"geom": valid_permit.convex_hull, "permit_no": "C3608002019067130148273",
                      "holder": "吉安县宏达矿业有限公司", "valid_from": "2019-06-01", "valid_to": "2029-05-31"})
    # An expired permit with fresh digging inside it, and a pit with no permit at all.
    cands = [p for p in L.parcels if frame.contains(p.geom.centroid)]
    spots = []
    for _ in range(200):
        q = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
        pt = Polygon(_rect(q[0], q[1], 1, 1))
        if hill.buffer(-_m(L, 20)).contains(pt) and not pit.buffer(_m(L, 150)).intersects(pt):
            if all(Polygon(_rect(*s, 1, 1)).distance(pt) > _m(L, 150) for s in spots):
                spots.append(q)
        if len(spots) == 2:
            break
    while len(spots) < 2:
        # Hills too small: dig in a fallow parcel instead.
        p = cands[int(rng.integers(len(cands)))]
        c = p.geom.centroid
        spots.append((c.x, c.y))
    expired = _plant_pit(rng, L, spots[0][0], spots[0][1], 30, "expired_permit_pit")
    L.changes.append(expired)
    L.permits.append({"geom": expired.geom.buffer(_m(L, 25)).convex_hull, "permit_no": "C3608002014037120131559",
                      "holder": "吉水县金源采石场", "valid_from": "2014-03-01", "valid_to": "2026-09-30"})
    L.changes.append(_plant_pit(rng, L, spots[1][0], spots[1][1], 28, "illegal_pit"))
    # A building on an approved plot, and one on grassland (not farmland).
    p = _free_parcel(rng, L, 1500 / L.gsd**2)
    if p is not None:
        c = _plant_construction(rng, L, p, 600, "approved_construction", "yard")
        if c is not None:
            L.changes.append(c)
            L.approved.append({"geom": c.geom.buffer(_m(L, 12)).envelope, "approval_no": "赣府土字〔2026〕115号",
                               "approved_on": "2026-05-20"})
    # One too small to matter (under the minimum mapping unit).
    p = _free_parcel(rng, L, 900 / L.gsd**2)
    if p is not None:
        c = _plant_construction(rng, L, p, 110, "small_shed", "shed")
        if c is not None:
            L.changes.append(c)


# --------------------------------------------------------------------------- rendering

def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = rng.standard_normal(shape).astype(np.float32)
    n = ndimage.gaussian_filter(n, sigma, mode="wrap")
    n /= n.std() + 1e-6
    return n


def raster(geoms, shape, value=1, dtype=np.uint8) -> np.ndarray:
    """Burn pixel-space geometries into an array of ``shape``."""
    geoms = [(g, value) for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(shape, dtype)
    return features.rasterize(geoms, out_shape=shape, dtype=dtype, all_touched=False)


def _paint(img: np.ndarray, mask: np.ndarray, cover: str | tuple, jitter: np.ndarray | float = 0.0) -> None:
    col = np.asarray(COVER[cover] if isinstance(cover, str) else cover, dtype=np.float32)
    img[:, mask] = col[:, None] * (1 + jitter if np.ndim(jitter) == 0 else 1 + jitter[mask][None, :])


def render(rng: np.random.Generator, L: Layout, *, date: str, sun: tuple[float, float], changes: bool) -> np.ndarray:
    """Reflectance (4, H, W) of the scene on one date ('before' or 'after')."""
    h, w = L.size
    shape = (h, w)
    img = np.empty((4, h, w), np.float32)
    fine = _noise(rng, shape, 1.0)
    coarse = _noise(rng, shape, 12.0 / max(L.gsd, 0.25))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    _paint(img, np.ones(shape, bool), "grass", 0.10 * coarse + 0.05 * fine)
    # Farmland, parcel by parcel, with crop rows or furrows.
    ids = np.zeros(shape, np.int32)
    shapes_ = [(p.geom, i + 1) for i, p in enumerate(L.parcels)]
    if shapes_:
        ids = features.rasterize(shapes_, out_shape=shape, dtype="int32")
    objs = ndimage.find_objects(ids, max_label=len(L.parcels))
    for i, p in enumerate(L.parcels):
        sl = objs[i]
        if sl is None:
            continue
        m = ids[sl] == i + 1
        state = p.before if date == "before" else p.after
        col = np.asarray(COVER[state], np.float32) * (1 + rng.uniform(-0.08, 0.08, 4).astype(np.float32))
        a = np.radians(p.row_angle)
        rows = np.sin(2 * np.pi * (xx[sl] * np.cos(a) + yy[sl] * np.sin(a)) / p.row_period)
        amp = {"ploughed": 0.18, "stubble": 0.10, "vegetable": 0.12, "dry_crop": 0.10}.get(state, 0.04)
        tex = 1 + amp * rows + 0.06 * fine[sl] + 0.05 * coarse[sl]
        img[:, sl[0], sl[1]][:, m] = (col[:, None, None] * tex[None])[:, m]
    for g in L.forest:
        m = raster([g], shape).astype(bool)
        canopy = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2.0 / max(L.gsd, .25))
        canopy /= canopy.std() + 1e-6
        _paint(img, m, "forest", 0.25 * canopy + 0.05 * coarse)
    for g in L.water:
        _paint(img, raster([g], shape).astype(bool), "water", 0.08 * coarse)
    for g, kind in L.roads:
        _paint(img, raster([g], shape).astype(bool), kind, 0.05 * fine)

    mine = list(L.mine_before)
    built = list(L.buildings)
    yards = list(L.yards)
    if date == "after" and changes:
        for c in L.changes:
            if c.kind == EXCAVATION:
                mine.append(c.geom)
            elif c.label.endswith(":yard_only"):
                yards.append(c.geom)
            elif c.label.endswith(":yard"):
                yards.append(c.geom)
                core = affinity.scale(c.geom, 0.5, 0.5)
                built.append((core, str(rng.choice(ROOFS))))
            elif c.label.endswith(":shed"):
                built.append((c.geom, "roof_blue" if rng.random() < 0.7 else "roof_white"))
            else:
                built.append((c.geom, str(rng.choice(ROOFS))))
    for g in mine:
        m = raster([g], shape).astype(bool)
        # Benches of the pit: alternating bright and dark bands following its outline.
        dist = ndimage.distance_transform_edt(raster([g.buffer(_m(L, 2))], shape))
        bench = np.sin(dist * L.gsd / 6.0 * 2 * np.pi)
        _paint(img, m, "spoil", 0.15 * bench + 0.08 * fine + 0.06 * coarse)
        inner = g.buffer(-_m(L, 25))
        if not inner.is_empty and rng.random() < 0.6:
            _paint(img, raster([inner], shape).astype(bool), "pit_water", 0.05 * fine)
    for g in yards:
        _paint(img, raster([g], shape).astype(bool), "yard", 0.04 * fine)
    # Shadows first, then roofs on top of them.
    sx, sy = sun
    shadow_geoms = [affinity.translate(b, sx / L.gsd, sy / L.gsd) for b, _ in built]
    if shadow_geoms:
        sm = raster(shadow_geoms, shape).astype(bool)
        img[:, sm] *= 0.45
    for b, roof in built:
        m = raster([b], shape).astype(bool)
        ridge = (np.abs((xx[m] - b.centroid.x)) < 1.0).astype(np.float32) * 0.1
        img[:, m] = np.asarray(COVER[roof], np.float32)[:, None] * (1 + 0.03 * fine[m] - ridge)[None]
    return np.clip(img, 0.0, 1.0)


def _cloud(rng: np.random.Generator, shape: tuple[int, int], gsd: float) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = shape
    r = min(h, w) * rng.uniform(0.06, 0.1)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((xx - cx) / r, (yy - cy) / (r * rng.uniform(0.6, 1.0)))
    puff = _noise(rng, shape, r / 4)
    alpha = np.clip(1.6 - d + 0.35 * puff, 0, 1).astype(np.float32)
    alpha = ndimage.gaussian_filter(alpha, 2)
    shift = (int(rng.uniform(0.6, 1.0) * r), int(rng.uniform(0.3, 0.8) * r))
    return alpha, shift


def apply_nuisance(rng: np.random.Generator, img: np.ndarray, L: Layout, *, cloud: bool) -> tuple[np.ndarray, np.ndarray]:
    """A different sun, haze and optionally a cloud with its shadow; returns the image and the cloud-free mask."""
    _, h, w = img.shape
    gain = rng.uniform(0.85, 1.15, 4).astype(np.float32)[:, None, None]
    gamma = rng.uniform(0.9, 1.1)
    haze_field = 1 + 0.5 * _noise(rng, (h, w), 80)
    haze = np.asarray([0.04, 0.05, 0.07, 0.02], np.float32)[:, None, None] * rng.uniform(0.3, 1.2)
    out = np.clip(img * gain, 0, 1) ** gamma + haze * haze_field[None]
    clear = np.ones((h, w), bool)
    if cloud:
        alpha, (dx, dy) = _cloud(rng, (h, w), L.gsd)
        shadow = np.roll(alpha, (dy, dx), axis=(0, 1))
        shadow[:dy, :] = 0
        shadow[:, :dx] = 0
        out = out * (1 - 0.6 * shadow[None])
        out = out * (1 - alpha[None]) + np.asarray([0.85, 0.86, 0.88, 0.80], np.float32)[:, None, None] * alpha[None]
        clear = (alpha < 0.05) & (shadow < 0.05)
    return np.clip(out, 0, 1).astype(np.float32), clear


def make_pair(seed: int, size: tuple[int, int] = (1536, 1536), gsd: float = 1.0, *, changes: bool = True,
              nuisance: bool = True, cloud: bool = True, shift_px: tuple[int, int] | None = None,
              rich: bool = True, collar: bool = True, min_builds: int = 2) -> ScenePair:
    """Draw a whole bi-temporal scene from ``seed``."""
    rng = np.random.default_rng(seed)
    L = build_layout(rng, size, gsd, changes=changes, rich=rich, min_builds=min_builds)
    if not nuisance:
        for p in L.parcels:
            p.after = p.before
    sun_before = (rng.uniform(1.5, 3.5), rng.uniform(1.5, 3.5))
    sun_after = (sun_before[0] * rng.uniform(0.5, 1.0), sun_before[1] * rng.uniform(1.0, 1.6)) if nuisance else sun_before
    render_rng = np.random.default_rng(seed + 1)
    before = render(render_rng, L, date="before", sun=sun_before, changes=False)
    render_rng = np.random.default_rng(seed + 1)  # same textures on both dates
    after = render(render_rng, L, date="after", sun=sun_after, changes=changes)
    h, w = size
    after_clear = np.ones((h, w), bool)
    if nuisance:
        after, after_clear = apply_nuisance(rng, after, L, cloud=cloud)
        before, _ = apply_nuisance(rng, before, L, cloud=False)
        if shift_px is None:
            shift_px = (int(rng.choice([-2, -1, 1, 2])), int(rng.choice([-2, -1, 1, 2])))
    if shift_px:
        # The earlier image is misregistered against the later one.
        before = np.roll(before, shift_px, axis=(1, 2))
    # Sensor noise.
    before += rng.normal(0, 0.006, before.shape).astype(np.float32)
    after += rng.normal(0, 0.006, after.shape).astype(np.float32)
    truth = np.zeros((h, w), np.uint8)
    for c in L.changes:
        truth = np.maximum(truth, raster([c.geom], (h, w), c.kind))
    surface = planted_surfaces(L, (h, w))
    before_valid = np.ones((h, w), bool)
    after_valid = np.ones((h, w), bool)
    if collar:
        k = max(8, int(0.02 * min(h, w)))
        yy, xx = np.mgrid[0:h, 0:w]
        before_valid &= ~(xx + yy < 3 * k)
        after_valid &= ~(xx > w - k - (yy * 0.01))
        before_valid[:, :2] = False
    if nuisance and cloud:
        truth[~after_clear] = 0
        surface[~after_clear] = 0
    return ScenePair(np.clip(before, 0, 1), np.clip(after, 0, 1), before_valid, after_valid, truth, L, surface)


def planted_surfaces(L: Layout, shape: tuple[int, int]) -> np.ndarray:
    """The planted changes by what the land became, drawn as :func:`render` draws them (a yard's core is a roof)."""
    out = np.zeros(shape, np.uint8)
    for c in L.changes:
        if c.kind == EXCAVATION:
            out = np.maximum(out, raster([c.geom], shape, SURFACES["excavation"]))
            continue
        hardened = c.label.endswith(":yard_only") or c.label.endswith(":yard")
        m = raster([c.geom], shape).astype(bool)
        out[m & (out != SURFACES["excavation"])] = SURFACES["hardened" if hardened else "building"]
        if c.label.endswith(":yard"):
            out[raster([affinity.scale(c.geom, 0.5, 0.5)], shape).astype(bool)] = SURFACES["building"]
    return out


def to_dn(refl: np.ndarray, valid: np.ndarray, dtype: str = "uint8") -> np.ndarray:
    """Reflectance to stored numbers; 0 is kept for nodata."""
    top = 255 if dtype == "uint8" else 10000
    scale = 255 / 0.8 if dtype == "uint8" else 10000
    dn = np.clip(np.round(refl * scale), 1, top).astype(dtype)
    dn[:, ~valid] = 0
    return dn
