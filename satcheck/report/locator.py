"""The locator of a patch: the later imagery within about 2 km, the admin unit outlined and named, a scale bar.

Warping 2 km of full-resolution imagery down to 256 px for each patch on its own reads the same pixels again
for every neighbour within 2 km, and was most of the time of a run's patches. So the later imagery is read once
per block of patches, averaged onto the locators' own scale (a *mosaic*), and each locator is a window of it.
Every locator of that scale lies on one lattice (pixels of ``2 * radius / px`` from the CRS's origin): its square
is snapped to the nearest lattice pixel, at most half a pixel (~4 m) off centre, and what is drawn on it uses the
snapped grid, so outlines and imagery agree. A patch whose locator needs a coarser scale (a patch larger than
the 2 km square), and a block where per-patch warps would read less, keep the per-patch warp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from rasterio.enums import Resampling
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window, union
from rasterio.windows import transform as window_transform

from satcheck.report.context import LOCATOR_RADIUS_M, admin_at
from satcheck.report.draw import (
    TileHandles,
    draw_outline,
    draw_scale_bar,
    font,
    pixel_bounds,
    read_rgb,
    save_png,
    stretch_pair,
)
from satcheck.tiles import TileInfo

LOCATOR_PX = 256
# The side of a mosaic, in pixels, at most. A run holds one mosaic at a time (its block's locators are drawn, then
# it is dropped): 2048² pixels of three float32 bands and a mask are ~55 MB whatever the size of the tiles, and
# cover 16 km a side at the locators' 7.8 m (2 km over 256 px). Patches are grouped into blocks that fit.
MOSAIC_MAX_PX = 2048


@dataclass(frozen=True, eq=False)
class Mosaic:
    """The later imagery over ``window`` of the lattice, as :func:`read_rgb` gives it (about 0..1, valid mask)."""

    window: Window
    transform: Affine
    rgb: np.ndarray = field(repr=False)
    ok: np.ndarray = field(repr=False)

    def cut(self, win: Window) -> tuple[np.ndarray, np.ndarray] | None:
        """The pixels of lattice window ``win``, or None where it is not all inside this mosaic."""
        r0, c0 = int(win.row_off - self.window.row_off), int(win.col_off - self.window.col_off)
        h, w = int(win.height), int(win.width)
        if r0 < 0 or c0 < 0 or r0 + h > self.ok.shape[0] or c0 + w > self.ok.shape[1]:
            return None
        return self.rgb[:, r0:r0 + h, c0:c0 + w], self.ok[r0:r0 + h, c0:c0 + w]


def locator_window(geom, radius_m: float = LOCATOR_RADIUS_M) -> tuple[float, float, float, float]:
    """The square the locator shows: ``radius_m`` around the patch's centre, or more for a large patch."""
    minx, miny, maxx, maxy = geom.bounds
    r = max(radius_m, 0.75 * max(maxx - minx, maxy - miny))
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    return cx - r, cy - r, cx + r, cy + r


def lattice(radius_m: float = LOCATOR_RADIUS_M, px: int = LOCATOR_PX) -> Affine:
    """The grid every locator of radius ``radius_m`` at ``px`` pixels lies on."""
    res = 2 * radius_m / px
    return Affine(res, 0.0, 0.0, 0.0, -res, 0.0)


def lattice_window(geom, radius_m: float = LOCATOR_RADIUS_M, px: int = LOCATOR_PX) -> Window | None:
    """The locator's square snapped to :func:`lattice`, or None where the patch needs a coarser scale."""
    minx, _, maxx, maxy = locator_window(geom, radius_m)
    if maxx - minx > 2 * radius_m * (1 + 1e-9):
        return None
    res = 2 * radius_m / px
    return Window(int(round(minx / res)), int(round(-maxy / res)), px, px)


