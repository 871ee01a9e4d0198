"""A bi-temporal rural scene, drawn from a seed.

The scene imitates 1 m (or other GSD) four-band imagery of a county in
southern China: rice and dry-crop parcels with ridges, villages along
roads, a river and ponds, forested hills and an open-pit mine.  The later
date adds planted changes (construction on farmland, mine expansion, new
pits) and the nuisance change that enforcement must ignore: crop
phenology, harvest and ploughing, a different sun and haze, building
shadows that move with the sun, a misregistration of one to two pixels
and a cloud with its shadow.

The layout (what is where, and what changes) is :mod:`satcheck.synth.layout`;
this module renders it on each date.  Everything here works in pixel
coordinates of the later image; callers attach a geotransform.  Reflectances are floats in 0..1 until
:func:`to_dn` turns them into stored numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio import features
from scipy import ndimage
from shapely import affinity

from satcheck.synth.layout import COVER, EXCAVATION, ROOFS, SURFACES, Layout, build_layout, to_px


@dataclass
class ScenePair:
    before: np.ndarray  # float32 (4, H, W) reflectance
    after: np.ndarray
    before_valid: np.ndarray  # bool (H, W)
    after_valid: np.ndarray
    truth: np.ndarray  # uint8 (H, W): 0 none, 1 construction, 2 excavation
    layout: Layout
    surface: np.ndarray | None = None  # uint8 (H, W): 0 none, then SURFACES' codes: what the changed land became


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
        dist = ndimage.distance_transform_edt(raster([g.buffer(to_px(L, 2))], shape))
        bench = np.sin(dist * L.gsd / 6.0 * 2 * np.pi)
        _paint(img, m, "spoil", 0.15 * bench + 0.08 * fine + 0.06 * coarse)
        inner = g.buffer(-to_px(L, 25))
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
