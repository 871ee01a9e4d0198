"""Before/after image chips of a patch: same extent, same stretch, outline and scale bar."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw, ImageFont
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

from satcheck.atomic import atomic_path
from satcheck.masks import dn_scale
from satcheck.tiles import TileInfo

NICE_LENGTHS = (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)
OUTLINE = (255, 230, 0)


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
            m = (vrt.read_masks(1) > 0) & ~ok
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


def _font(size: int):
    with contextlib.suppress(OSError):
        return ImageFont.truetype("DejaVuSans.ttf", size)
    return ImageFont.load_default()


def _draw_outline(img: Image.Image, geom, transform) -> None:
    d = ImageDraw.Draw(img)
    inv = ~transform
    polys = [geom] if geom.geom_type == "Polygon" else list(geom.geoms)
    for p in polys:
        for ring in [p.exterior, *p.interiors]:
            pts = [inv * (x, y) for x, y in ring.coords]
            d.line(pts, fill=OUTLINE, width=2, joint="curve")


def _draw_scale_bar(img: Image.Image, metres_per_px: float) -> None:
    w, h = img.size
    target = w * metres_per_px / 4
    length = min(NICE_LENGTHS, key=lambda n: abs(n - target))
    px = length / metres_per_px
    d = ImageDraw.Draw(img)
    x0, y0 = 10, h - 16
    d.rectangle([x0 - 4, y0 - 16, x0 + px + 40, h - 4], fill=(0, 0, 0))
    d.rectangle([x0, y0, x0 + px, y0 + 5], fill=(255, 255, 255))
    d.text((x0 + px + 4, y0 - 6), f"{length} m", fill=(255, 255, 255), font=_font(11))


def chip_grid(geom, pixel_m: float, min_side_m: float, chip_px: int):
    minx, miny, maxx, maxy = geom.bounds
    side = max(maxx - minx, maxy - miny) * 1.6
    side = max(side, min_side_m)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    res = max(side / chip_px, pixel_m / 4)
    n = int(round(side / res))
    return from_origin(cx - n * res / 2, cy + n * res / 2, res, res), n, res


def write_chips(patch, geom, crs, befores: list[TileInfo], afters: list[TileInfo], folder: Path,
                pixel_m: float, min_side_m: float = 80.0, chip_px: int = 256) -> ChipPaths:
    transform, n, res = chip_grid(geom, pixel_m, min_side_m, chip_px)
    b, ok_b = read_rgb(befores, crs, transform, n, n)
    a, ok_a = read_rgb(afters, crs, transform, n, n)
    ib, ia = stretch_pair(b, a, ok_b, ok_a)
    paths = []
    for name, arr in (("before", ib), ("after", ia)):
        img = Image.fromarray(arr)
        _draw_outline(img, geom, transform)
        _draw_scale_bar(img, res)
        path = folder / f"{patch}_{name}.png"
        with atomic_path(path) as tmp:
            img.save(tmp, format="PNG")
        paths.append(path)
    return ChipPaths(paths[0], paths[1], None)


def overview(afters: list[TileInfo], crs, bounds, max_px: int = 480) -> tuple[Image.Image, object]:
    """A decimated view of the later date over ``bounds`` (for locator maps)."""
    minx, miny, maxx, maxy = bounds
    res = max(maxx - minx, maxy - miny) / max_px
    w, h = max(1, int((maxx - minx) / res)), max(1, int((maxy - miny) / res))
    t = from_origin(minx, maxy, res, res)
    rgb, ok = read_rgb(afters, crs, t, w, h)
    img, _ = stretch_pair(rgb, rgb, ok, ok)
    return Image.fromarray(img), t


def write_locator(base: Image.Image, transform, geom, path: Path) -> Path:
    img = base.copy()
    d = ImageDraw.Draw(img)
    x, y = ~transform * (geom.centroid.x, geom.centroid.y)
    r = 7
    d.ellipse([x - r, y - r, x + r, y + r], outline=(255, 0, 0), width=3)
    d.line([x - 2 * r, y, x - r, y], fill=(255, 0, 0), width=2)
    d.line([x + r, y, x + 2 * r, y], fill=(255, 0, 0), width=2)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
