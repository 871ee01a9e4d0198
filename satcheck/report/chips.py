"""Before/after image chips of a patch: same extent, same stretch, outline and scale bar; and its locator.

A chip shows at least :data:`MARGIN_M` around the patch and has at least ``chip_px`` pixels a side:
coarse imagery (5 m, 10 m) is upsampled, so a 20 m patch is not a handful of pixels.  The scale bar
sits in a corner away from the patch.  Given rule layers, the chip also outlines farmland, permanent
basic farmland, mining permits and approved land around the patch (:mod:`satcheck.report.context`).
The locator shows the patch within about 2 km, with its admin unit's boundary and name.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from PIL import Image, ImageDraw, ImageFont
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

from satcheck.atomic import atomic_path
from satcheck.masks import dn_scale
from satcheck.report.context import CHIP_LAYERS, LAYER_STYLE, LOCATOR_RADIUS_M, admin_at, outlines, text
from satcheck.tiles import TileInfo

NICE_LENGTHS = (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)
OUTLINE = (255, 230, 0)
MARGIN_M = 100.0  # shown around a patch on every side, at least
MAX_THREADS = 8  # patches drawn at once (write_patch_images), at most one per core
MAX_UPSCALE_PX = 2  # a chip has chip_px..2*chip_px pixels a side: native pixels where there are that many


@dataclass(frozen=True)
class ChipPaths:
    before: Path
    after: Path
    locator: Path | None


def read_rgb(tiles: list[TileInfo], crs, transform, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """R, G, B of ``tiles`` warped onto a chip grid, scaled to about 0..1, and the valid mask."""
    rgb = np.zeros((3, height, width), np.float32)
    ok = np.zeros((height, width), bool)
    with contextlib.ExitStack() as stack:
        for t in tiles:
            src = stack.enter_context(rasterio.open(t.path))
            vrt = stack.enter_context(WarpedVRT(src, crs=crs, transform=transform, width=width, height=height,
                                                resampling=Resampling.bilinear))
            bands = t.band_indexes[:3] if t.count >= 3 else t.band_indexes[:1] * 3
            data = vrt.read(bands).astype(np.float32)
            m = (vrt.read_masks(1) > 0) & ~ok & np.isfinite(data).all(axis=0)  # NaN of a float tile: nodata
            if not m.any():
                continue
            rgb[:, m] = data[:, m] / dn_scale(t.dtype, data[:, m])
            ok |= m
    return rgb, ok


def stretch_pair(a: np.ndarray, b: np.ndarray, ok_a: np.ndarray, ok_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One 2–98 % stretch per band from both chips, so brightness differences stay visible."""
    out_a, out_b = np.zeros(a.shape[1:] + (3,), np.uint8), np.zeros(b.shape[1:] + (3,), np.uint8)
    for i in range(3):
        vals = np.concatenate([a[i][ok_a], b[i][ok_b]])
        lo, hi = np.quantile(vals, [0.02, 0.98]) if vals.size else (0.0, 1.0)
        span = max(hi - lo, 1e-6)
        out_a[..., i] = np.clip((a[i] - lo) / span * 255, 0, 255).astype(np.uint8)
        out_b[..., i] = np.clip((b[i] - lo) / span * 255, 0, 255).astype(np.uint8)
    return out_a, out_b


def _font(size: int, cjk: bool = False):
    if cjk:
        with contextlib.suppress(Exception):
            from satcheck.report.sheets import find_cjk_font

            return ImageFont.truetype(str(find_cjk_font()), size)
    with contextlib.suppress(OSError):
        return ImageFont.truetype("DejaVuSans.ttf", size)
    return ImageFont.load_default()


def _rings(geom):
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        polys = [geom] if geom.geom_type == "Polygon" else list(geom.geoms)
        return [r for p in polys for r in (p.exterior, *p.interiors)]
    if geom.geom_type in ("LineString", "LinearRing"):
        return [geom]
    if hasattr(geom, "geoms"):
        return [r for g in geom.geoms for r in _rings(g)]
    return []


def _draw_outline(img: Image.Image, geom, transform, colour=OUTLINE, width: int = 2) -> None:
    d = ImageDraw.Draw(img)
    inv = ~transform
    for ring in _rings(geom):
        pts = [inv * (x, y) for x, y in ring.coords]
        if len(pts) >= 2:
            d.line(pts, fill=colour, width=width, joint="curve")


