"""What the chips and the locator share: imagery warped onto an image's grid, one stretch, outlines, scale bar."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw, ImageFont
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import Affine, array_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from satcheck.atomic import atomic_path
from satcheck.masks import dn_scale
from satcheck.tiles import TileInfo

NICE_LENGTHS = (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)
# zlib level 1: pixels identical to the default level 6, files ~10 % larger, written ~2.5 times faster; the chips
# are photographs, which no PNG level shrinks much, and three of them are written per patch.
PNG_LEVEL = 1


def read_rgb(tiles: list[TileInfo], crs, transform, width: int, height: int,
             resampling: Resampling = Resampling.bilinear,
             overview_m: float | None = None, handles: TileHandles | None = None) -> tuple[np.ndarray, np.ndarray]:
    """R, G, B of ``tiles`` warped onto a grid, scaled to about 0..1, and the valid mask.

    The first tile with valid pixels at a place gives them. ``overview_m``: a tile's overviews with pixels no
    larger than this are read instead of its full resolution (for a grid much coarser than the tiles).
    ``handles``: tiles held open across calls (else each call opens and closes them).
    """
    rgb = np.zeros((3, height, width), np.float32)
    ok = np.zeros((height, width), bool)
    west, south, east, north = array_bounds(height, width, transform)
    with contextlib.ExitStack() as stack:
        for t in tiles:
            if ok.all():
                break  # the first tile with valid pixels at a place gives them: the rest could add nothing
            left, bottom, right, top = transform_bounds(t.crs, crs, *t.bounds, densify_pts=21)
            if left >= east or right <= west or bottom >= north or top <= south:
                continue  # a warp of a tile that misses the grid reads blocks and gives nothing
            bands = t.band_indexes[:3] if t.count >= 3 else t.band_indexes[:1] * 3
            src, bands = stack.enter_context(_open(t, bands, overview_m, (west, south, east, north), crs, handles))
            data, valid = _read_onto(src, bands, crs, transform, width, height, resampling)
            m = valid & ~ok & np.isfinite(data).all(axis=0)  # NaN of a float tile: nodata
            if not m.any():
                continue
            rgb[:, m] = data[:, m] / dn_scale(t.dtype, data[:, m])
            ok |= m
    return rgb, ok


def _read_onto(src, bands: list[int], crs, transform, width: int, height: int,
               resampling: Resampling) -> tuple[np.ndarray, np.ndarray]:
    """``bands`` of ``src`` on the grid as float32, and where they are valid. A grid in the tile's CRS, both north
    up, and wholly inside the tile (a chip, mostly) is a resampled windowed read, about twice as fast as a warp
    (40 chips of 256² from a 1 m tile, two trainings on the cores: 137 -> 61 ms each); any other grid is warped."""
    st = src.transform
    west, south, east, north = array_bounds(height, width, transform)
    b = src.bounds
    tol = 1e-6 * max(abs(transform.a), abs(st.a))
    if (src.crs == crs and st.b == st.d == transform.b == transform.d == 0 and st.e < 0 < st.a
            and transform.e < 0 < transform.a and west >= b.left - tol and east <= b.right + tol
            and south >= b.bottom - tol and north <= b.top + tol):
        w = from_bounds(west, south, east, north, transform=st)
        data = src.read(bands, window=w, out_shape=(len(bands), height, width), out_dtype="float32",
                        resampling=resampling)
        mask = src.read_masks(bands[0], window=w, out_shape=(height, width),
                              resampling=Resampling.average if resampling == Resampling.average else Resampling.nearest)
        return data, mask > 0
    with WarpedVRT(src, crs=crs, transform=transform, width=width, height=height, resampling=resampling) as vrt:
        return vrt.read(bands).astype(np.float32), vrt.read_masks(1) > 0


class TileHandles:
    """Tiles held open for many reads, one handle per file and thread (a rasterio dataset is not to be shared
    between threads). A read then neither opens the file again nor decodes again the blocks that a read before it
    decoded: closing a dataset empties GDAL's cache of its blocks, and the chips of neighbouring patches, their
    locators and the excavation check read the same blocks."""

    def __init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list = []

    def open(self, path, overview_level: int | None = None):
        held = self._local.__dict__.setdefault("held", {})
        key = (str(path), overview_level)
        if key not in held:
            src = rasterio.open(path, **({} if overview_level is None else {"overview_level": overview_level}))
            held[key] = src
            with self._lock:
                self._all.append(src)
        return held[key]

    def close(self) -> None:
        with self._lock:
            for src in self._all:
                src.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> TileHandles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _dataset(path, handles: TileHandles | None, overview_level: int | None = None):
    """A context giving the open dataset: held open by ``handles`` past it, else closed with it."""
    if handles is not None:
        return contextlib.nullcontext(handles.open(path, overview_level))
    return rasterio.open(path, **({} if overview_level is None else {"overview_level": overview_level}))


@contextlib.contextmanager
def _open(t: TileInfo, bands: list[int], overview_m: float | None, grid_bounds, grid_crs,
          handles: TileHandles | None = None):
    """The tile (and the band numbers to read in it), or a coarser version with pixels of at most ``overview_m``
    over ``grid_bounds``: an average onto a coarse grid then warps a fraction of the tile's pixels. The tile's own
    coarsest overview fine enough is used where it has one; else its pixels are averaged to the grid's size here."""
    with _dataset(t.path, handles) as src:
        if overview_m is None:
            yield src, bands
            return
        factors = src.overviews(t.band_indexes[0])
        level = max((i for i, f in enumerate(factors) if t.pixel_m * f <= overview_m), default=None)
        if level is None:
            if overview_m >= 2 * t.pixel_m:
                bounds = transform_bounds(grid_crs, t.crs, *grid_bounds, densify_pts=21)
                with _averaged(src, bands, overview_m / t.pixel_m, bounds) as coarse:
                    yield coarse, list(range(1, len(bands) + 1))
            else:
                yield src, bands
            return
    with _dataset(t.path, handles, level) as src:
        yield src, bands


