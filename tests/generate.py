"""Tiny test rasters, generated with fixed seeds.

Kept beside the tests that use them (as TorchGeo does) so a failing test
can be reproduced by calling the same function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject

ORIGIN = (592000.0, 2994000.0)  # EPSG:4547, Jiangxi
CRS_4547 = CRS.from_epsg(4547)


def textured(seed: int, shape: tuple[int, int], bands: int = 4) -> np.ndarray:
    """Smooth field-like texture in 0..1 (not constant, so matching has something to match)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    base = np.asarray([0.10, 0.18, 0.08, 0.45, 0.3, 0.3][:bands], np.float32)[:, None, None]
    n = ndimage.gaussian_filter(rng.standard_normal((bands, *shape)).astype(np.float32), (0, 6, 6))
    return np.clip(base * (1 + 2.0 * n) + rng.normal(0, 0.004, (bands, *shape)), 0.01, 1)


def write(path: Path, data: np.ndarray, transform, crs=CRS_4547, nodata=0, dtype="uint8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dn = np.clip(np.round(data * 255 / 0.8), 1, 255).astype(dtype) if data.dtype.kind == "f" else data
    with rasterio.open(path, "w", driver="GTiff", width=dn.shape[2], height=dn.shape[1], count=dn.shape[0],
                       dtype=dn.dtype, crs=crs, transform=transform, nodata=nodata, tiled=True,
                       blockxsize=128, blockysize=128, photometric="minisblack") as dst:
        dst.write(dn)
    return path


def square_pair(folder: Path, *, size: int = 256, square: tuple[int, int, int] = (100, 120, 40),
                before_crs: str | None = None, before_res: float | None = None, seed: int = 3) -> tuple[Path, Path, tuple]:
    """A pair where the later date has a bright roof square at a known place.

    ``square`` is (row, col, side) in pixels of the later 1 m grid; returns
    (before path, after path, square bounds in EPSG:4547 metres).
    """
    t = from_origin(*ORIGIN, 1.0, 1.0)
    before = textured(seed, (size, size))
    after = before.copy()
    r, c, s = square
    after[:, r:r + s, c:c + s] = np.asarray([0.50, 0.50, 0.50, 0.45], np.float32)[:, None, None]
    b_path = folder / "before" / "T_20260901.tif"
    a_path = folder / "after" / "T_20261001.tif"
    write(a_path, after, t)
    if before_crs or before_res:
        dst_crs = CRS.from_user_input(before_crs or "EPSG:4547")
        left, top = ORIGIN
        kw = {"resolution": before_res} if before_res else {}
        dt_, w, h = calculate_default_transform(CRS_4547, dst_crs, size, size, left, top - size, left + size, top, **kw)
        out = np.zeros((4, h, w), np.float32)
        reproject(before, out, src_transform=t, src_crs=CRS_4547, dst_transform=dt_, dst_crs=dst_crs,
                  resampling=Resampling.bilinear)
        write(b_path, np.where(out > 0, out, 0.01), dt_, crs=dst_crs)
    else:
        write(b_path, before, t)
    x0, y1 = t * (c, r)
    x1, y0 = t * (c + s, r + s)
    return b_path, a_path, (x0, y0, x1, y1)


def to_geographic(path: Path, crs: str = "EPSG:4490") -> Path:
    """Rewrite a tile in place in a geographic CRS (degrees), as CGCS2000 lat/lon deliveries come."""
    with rasterio.open(path) as src:
        dst_crs = CRS.from_user_input(crs)
        t, w, h = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *src.bounds)
        out = np.zeros((src.count, h, w), src.dtypes[0])
        reproject(src.read(), out, src_transform=src.transform, src_crs=src.crs, dst_transform=t, dst_crs=dst_crs,
                  resampling=Resampling.nearest, src_nodata=src.nodata, dst_nodata=src.nodata)
    tmp = path.with_suffix(".tmp.tif")
    write(tmp, out, t, crs=dst_crs)
    tmp.replace(path)
    return path


def misregister(path: Path, east_m: float, north_m: float) -> Path:
    """Move a tile's georeference (not its pixels) by some metres, as an orthorectification error would."""
    with rasterio.open(path, "r+") as dst:
        t = dst.transform
        dst.transform = rasterio.Affine(t.a, t.b, t.c + east_m, t.d, t.e, t.f + north_m)
    return path


def mosaic_pair(folder: Path, *, tiles: int = 2, tile_px: int = 128, square: tuple[int, int, int] | None = None,
                seed: int = 5) -> tuple[Path, Path, tuple]:
    """One earlier tile and the later date cut into tiles × tiles tiles; a roof square planted at (row, col, side)."""
    size = tiles * tile_px
    t = from_origin(*ORIGIN, 1.0, 1.0)
    before = textured(seed, (size, size))
    after = before.copy()
    r, c, s = square or (size // 2 - 20, size // 2 - 20, 40)  # over the corner where four tiles meet
    after[:, r:r + s, c:c + s] = np.asarray([0.50, 0.50, 0.50, 0.45], np.float32)[:, None, None]
    write(folder / "before" / "M_20260901.tif", before, t)
    for i in range(tiles):
        for j in range(tiles):
            sub = after[:, i * tile_px:(i + 1) * tile_px, j * tile_px:(j + 1) * tile_px]
            write(folder / "after" / f"M_20261001_r{i}c{j}.tif", sub, from_origin(ORIGIN[0] + j * tile_px,
                                                                                ORIGIN[1] - i * tile_px, 1.0, 1.0))
    x0, y1 = t * (c, r)
    x1, y0 = t * (c + s, r + s)
    return folder / "before", folder / "after", (x0, y0, x1, y1)