def _draw_context(img: Image.Image, found, transform) -> list[str]:
    """Outlines of rule layers; returns the layers drawn, for the legend."""
    scale = max(1, img.size[0] // 256)
    drawn = []
    for o in found:
        colour = LAYER_STYLE[o.layer][0]
        _draw_outline(img, o.geom, transform, colour, (2 if o.layer == "basic_farmland" else 1) * scale)
        if o.layer not in drawn:
            drawn.append(o.layer)
    return drawn


def _draw_legend(img: Image.Image, layers: list[str]) -> None:
    if not layers:
        return
    scale = max(1, img.size[0] // 256)
    font = _font(10 * scale)
    d = ImageDraw.Draw(img)
    y = 4 * scale
    for name in ["patch", *layers]:
        colour, label = (OUTLINE, "patch") if name == "patch" else LAYER_STYLE[name][:2]
        w = d.textlength(label, font=font)
        d.rectangle([2 * scale, y - scale, 2 * scale + 16 * scale + w + 4 * scale, y + 11 * scale], fill=(0, 0, 0))
        d.line([4 * scale, y + 5 * scale, 14 * scale, y + 5 * scale], fill=colour, width=2 * scale)
        d.text((17 * scale, y), label, fill=(255, 255, 255), font=font)
        y += 13 * scale


def _scale_bar_box(w: int, h: int, px: float, label_w: float, scale: int, corner: str) -> tuple[float, float, float, float]:
    bw, bh = px + label_w + 14 * scale, 18 * scale
    x0 = 2 * scale if corner.endswith("l") else w - 2 * scale - bw
    y0 = h - 2 * scale - bh if corner.startswith("b") else 2 * scale
    return x0, y0, x0 + bw, y0 + bh


def _draw_scale_bar(img: Image.Image, metres_per_px: float, avoid: tuple[float, float, float, float] | None = None,
                    corners: tuple[str, ...] = ("bl", "br", "tr", "tl")) -> tuple[float, float, float, float]:
    """A scale bar in the first corner whose box stays clear of ``avoid`` (the patch's pixel bounds)."""
    w, h = img.size
    scale = max(1, w // 256)
    target = w * metres_per_px / 4
    length = min(NICE_LENGTHS, key=lambda n: abs(n - target))
    px = length / metres_per_px
    d = ImageDraw.Draw(img)
    font = _font(11 * scale)
    label = f"{length} m"
    lw = d.textlength(label, font=font)
    box = None
    for corner in corners:
        box = _scale_bar_box(w, h, px, lw, scale, corner)
        if avoid is None or not (box[0] < avoid[2] and avoid[0] < box[2] and box[1] < avoid[3] and avoid[1] < box[3]):
            break
    x0, y0, x1, y1 = box
    d.rectangle([x0, y0, x1, y1], fill=(0, 0, 0))
    d.rectangle([x0 + 4 * scale, y1 - 7 * scale, x0 + 4 * scale + px, y1 - 3 * scale], fill=(255, 255, 255))
    d.text((x0 + 8 * scale + px, y0 + 2 * scale), label, fill=(255, 255, 255), font=font)
    return box


def _pixel_bounds(geom, transform) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = geom.bounds
    inv = ~transform
    (ax, ay), (bx, by) = inv * (minx, maxy), inv * (maxx, miny)
    return min(ax, bx) - 3, min(ay, by) - 3, max(ax, bx) + 3, max(ay, by) + 3


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
                pixel_m: float, min_side_m: float = 80.0, chip_px: int = 256, layers=None) -> ChipPaths:
    """``layers``: rule layers (a RuleLayers or a dict of GeoDataFrames in ``crs``) outlined around the patch."""
    transform, n, res = chip_grid(geom, pixel_m, min_side_m, chip_px)
    b, ok_b = read_rgb(befores, crs, transform, n, n)
    a, ok_a = read_rgb(afters, crs, transform, n, n)
    ib, ia = stretch_pair(b, a, ok_b, ok_a)
    bounds = (transform.c, transform.f - n * res, transform.c + n * res, transform.f)
    found = outlines(layers, bounds, CHIP_LAYERS)
    avoid = _pixel_bounds(geom, transform)
    paths = []
    for name, arr in (("before", ib), ("after", ia)):
        img = Image.fromarray(arr)
        drawn = _draw_context(img, found, transform)
        _draw_outline(img, geom, transform, OUTLINE, 2 * max(1, n // 256))
        _draw_legend(img, drawn)
        _draw_scale_bar(img, res, avoid, corners=("bl", "br") if drawn else ("bl", "br", "tr", "tl"))
        path = folder / f"{patch}_{name}.png"
        with atomic_path(path) as tmp:
            img.save(tmp, format="PNG")
        paths.append(path)
    return ChipPaths(paths[0], paths[1], None)


def locator_window(geom, radius_m: float = LOCATOR_RADIUS_M) -> tuple[float, float, float, float]:
    """The square the locator shows: ``radius_m`` around the patch's centre, or more for a large patch."""
    minx, miny, maxx, maxy = geom.bounds
    r = max(radius_m, 0.75 * max(maxx - minx, maxy - miny))
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    return cx - r, cy - r, cx + r, cy + r


def write_locator(geom, path: Path, afters: list[TileInfo], crs, rules=None, label: str | None = None,
                  radius_m: float = LOCATOR_RADIUS_M, px: int = 256) -> Path:
    """The patch within about 2 km of the later date; the admin unit (from ``rules``) is outlined and named, else
    ``label`` is written."""
    minx, miny, maxx, maxy = locator_window(geom, radius_m)
    res = (maxx - minx) / px
    t = from_origin(minx, maxy, res, res)
    rgb, ok = read_rgb(afters, crs, t, px, px)
    arr, _ = stretch_pair(rgb, rgb, ok, ok)
    img = Image.fromarray(arr)
    unit = admin_at(rules, geom.centroid)
    if unit is not None:
        _draw_outline(img, unit.geom, t, (255, 255, 255), 2)
        label = unit.label or label
    _draw_outline(img, geom, t, (255, 0, 0), 2)
    d = ImageDraw.Draw(img)
    x, y = ~t * (geom.centroid.x, geom.centroid.y)
    bx = _pixel_bounds(geom, t)
    r = max(9.0, (bx[2] - bx[0]) / 2 + 4, (bx[3] - bx[1]) / 2 + 4)
    d.ellipse([x - r, y - r, x + r, y + r], outline=(255, 0, 0), width=2)
    if label:
        font = _font(13, cjk=True)
        w = d.textlength(label, font=font)
        d.rectangle([2, 2, 10 + w, 20], fill=(0, 0, 0))
        d.text((6, 3), label, fill=(255, 255, 255), font=font)
    _draw_scale_bar(img, res, _pixel_bounds(geom, t), corners=("br", "bl"))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def write_patch_images(patches, befores: list[TileInfo], afters: list[TileInfo], folder: Path, pixel_m: float,
                       min_side_m: float = 80.0, chip_px: int = 256, rules=None,
                       progress: Callable[[str, int, int], None] | None = None) -> dict[str, tuple[Path, Path, Path]]:
    """Before, after and locator images of every patch, with the rule layers' outlines when ``rules`` is given.

    ``progress(stage, done, total)`` is called after each patch (stage ``"chips"``), for a progress bar.
    Returns patch id -> (before, after, locator) paths, as the field sheets take them.
    """
    crs = patches.crs
    out: dict[str, tuple[Path, Path, Path]] = {}
    total = len(patches)
    rows = [r for _, r in patches.iterrows()]

    def one(r) -> tuple[Path, Path, Path]:
        c = write_chips(r["patch_id"], r.geometry, crs, befores, afters, folder, pixel_m, min_side_m, chip_px,
                        layers=rules)
        loc = write_locator(r.geometry, folder / f"{r['patch_id']}_locator.png", afters, crs, rules, _admin_label(r))
        return c.before, c.after, loc

    if not rows:
        return out
    # Patches are drawn in threads, one per core: GDAL warps and Pillow encodes with the GIL released, and the
    # locator's 2 km warp is most of a patch's time. The first patch is drawn alone: it builds the rule layers'
    # spatial indexes (built on first use), which the threads then only read.
    out[rows[0]["patch_id"]] = one(rows[0])
    if progress:
        progress("chips", 1, total)
    pool = ThreadPoolExecutor(max(1, min(MAX_THREADS, _cores(), total - 1)), thread_name_prefix="satcheck-chips")
    try:
        futures = [(r["patch_id"], pool.submit(one, r)) for r in rows[1:]]
        for i, (pid, f) in enumerate(futures, start=2):
            out[pid] = f.result()
            if progress:
                progress("chips", i, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after an error, the patches not begun are not drawn
    return out


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _admin_label(row) -> str | None:
    return " ".join(t for t in (text(row.get("admin_name")), text(row.get("admin_code"))) if t) or None