def plan_mosaics(geoms, radius_m: float = LOCATOR_RADIUS_M, px: int = LOCATOR_PX,
                 max_px: int = MOSAIC_MAX_PX) -> list[tuple[Window | None, list[int]]]:
    """Patches (indexes into ``geoms``) grouped by the mosaic their locators are cut from: (lattice window of the
    mosaic, indexes), and (None, indexes) for those warped one by one.

    A block of ``max_px - px`` lattice pixels holds the patches whose locators start in it, so a block's mosaic
    (the union of its locators) is at most ``max_px`` a side. A block gets a mosaic where its locators together
    have at least as many pixels as it (each pixel of the imagery is then read once instead of once per locator
    over it); else it is cut in four, and so on down to single patches, which are warped alone.
    """
    if max_px <= px:
        raise ValueError(f"a mosaic of {max_px} px cannot hold a locator of {px} px")
    block = max_px - px
    blocks: dict[tuple[int, int], list[tuple[int, Window]]] = {}
    alone: list[int] = []
    for i, g in enumerate(geoms):
        w = lattice_window(g, radius_m, px)
        if w is None:
            alone.append(i)
        else:
            blocks.setdefault((int(w.col_off) // block, int(w.row_off) // block), []).append((i, w))
    plan: list[tuple[Window | None, list[int]]] = []
    for (bc, br), members in blocks.items():
        plan.extend(_dense(members, bc * block, br * block, block, px, alone))
    if alone:
        plan.append((None, sorted(alone)))
    return plan


def _dense(members: list[tuple[int, Window]], col: int, row: int, side: int, px: int,
           alone: list[int]) -> list[tuple[Window, list[int]]]:
    """Mosaics for the locators starting in the square (``col``, ``row``, ``side``) of the lattice; the patches of
    none go to ``alone``."""
    whole = union(*[w for _, w in members])
    if len(members) * px * px >= whole.width * whole.height:
        return [(whole, [i for i, _ in members])]
    if len(members) == 1 or side < 2:
        alone.extend(i for i, _ in members)
        return []
    half = -(-side // 2)
    quads: dict[tuple[bool, bool], list[tuple[int, Window]]] = {}
    for i, w in members:
        quads.setdefault((w.col_off >= col + half, w.row_off >= row + half), []).append((i, w))
    return [m for (right, lower), q in quads.items()
            for m in _dense(q, col + half * right, row + half * lower, half, px, alone)]


def read_mosaic(win: Window, afters: list[TileInfo], crs, radius_m: float = LOCATOR_RADIUS_M,
                px: int = LOCATOR_PX, handles: TileHandles | None = None) -> Mosaic:
    """The later tiles averaged onto lattice window ``win`` (overviews read where they are fine enough)."""
    t = window_transform(win, lattice(radius_m, px))
    rgb, ok = read_rgb(afters, crs, t, int(win.width), int(win.height), Resampling.average, overview_m=t.a,
                       handles=handles)
    return Mosaic(win, t, rgb, ok)


def write_locator(geom, path: Path, afters: list[TileInfo], crs, rules=None, label: str | None = None,
                  radius_m: float = LOCATOR_RADIUS_M, px: int = LOCATOR_PX, mosaic: Mosaic | None = None,
                  handles: TileHandles | None = None) -> Path:
    """The patch within about 2 km of the later date; the admin unit (from ``rules``) is outlined and named, else
    ``label`` is written. Cut from ``mosaic`` where it holds the locator's square, else warped for this patch."""
    win = lattice_window(geom, radius_m, px) if mosaic is not None else None
    cut = mosaic.cut(win) if win is not None else None
    if cut is not None:
        t = window_transform(win, lattice(radius_m, px))
        rgb, ok = cut
    else:
        minx, miny, maxx, maxy = locator_window(geom, radius_m)
        t = from_origin(minx, maxy, (maxx - minx) / px, (maxx - minx) / px)
        rgb, ok = read_rgb(afters, crs, t, px, px, handles=handles)
    res = t.a
    arr, _ = stretch_pair(rgb, rgb, ok, ok)
    img = Image.fromarray(arr)
    unit = admin_at(rules, geom.centroid)
    if unit is not None:
        draw_outline(img, unit.geom, t, (255, 255, 255), 2)
        label = unit.label or label
    draw_outline(img, geom, t, (255, 0, 0), 2)
    d = ImageDraw.Draw(img)
    x, y = ~t * (geom.centroid.x, geom.centroid.y)
    bx = pixel_bounds(geom, t)
    r = max(9.0, (bx[2] - bx[0]) / 2 + 4, (bx[3] - bx[1]) / 2 + 4)
    d.ellipse([x - r, y - r, x + r, y + r], outline=(255, 0, 0), width=2)
    if label:
        f = font(13, cjk=True)
        w = d.textlength(label, font=f)
        d.rectangle([2, 2, 10 + w, 20], fill=(0, 0, 0))
        d.text((6, 3), label, fill=(255, 255, 255), font=f)
    draw_scale_bar(img, res, bx, corners=("br", "bl"))
    return save_png(img, path)
