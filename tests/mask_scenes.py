"""Generated pairs for the cloud and shadow masks (fixed seeds, 1 m pixels, EPSG:4547).

``roof_pair``: the later date has a new complex of white and pale-blue roofs with crisp edges, a concrete pad and
bright bare ground, everything a brightness rule takes for cloud.  ``cloud_pair``: the later date has a
soft-edged cloud and its shadow offset from it.  Both return the paths and where things were planted, so a
failing test can be reproduced by calling the same function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

from tests.generate import CRS_4547, ORIGIN

WHITE = (0.86, 0.87, 0.88, 0.70)
PALE_BLUE = (0.78, 0.84, 0.92, 0.60)
BLUE = (0.45, 0.62, 0.85, 0.50)
CONCRETE = (0.80, 0.80, 0.78, 0.62)
BARE = (0.80, 0.78, 0.74, 0.66)
CLOUD = (0.85, 0.86, 0.88, 0.80)


@dataclass
class Planted:
    before: Path
    after: Path
    roofs: list[tuple[int, int, int, int]] = field(default_factory=list)  # (row, col, height, width)
    bright_ground: list[tuple[int, int, int, int]] = field(default_factory=list)
    cloud: np.ndarray | None = None  # opacity 0..1 of the cloud on the later grid
    shadow: np.ndarray | None = None  # darkening 0..1 of its shadow
    transform: rasterio.Affine = from_origin(*ORIGIN, 1.0, 1.0)


def farmland(seed: int, shape: tuple[int, int]) -> np.ndarray:
    """Fields of crops and soil in R, G, B, NIR reflectance, each with its own texture."""
    rng = np.random.default_rng(seed)
    h, w = shape
    covers = np.asarray([[0.08, 0.14, 0.06, 0.40], [0.10, 0.17, 0.08, 0.45], [0.20, 0.18, 0.14, 0.28],
                         [0.13, 0.16, 0.09, 0.35], [0.25, 0.22, 0.17, 0.30]], np.float32)
    img = np.empty((4, h, w), np.float32)
    for r0 in range(0, h, 40):
        c0 = 0
        while c0 < w:
            cw = int(rng.integers(30, 90))
            img[:, r0:r0 + 40, c0:c0 + cw] = covers[rng.integers(len(covers))][:, None, None]
            c0 += cw
    grain = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.5)
    return np.clip(img * (1 + 0.25 * grain) + rng.normal(0, 0.004, (4, h, w)), 0.01, 1).astype(np.float32)


def write_tile(path: Path, data: np.ndarray, transform, nodata_cols: int = 0) -> Path:
    """8-bit tile, reflectance x 255, nodata 0 (in the first ``nodata_cols`` columns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dn = np.clip(np.round(data * 255), 1, 255).astype("uint8")
    dn[:, :, :nodata_cols] = 0
    with rasterio.open(path, "w", driver="GTiff", width=dn.shape[2], height=dn.shape[1], count=dn.shape[0],
                       dtype="uint8", crs=CRS_4547, transform=transform, nodata=0, tiled=True, blockxsize=128,
                       blockysize=128, photometric="minisblack") as dst:
        dst.write(dn)
    return path


def _paint(img: np.ndarray, box: tuple[int, int, int, int], colour, rng, ridges: int = 0, grain: float = 0.01):
    r, c, h, w = box
    part = np.asarray(colour, np.float32)[:, None, None] * np.ones((4, h, w), np.float32)
    if ridges:  # corrugated sheet roofs: a darker line every few metres
        part[:, :, ::ridges] *= 0.93
    part *= 1 + rng.normal(0, grain, (1, h, w)).astype(np.float32)
    img[:, r:r + h, c:c + w] = part


def roof_pair(folder: Path, seed: int = 17, size: int = 320, nodata_cols: int = 0) -> Planted:
    """A new complex of white and pale-blue roofs (some over 5000 m²), a concrete pad and bright bare ground."""
    rng = np.random.default_rng(seed)
    before = farmland(seed, (size, size))
    after = before.copy()
    roofs = [((40, 40, 50, 110), WHITE), ((40, 170, 40, 60), PALE_BLUE), ((110, 40, 60, 90), WHITE),
             ((110, 150, 35, 45), BLUE), ((190, 40, 30, 30), PALE_BLUE)]
    pad = (190, 90, 60, 100)  # 6000 m², flat
    bare = (255, 150, 60, 150)  # 9000 m² of cleared, bright, grainy ground
    # Building shadows (3 m to the south-east) first, then the roofs over them.
    for (r, c, h, w), _ in roofs:
        after[:, r + 3:r + h + 3, c + 3:c + w + 3] *= 0.5
    for box, colour in roofs:
        _paint(after, box, colour, rng, ridges=4)
    _paint(after, pad, CONCRETE, rng, grain=0.01)
    _paint(after, bare, BARE, rng, grain=0.0)
    r, c, h, w = bare
    clods = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 1.0)
    after[:, r:r + h, c:c + w] *= 1 + 0.25 * clods
    gain = np.asarray([1.05, 1.03, 1.0, 0.97], np.float32)[:, None, None]  # another sun and sensor gain
    after = np.clip(after * gain + np.random.default_rng(seed + 1).normal(0, 0.004, after.shape), 0, 1)
    p = Planted(folder / "before" / "M_20260901.tif", folder / "after" / "M_20261001.tif",
                roofs=[b for b, _ in roofs], bright_ground=[pad, bare])
    write_tile(p.before, before, p.transform)
    write_tile(p.after, after.astype(np.float32), p.transform, nodata_cols)
    return p


def soft_cloud(seed: int, shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """Opacity of a puffy cloud: opaque at its core, fading over about a radius to nothing."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(yy - centre[0], (xx - centre[1]) * 0.85) / radius
    puff = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), radius / 4)
    puff /= max(float(np.abs(puff).max()), 1e-6)
    return ndimage.gaussian_filter(np.clip(1.6 - d + 0.3 * puff, 0, 1), 2).astype(np.float32)


def cloud_pair(folder: Path, seed: int = 23, size: int = 384, offset: tuple[int, int] = (110, 120)) -> Planted:
    """The later date under a soft cloud whose shadow lies ``offset`` (rows, cols) pixels away."""
    before = farmland(seed, (size, size))
    after = before.copy()
    alpha = soft_cloud(seed, (size, size), (size * 0.35, size * 0.35), size * 0.17)
    shadow = np.zeros_like(alpha)
    dy, dx = offset
    shadow[dy:, dx:] = alpha[:size - dy, :size - dx]
    after *= 1 - 0.6 * shadow[None]
    after = after * (1 - alpha[None]) + np.asarray(CLOUD, np.float32)[:, None, None] * alpha[None]
    after = np.clip(after + np.random.default_rng(seed + 1).normal(0, 0.004, after.shape), 0, 1)
    p = Planted(folder / "before" / "C_20260901.tif", folder / "after" / "C_20261001.tif", cloud=alpha, shadow=shadow)
    write_tile(p.before, before, p.transform)
    write_tile(p.after, after.astype(np.float32), p.transform)
    return p


def reflectance(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A tile's bands as reflectance and its data mask, as the masks see them on a full-resolution read."""
    with rasterio.open(path) as src:
        return src.read().astype(np.float32) / 255, src.read_masks(1) > 0
