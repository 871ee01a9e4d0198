"""Before/after image chips of a patch: same extent, same stretch, outline and scale bar; and its locator.

A chip shows at least :data:`MARGIN_M` around the patch and has at least ``chip_px`` pixels a side:
coarse imagery (5 m, 10 m) is upsampled, so a 20 m patch is not a handful of pixels.  The scale bar
sits in a corner away from the patch.  Given rule layers, the chip also outlines farmland, permanent
basic farmland, mining permits and approved land around the patch (:mod:`satcheck.report.context`).
The locator (:mod:`satcheck.report.locator`) shows the patch within about 2 km, with its admin unit's boundary
and name.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw
from rasterio.transform import from_origin

from satcheck.report.context import CHIP_LAYERS, LAYER_STYLE, build_indexes, outlines, text
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
from satcheck.report.locator import plan_mosaics, read_mosaic, write_locator
from satcheck.tiles import TileInfo

OUTLINE = (255, 230, 0)
MARGIN_M = 100.0  # shown around a patch on every side, at least
MAX_THREADS = 8  # patches drawn at once (write_patch_images), at most one per core
MAX_UPSCALE_PX = 2  # a chip has chip_px..2*chip_px pixels a side: native pixels where there are that many


@dataclass(frozen=True)
class ChipPaths:
    before: Path
    after: Path
    locator: Path | None


def _draw_context(img: Image.Image, found, transform) -> list[str]:
    """Outlines of rule layers; returns the layers drawn, for the legend."""
    scale = max(1, img.size[0] // 256)
    drawn = []
    for o in found:
        colour = LAYER_STYLE[o.layer][0]
        draw_outline(img, o.geom, transform, colour, (2 if o.layer == "basic_farmland" else 1) * scale)
        if o.layer not in drawn:
            drawn.append(o.layer)
    return drawn


def _draw_legend(img: Image.Image, layers: list[str]) -> None:
    if not layers:
        return
    scale = max(1, img.size[0] // 256)
    f = font(10 * scale)
    d = ImageDraw.Draw(img)
    y = 4 * scale
    for name in ["patch", *layers]:
        colour, label = (OUTLINE, "patch") if name == "patch" else LAYER_STYLE[name][:2]
        w = d.textlength(label, font=f)
        d.rectangle([2 * scale, y - scale, 2 * scale + 16 * scale + w + 4 * scale, y + 11 * scale], fill=(0, 0, 0))
        d.line([4 * scale, y + 5 * scale, 14 * scale, y + 5 * scale], fill=colour, width=2 * scale)
        d.text((17 * scale, y), label, fill=(255, 255, 255), font=f)
        y += 13 * scale


def chip_grid(geom, pixel_m: float, min_side_m: float, chip_px: int, margin_m: float = MARGIN_M):
    """(transform, side in pixels, metres per pixel) of a square chip around ``geom``.

    The side is at least the patch plus ``margin_m`` on each side (and 1.6 times the patch, and
    ``min_side_m``); it has ``chip_px`` to ``2 * chip_px`` pixels: native ones where the imagery has that
    many, else upsampled.
    """
    minx, miny, maxx, maxy = geom.bounds
    extent = max(maxx - minx, maxy - miny)
    side = max(extent * 1.6, extent + 2 * margin_m, min_side_m)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    n = int(np.clip(round(side / max(pixel_m, 1e-6)), chip_px, MAX_UPSCALE_PX * chip_px))
    res = side / n
    return from_origin(cx - side / 2, cy + side / 2, res, res), n, res


def write_chips(patch, geom, crs, befores: list[TileInfo], afters: list[TileInfo], folder: Path,
                pixel_m: float, min_side_m: float = 80.0, chip_px: int = 256, layers=None,
                handles: TileHandles | None = None) -> ChipPaths:
    """``layers``: rule layers (a RuleLayers or a dict of GeoDataFrames in ``crs``) outlined around the patch.
    ``handles``: the tiles held open across patches."""
    transform, n, res = chip_grid(geom, pixel_m, min_side_m, chip_px)
    b, ok_b = read_rgb(befores, crs, transform, n, n, handles=handles)
    a, ok_a = read_rgb(afters, crs, transform, n, n, handles=handles)
    ib, ia = stretch_pair(b, a, ok_b, ok_a)
    bounds = (transform.c, transform.f - n * res, transform.c + n * res, transform.f)
    found = outlines(layers, bounds, CHIP_LAYERS)
    avoid = pixel_bounds(geom, transform)
    paths = []
    for name, arr in (("before", ib), ("after", ia)):
        img = Image.fromarray(arr)
        drawn = _draw_context(img, found, transform)
        draw_outline(img, geom, transform, OUTLINE, 2 * max(1, n // 256))
        _draw_legend(img, drawn)
        draw_scale_bar(img, res, avoid, corners=("bl", "br") if drawn else ("bl", "br", "tr", "tl"))
        path = folder / f"{patch}_{name}.png"
        paths.append(save_png(img, path))
    return ChipPaths(paths[0], paths[1], None)


def write_patch_images(patches, befores: list[TileInfo], afters: list[TileInfo], folder: Path, pixel_m: float,
                       min_side_m: float = 80.0, chip_px: int = 256, rules=None,
                       progress: Callable[[str, int, int], None] | None = None) -> dict[str, tuple[Path, Path, Path]]:
    """Before, after and locator images of every patch, with the rule layers' outlines when ``rules`` is given.

    ``progress(stage, done, total)`` is called after each patch (stage ``"chips"``), for a progress bar.
    Returns patch id -> (before, after, locator) paths, as the field sheets take them.
    """
    crs = patches.crs
    total = len(patches)
    rows = [r for _, r in patches.iterrows()]
    if not rows:
        return {}
    done: dict[str, tuple[Path, Path, Path]] = {}

    def chips(r) -> ChipPaths:
        return write_chips(r["patch_id"], r.geometry, crs, befores, afters, folder, pixel_m, min_side_m, chip_px,
                           layers=rules, handles=handles)

    def locator(r, mosaic) -> Path:
        return write_locator(r.geometry, folder / f"{r['patch_id']}_locator.png", afters, crs, rules,
                             _admin_label(r), mosaic=mosaic, handles=handles)

    build_indexes(rules)
    # Patches are drawn in threads, one per core: GDAL warps and Pillow encodes with the GIL released. The locators
    # of a block of patches are cut from one mosaic of the later imagery (satcheck.report.locator), read here while
    # the threads draw the block's chips, and dropped once the block is drawn: one mosaic at most is held.
    handles = TileHandles()
    pool = ThreadPoolExecutor(max(1, min(MAX_THREADS, cores(), total)), thread_name_prefix="satcheck-chips")
    try:
        for win, members in plan_mosaics([r.geometry for r in rows]):
            todo = [rows[i] for i in members]
            drawn = [pool.submit(chips, r) for r in todo]
            mosaic = read_mosaic(win, afters, crs, handles=handles) if win is not None else None
            located = [pool.submit(locator, r, mosaic) for r in todo]
            for r, c, loc in zip(todo, drawn, located):
                c = c.result()
                done[r["patch_id"]] = (c.before, c.after, loc.result())
                if progress:
                    progress("chips", len(done), total)
            del mosaic, located
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after an error, the patches not begun are not drawn
        handles.close()
    return {r["patch_id"]: done[r["patch_id"]] for r in rows}


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _admin_label(row) -> str | None:
    return " ".join(t for t in (text(row.get("admin_name")), text(row.get("admin_code"))) if t) or None
