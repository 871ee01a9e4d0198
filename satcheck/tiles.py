"""Tiles: one GeoTIFF of one date, and how to find, open and describe them."""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio.coords import BoundingBox
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NodataShadowWarning, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from satcheck.errors import TileGeoreferenceError, TileReadError

TILE_SUFFIXES = (".tif", ".tiff", ".vrt")
_DATE_RE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")

# GDAL's block cache defaults to 5 % of RAM; a bounded one keeps a run's memory flat whatever the tile size.
os.environ.setdefault("GDAL_CACHEMAX", "256")
# An alpha band beside a nodata value is common in delivered tiles; nodata wins, as intended.
warnings.filterwarnings("ignore", category=NodataShadowWarning)


@dataclass(frozen=True)
class TileInfo:
    """What satcheck needs to know about a tile, without its pixels.

    ``count`` and ``band_names`` are those of the image bands, in red, green, blue (, NIR) order; an alpha band
    (RGBA orthophotos) is not one of them: GDAL reads it as the tile's data mask. ``indexes`` are the image
    bands' 1-based numbers in the file, in that order (GF-1/2/6 multispectral files store blue first).
    """

    path: Path
    crs: CRS
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    date: dt.date | None
    band_names: tuple[str, ...]
    indexes: tuple[int, ...] = ()
    band_order_from: str = "file order"  # or "colour interpretation or band names", or "bands.before/after"

    @property
    def band_indexes(self) -> list[int]:
        return list(self.indexes or range(1, self.count + 1))

    def first_bands(self, n: int) -> "TileInfo":
        """This tile read as its first ``n`` image bands (red, green, blue of an R, G, B, NIR tile)."""
        if n >= self.count:
            return self
        return replace(self, count=n, indexes=tuple(self.band_indexes[:n]), band_names=self.band_names[:n])

    @property
    def bounds(self) -> BoundingBox:
        t = self.transform
        right, bottom = t * (self.width, self.height)
        return BoundingBox(t.c, min(t.f, bottom), right, max(t.f, bottom))

    @property
    def res(self) -> tuple[float, float]:
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def pixel_m(self) -> float:
        """Pixel side in metres (for a geographic CRS, of a square pixel of the same ground area)."""
        if self.crs.is_projected:
            return self.res[0] * metres_per_unit(self.crs)
        return float(np.sqrt(self.pixel_area_m2))

    @property
    def pixel_area_m2(self) -> float:
        if self.crs.is_projected:
            return self.res[0] * self.res[1] * metres_per_unit(self.crs) ** 2
        # A degree of longitude shrinks with latitude: measured at the tile's centre.
        lat = np.radians((self.bounds.bottom + self.bounds.top) / 2)
        return self.res[0] * self.res[1] * metres_per_unit(self.crs) ** 2 * float(np.cos(lat))

    @property
    def vector_crs(self) -> CRS:
        """The CRS change polygons and patches are made in: areas and distances in metres.

        The tile's own if projected in metres. For a tile in degrees (or feet), the projected zone at its
        centre that an enforcement office would use: the CGCS2000 3-degree Gauss-Krüger zone (EPSG:4534-4554) for
        CGCS2000 tiles over China, else the WGS 84 UTM zone.
        """
        if self.crs.is_projected and metres_per_unit(self.crs) == 1.0:
            return self.crs
        from pyproj import CRS as ProjCRS
        from rasterio.warp import transform

        b = self.bounds
        lon, lat = (b.left + b.right) / 2, (b.bottom + b.top) / 2
        if self.crs.is_projected:
            (lon,), (lat,) = transform(self.crs, "EPSG:4326", [lon], [lat])
        datum = ProjCRS.from_wkt(self.crs.to_wkt()).geodetic_crs
        cgcs2000 = datum is not None and datum.to_epsg() == 4490
        if cgcs2000 and 73.5 <= lon < 136.5:
            return gauss_kruger_3(lon)
        zone = min(60, int((lon + 180) // 6) + 1)
        return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def gauss_kruger_3(lon: float) -> CRS:
    """The CGCS2000 3-degree Gauss-Krüger zone (central meridian in the CRS, no zone prefix) at ``lon``."""
    return CRS.from_epsg(4534 + (round(lon / 3) * 3 - 75) // 3)


def metres_per_unit(crs: CRS) -> float:
    """Metres per CRS unit (degrees taken at about 111 km, for geographic CRSs)."""
    return crs.linear_units_factor[1] if crs.is_projected else 111_320.0


def date_from_name(name: str) -> dt.date | None:
    """The acquisition date written in a file name (YYYYMMDD or YYYY-MM-DD)."""
    for match in _DATE_RE.finditer(name):
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            continue
    return None


def date_from_tags(tags: dict[str, str]) -> dt.date | None:
    """The acquisition date in a tile's TIFF tags (TIFFTAG_DATETIME, ACQUISITION_DATE), if any."""
    value = tags.get("TIFFTAG_DATETIME") or tags.get("ACQUISITION_DATE")
    if not value:
        return None
    match = re.match(r"(\d{4})[:-](\d{2})[:-](\d{2})", value.strip())
    if not match:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def open_tile(path: str | os.PathLike, order: Sequence[int] | None = None) -> TileInfo:
    """Describe a tile, raising a one-line error for anything unusable.

    ``order``: the file's band numbers for red, green, blue (and NIR); None reads it from the file
    (:func:`image_bands`).
    """
    p = Path(path)
    if not p.exists():
        raise TileReadError(f"{p}: file not found; check the path")
    if p.is_dir():
        raise TileReadError(f"{p}: is a folder; pass a GeoTIFF file")
    try:
        with rasterio.open(p) as src:
            image, known = _band_order(src, order, p)
            info = TileInfo(
                path=p,
                crs=src.crs,
                transform=src.transform,
                width=src.width,
                height=src.height,
                count=len(image),
                dtype=src.dtypes[0],
                nodata=src.nodata,
                date=date_from_name(p.name) or date_from_tags(src.tags()),
                band_names=tuple(src.descriptions[i - 1] or f"band{i}" for i in image),
                indexes=tuple(image),
                band_order_from=known,
            )
            _read_last_block(src, p)
    except RasterioIOError:
        raise TileReadError(f"{p}: not a readable raster; pass a GeoTIFF (is the file complete?)") from None
    if info.crs is None:
        raise TileGeoreferenceError(f"{p}: has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:4547 {p.name})")
    if info.transform.is_identity or info.transform.b != 0 or info.transform.d != 0:
        raise TileGeoreferenceError(f"{p}: has no north-up geotransform; georeference it first")
    return info


def _read_last_block(src, path: Path) -> None:
    """Read the tile's last block: GDAL writes blocks in order, so a file cut short (a copy that stopped, a full
    disk) opens fine and fails only when its missing end is read, deep in a run; this finds it at open."""
    bh, bw = src.block_shapes[0]
    row, col = (src.height - 1) // bh * bh, (src.width - 1) // bw * bw
    try:
        src.read(1, window=Window(col, row, min(bw, src.width - col), min(bh, src.height - row)))
    except RasterioIOError as exc:
        why = str(exc.__cause__ or exc).strip().splitlines()[0][:160]
        raise TileReadError(f"{path}: cannot be read to its end ({why}): it is cut short or damaged, or a file it "
                            "refers to is missing; copy or download it again") from None


_ROLE_NAMES = {
    "red": {"red", "r", "红", "红波段"}, "green": {"green", "g", "绿", "绿波段"}, "blue": {"blue", "b", "蓝", "蓝波段"},
    "nir": {"nir", "near infrared", "near-infrared", "nir1", "近红外", "近红外波段"},
}
_ROLE_COLORS = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}


def image_bands(src, order: Sequence[int] | None = None, path: Path | None = None) -> list[int]:
    """1-based numbers of an open dataset's image bands in red, green, blue (, NIR, others) order.

    ``order`` given: those bands (checked against the file). Else the bands the file calls red, green and blue
    (colour interpretation, or band descriptions such as "red" or "NIR"), then NIR, then the rest; a file that
    names none is taken in its own order. An alpha band is never an image band.
    """
    return _band_order(src, order, path)[0]


def _band_order(src, order: Sequence[int] | None, path: Path | None) -> tuple[list[int], str]:
    """:func:`image_bands`, and where the order came from (:attr:`TileInfo.band_order_from`)."""
    if order:
        bad = [b for b in order if not 1 <= b <= src.count]
        if bad or len(set(order)) != len(order):
            raise TileReadError(
                f"{path or src.name}: band order {list(order)} does not fit its {src.count} bands; set bands.before / "
                "bands.after to each band number once, red, green, blue (and NIR), e.g. [3, 2, 1, 4] for "
                "blue-green-red-NIR files")
        return list(order), "bands.before/after"
    image = [i for i, ci in enumerate(src.colorinterp, 1) if ci != ColorInterp.alpha or not _looks_like_alpha(src, i)]
    image = image or [1]
    roles = _colour_roles(src, image)
    if not roles:
        return image, "file order"
    first = [roles[r] for r in ("red", "green", "blue", "nir") if r in roles]
    return first + [i for i in image if i not in first], "colour interpretation or band names"


def _colour_roles(src, image: list[int]) -> dict[str, int]:
    """Band number of red, green, blue (and NIR) among ``image`` from the file's own words; {} unless it names
    all of red, green and blue."""
    roles: dict[str, int] = {}
    for i in image:
        name = (src.descriptions[i - 1] or "").strip().lower()
        role = _ROLE_COLORS.get(src.colorinterp[i - 1]) or next((r for r, n in _ROLE_NAMES.items() if name in n), None)
        if role and role not in roles:
            roles[role] = i
    return roles if all(r in roles for r in ("red", "green", "blue")) else {}


# Chinese satellites whose multispectral products store blue, green, red, NIR (GF-1/2/6/7, ZY-3, SuperView,
# Beijing-2/3, Jilin-1), by the usual start of their file names.
_BLUE_FIRST_NAMES = re.compile(r"^(GF[12567]|ZY3|ZY30[23]|SV[12]|BJ[23]|JL1)", re.IGNORECASE)


def band_order_warning(info: TileInfo) -> str | None:
    """A line for the user when a tile is read in file order but its name says blue comes first."""
    if info.band_order_from != "file order" or info.count < 3 or not _BLUE_FIRST_NAMES.match(info.path.name):
        return None
    return (f"{info.path.name}: named like a GF/ZY product but the file does not say which band is which, so it "
            "is read as red, green, blue, NIR; such products usually store blue first: then set bands.before / "
            "bands.after to [3, 2, 1, 4]")


def _looks_like_alpha(src, band: int) -> bool:
    """Whether a band flagged alpha holds only "transparent" and "opaque" in the middle of the tile.

    GDAL writes a 4-band 8-bit GeoTIFF as RGBA unless told otherwise, so many R, G, B, NIR files call their NIR
    band alpha; a real alpha band is 0 or the type's maximum, a NIR band is not.
    """
    side = min(256, src.width, src.height)
    win = Window((src.width - side) // 2, (src.height - side) // 2, side, side)
    values = np.unique(src.read(band, window=win))
    top = np.iinfo(src.dtypes[band - 1]).max if np.dtype(src.dtypes[band - 1]).kind in "ui" else 1
    return bool(np.isin(values, (0, top)).all())


def find_tiles(path: str | os.PathLike) -> list[Path]:
    """The tiles of one date: a single file, or every GeoTIFF in a folder (sorted)."""
    p = Path(path)
    if not p.exists():
        raise TileReadError(f"{p}: not found; pass a GeoTIFF or a folder of GeoTIFFs")
    if p.is_file():
        return [p]
    found = sorted(f for f in p.iterdir() if f.suffix.lower() in TILE_SUFFIXES and not f.name.startswith("."))
    if not found:
        raise TileReadError(f"{p}: folder holds no .tif tiles; point to the folder with the imagery")
    return found


def inspect_tile(path: str | os.PathLike, sample_px: int = 1024) -> dict[str, object]:
    """A summary of a tile; the nodata share comes from a decimated read."""
    info = open_tile(path)
    scale = max(1.0, max(info.width, info.height) / sample_px)
    shape = (max(1, round(info.height / scale)), max(1, round(info.width / scale)))
    with rasterio.open(info.path) as src:
        mask = src.read_masks(1, out_shape=shape, resampling=Resampling.nearest) > 0
        if np.dtype(info.dtype).kind == "f":  # NaN is nodata, tagged or not
            data = src.read(info.band_indexes, out_shape=(info.count, *shape), resampling=Resampling.nearest)
            mask &= np.isfinite(data).all(axis=0)
        epsg = src.crs.to_epsg()
    b = info.bounds
    return {
        "path": str(info.path),
        "crs": f"EPSG:{epsg}" if epsg else info.crs.to_wkt(),
        "bounds": list(b),
        "resolution": list(info.res),
        "width": info.width,
        "height": info.height,
        "bands": info.count,
        "band_names": list(info.band_names),
        "band_order": info.band_indexes,  # the file's band numbers read as red, green, blue (, NIR, ...)
        "band_order_from": info.band_order_from,
        "dtype": info.dtype,
        "nodata": info.nodata,
        "nodata_share": round(float(np.mean(~mask)), 4),
        "date": info.date.isoformat() if info.date else None,
        "warnings": [w for w in (band_order_warning(info),) if w],
    }