@contextlib.contextmanager
def _averaged(src, bands: list[int], factor: float, bounds):
    """``bands`` of ``src`` over ``bounds`` (its CRS) averaged onto pixels ``factor`` times its own, as an in-memory
    float32 dataset with NaN where no valid pixel fell: what an average overview of the tile at the grid's pixel
    size would give. GDAL's decimating read averages as it decodes, so the average warp that follows has pixels of
    the grid's size to read instead of the full resolution (a 4096² 1 m tile's mosaic: 2.7 s -> 2.0 s)."""
    pad = factor  # one coarse pixel around the grid, for the warp's edge
    whole = Window(0, 0, src.width, src.height)
    w = from_bounds(*bounds, transform=src.transform)
    w = Window(w.col_off - pad, w.row_off - pad, w.width + 2 * pad, w.height + 2 * pad).intersection(whole)
    shape = (max(1, round(w.width / factor)), max(1, round(w.height / factor)))  # (cols, rows)
    data = src.read(bands, window=w, out_shape=(len(bands), shape[1], shape[0]), out_dtype="float32",
                    resampling=Resampling.average)
    ok = src.read_masks(bands[0], window=w, out_shape=(shape[1], shape[0]), resampling=Resampling.average) > 0
    data[:, ~ok] = np.nan
    transform = src.window_transform(w) * Affine.scale(w.width / shape[0], w.height / shape[1])
    profile = {"driver": "GTiff", "width": shape[0], "height": shape[1], "count": len(bands), "dtype": "float32",
               "crs": src.crs, "transform": transform, "nodata": float("nan")}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        with mem.open() as coarse:  # read-only, as a warp's source must be
            yield coarse


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


def save_png(img: Image.Image, path: Path) -> Path:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", compress_level=PNG_LEVEL)
    return path


def font(size: int, cjk: bool = False):
    if cjk:
        with contextlib.suppress(Exception):
            from satcheck.report.sheets import find_cjk_font

            return ImageFont.truetype(str(find_cjk_font()), size)
    with contextlib.suppress(OSError):
        return ImageFont.truetype("DejaVuSans.ttf", size)
    return ImageFont.load_default()


def rings(geom):
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        polys = [geom] if geom.geom_type == "Polygon" else list(geom.geoms)
        return [r for p in polys for r in (p.exterior, *p.interiors)]
    if geom.geom_type in ("LineString", "LinearRing"):
        return [geom]
    if hasattr(geom, "geoms"):
        return [r for g in geom.geoms for r in rings(g)]
    return []


def draw_outline(img: Image.Image, geom, transform, colour, width: int = 2) -> None:
    d = ImageDraw.Draw(img)
    inv = ~transform
    for ring in rings(geom):
        pts = [inv * (x, y) for x, y in ring.coords]
        if len(pts) >= 2:
            d.line(pts, fill=colour, width=width, joint="curve")


def _scale_bar_box(w: int, h: int, px: float, label_w: float, scale: int, corner: str) -> tuple[float, float, float, float]:
    bw, bh = px + label_w + 14 * scale, 18 * scale
    x0 = 2 * scale if corner.endswith("l") else w - 2 * scale - bw
    y0 = h - 2 * scale - bh if corner.startswith("b") else 2 * scale
    return x0, y0, x0 + bw, y0 + bh


def draw_scale_bar(img: Image.Image, metres_per_px: float, avoid: tuple[float, float, float, float] | None = None,
                   corners: tuple[str, ...] = ("bl", "br", "tr", "tl")) -> tuple[float, float, float, float]:
    """A scale bar in the first corner whose box stays clear of ``avoid`` (the patch's pixel bounds)."""
    w, h = img.size
    scale = max(1, w // 256)
    target = w * metres_per_px / 4
    length = min(NICE_LENGTHS, key=lambda n: abs(n - target))
    px = length / metres_per_px
    d = ImageDraw.Draw(img)
    f = font(11 * scale)
    label = f"{length} m"
    lw = d.textlength(label, font=f)
    box = None
    for corner in corners:
        box = _scale_bar_box(w, h, px, lw, scale, corner)
        if avoid is None or not (box[0] < avoid[2] and avoid[0] < box[2] and box[1] < avoid[3] and avoid[1] < box[3]):
            break
    x0, y0, x1, y1 = box
    d.rectangle([x0, y0, x1, y1], fill=(0, 0, 0))
    d.rectangle([x0 + 4 * scale, y1 - 7 * scale, x0 + 4 * scale + px, y1 - 3 * scale], fill=(255, 255, 255))
    d.text((x0 + 8 * scale + px, y0 + 2 * scale), label, fill=(255, 255, 255), font=f)
    return box


def pixel_bounds(geom, transform) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = geom.bounds
    inv = ~transform
    (ax, ay), (bx, by) = inv * (minx, maxy), inv * (maxx, miny)
    return min(ax, bx) - 3, min(ay, by) - 3, max(ax, bx) + 3, max(ay, by) + 3
