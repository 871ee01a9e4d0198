"""The layout of a generated scene: parcels, villages, roads, water, hills and a mine, and the changes planted
in it, drawn from a seed in pixel coordinates of the later image (:mod:`satcheck.synth.scene` renders it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
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


def to_px(layout_or_gsd, metres: float) -> float:
    """``metres`` on the ground in pixels of the scene (or of a pixel size in metres)."""
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
    river = LineString(pts).buffer(to_px(L, rng.uniform(8, 16))).intersection(frame)
    L.water.append(river)

    # Roads: a main road and a grid of field roads.
    main_angle = rng.uniform(-15, 15)
    cy = rng.uniform(0.3, 0.7) * h
    main = affinity.rotate(LineString([(-w, cy), (2 * w, cy)]), main_angle, origin=(w / 2, cy))
    L.roads.append((main.buffer(to_px(L, 3.5)).intersection(frame), "concrete" if rng.random() < 0.6 else "asphalt"))
    spacing = to_px(L, rng.uniform(160, 260))
    for x in np.arange(rng.uniform(0.3, 1.0) * spacing, w, spacing):
        L.roads.append((LineString([(x, -10), (x + rng.uniform(-20, 20), h + 10)]).buffer(to_px(L, 1.5)), "dirt"))

    # Villages along the main road.
    n_villages = max(1, int(rng.integers(1, 3) * (w * h) / 1536**2 + 0.5))
    villages = []
    for _ in range(n_villages):
        vx = rng.uniform(0.1, 0.9) * w
        vy = cy + (vx - w / 2) * np.tan(np.radians(main_angle)) + rng.uniform(-40, 40) / gsd
        village = _blob(rng, vx, vy, to_px(L, rng.uniform(70, 120)), rough=0.2)
        villages.append(village)
        ang = main_angle + rng.uniform(-5, 5)
        step = to_px(L, 22)
        for gx in np.arange(vx - 120 / gsd, vx + 120 / gsd, step):
            for gy in np.arange(vy - 120 / gsd, vy + 120 / gsd, step):
                if rng.random() < 0.35:
                    continue
                bw, bh = to_px(L, rng.uniform(9, 16)), to_px(L, rng.uniform(8, 14))
                b = _rect(gx + rng.uniform(-2, 2), gy + rng.uniform(-2, 2), bw, bh, ang)
                if village.contains(b.centroid):
                    L.buildings.append((b, str(rng.choice(ROOFS))))
                    if rng.random() < 0.3:
                        L.yards.append(_rect(gx, gy + bh * 0.8, bw, bh * 0.6, ang))

    # The existing open pit in the hills.
    mx, my = hill.representative_point().coords[0]
    pit = _blob(rng, mx, my, to_px(L, rng.uniform(60, 90)), rough=0.3).intersection(hill)
    if pit.is_empty or pit.area < 100:
        pit = _blob(rng, mx, my, to_px(L, 60), rough=0.2)
    L.mine_before.append(pit)

    # Farmland parcels: strips inside blocks between field roads.
    taken = shapely.union_all([hill, river, *villages])
    road_union = shapely.union_all([g for g, _ in L.roads])
    strip_angle = main_angle + rng.choice([0.0, 90.0])
    pw_range = (18, 40)
    cell = to_px(L, 120)
    for bx in np.arange(0, w, cell):
        for by in np.arange(0, h, cell):
            y = by
            while y < by + cell:
                sw = to_px(L, rng.uniform(*pw_range))
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
                    g = p.buffer(-to_px(L, 0.8)).difference(taken)
                    if road_union is not None:
                        g = g.difference(road_union.buffer(to_px(L, 1)))
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
                                            to_px(L, rng.uniform(3, 7))))
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
        if g.buffer(to_px(L, 1.0)).contains(r):
            style = style or str(rng.choice(["house", "shed", "yard", "house"]))
            return PlantedChange(r, CONSTRUCTION, f"{label}:{style}")
    return None


def _plant_pit(rng: np.random.Generator, L: Layout, cx: float, cy: float, r_m: float, label: str,
               clip: BaseGeometry | None = None) -> PlantedChange:
    g = _blob(rng, cx, cy, to_px(L, r_m), rough=0.3)
    if clip is not None:
        g = g.intersection(clip)
    if g.geom_type != "Polygon":
        g = max(getattr(g, "geoms", [g]), key=lambda q: q.area)
    return PlantedChange(g, EXCAVATION, label)


def _plant_changes(rng: np.random.Generator, L: Layout, hill: BaseGeometry, pit: Polygon, villages, rich: bool,
                   min_builds: int = 2) -> None:
    h, w = L.size
    frame = box(0, 0, w, h).buffer(-to_px(L, 30))
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
                road = _rect((minx + maxx) / 2, (miny + maxy) / 2, to_px(L, rng.uniform(4, 8)), long_side * 0.9,
                             0 if maxy - miny > maxx - minx else 90).intersection(p.geom)
                if road.geom_type == "Polygon" and road.area > 100 / L.gsd**2:
                    L.changes.append(PlantedChange(road, CONSTRUCTION, "new_road:yard_only"))
        return

    # The permit covers the old pit and half of the expansion.
    valid_permit = pit.buffer(to_px(L, 15)).union(grow.geom.intersection(pit.buffer(to_px(L, 25))))
    L.permits.append({"geom": valid_permit.convex_hull, "permit_no": "C3608002019067130148273",
                      "holder": "吉安县宏达矿业有限公司", "valid_from": "2019-06-01", "valid_to": "2029-05-31"})
    # An expired permit with fresh digging inside it, and a pit with no permit at all.
    cands = [p for p in L.parcels if frame.contains(p.geom.centroid)]
    spots = []
    for _ in range(200):
        q = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
        pt = Polygon(_rect(q[0], q[1], 1, 1))
        if hill.buffer(-to_px(L, 20)).contains(pt) and not pit.buffer(to_px(L, 150)).intersects(pt):
            if all(Polygon(_rect(*s, 1, 1)).distance(pt) > to_px(L, 150) for s in spots):
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
    L.permits.append({"geom": expired.geom.buffer(to_px(L, 25)).convex_hull, "permit_no": "C3608002014037120131559",
                      "holder": "吉水县金源采石场", "valid_from": "2014-03-01", "valid_to": "2026-09-30"})
    L.changes.append(_plant_pit(rng, L, spots[1][0], spots[1][1], 28, "illegal_pit"))
    # A building on an approved plot, and one on grassland (not farmland).
    p = _free_parcel(rng, L, 1500 / L.gsd**2)
    if p is not None:
        c = _plant_construction(rng, L, p, 600, "approved_construction", "yard")
        if c is not None:
            L.changes.append(c)
            L.approved.append({"geom": c.geom.buffer(to_px(L, 12)).envelope, "approval_no": "赣府土字〔2026〕115号",
                               "approved_on": "2026-05-20"})
    # One too small to matter (under the minimum mapping unit).
    p = _free_parcel(rng, L, 900 / L.gsd**2)
    if p is not None:
        c = _plant_construction(rng, L, p, 110, "small_shed", "shed")
        if c is not None:
            L.changes.append(c)
