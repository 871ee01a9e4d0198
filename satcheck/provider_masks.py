"""Providers' cloud masks: a raster or polygons delivered with a tile, put on a pair's decimated grid.

Where a tile has one, it says where the cloud is instead of the image test
(:func:`satcheck.masks.cloud_and_shadow`).  Files are found by a pattern
beside each tile (``masks.cloud_mask``); a tile without one is not an
error, a file that cannot be read is.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import reproject, transform_geom
from shapely.geometry import box, mapping

from satcheck.errors import TileReadError

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json")


def provider_files(tile: Path, pattern: str) -> list[Path]:
    """The provider cloud mask files of ``tile``: ``pattern`` with ``{stem}`` replaced by the tile's name without
    its suffix, relative to the tile's folder (or absolute); ``*``, ``?`` and ``[...]`` match as in a shell glob."""
    name = pattern.replace("{stem}", tile.stem)
    path = tile.parent / name
    if glob.has_magic(name):
        found = sorted(Path(p) for p in glob.glob(str(path)))
    else:
        found = [path] if path.exists() else []
    return [p for p in found if p.is_file() and p.resolve() != tile.resolve()]


def provider_cloud(tiles: Sequence, pattern: str | None, crs, transform, shape: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """The provider's cloud of one date on a decimated grid (``crs``, ``transform``, ``shape``): (cloud, covered),
    covered being the footprints of the tiles that have a mask file.  None where no tile has one."""
    if not pattern:
        return None
    cloud = np.zeros(shape, bool)
    covered = np.zeros(shape, bool)
    for tile in tiles:
        files = provider_files(Path(tile.path), pattern)
        if not files:
            continue  # no provider mask for this tile: the image test decides there
        covered |= _footprint(tile, crs, transform, shape)
        for f in files:
            cloud |= _read_mask(f, tile, crs, transform, shape)
    return (cloud & covered, covered) if covered.any() else None


def _footprint(tile, crs, transform, shape) -> np.ndarray:
    left, bottom, right, top = tile.bounds
    outline = box(left, bottom, right, top).segmentize(max(right - left, top - bottom) / 20)  # curves in crs
    geom = transform_geom(tile.crs, crs, mapping(outline))
    return rasterize([(geom, 1)], out_shape=shape, transform=transform, fill=0, dtype="uint8").astype(bool)


def _read_mask(path: Path, tile, crs, transform, shape) -> np.ndarray:
    try:
        if path.suffix.lower() in VECTOR_SUFFIXES:
            return _vector_mask(path, tile, crs, transform, shape)
        return _raster_mask(path, tile, crs, transform, shape)
    except TileReadError:
        raise
    except Exception as exc:  # GDAL, OGR and PROJ each raise their own types for a bad file
        # GDAL names the file in its message; the line names it once, first.
        reason = (str(exc).splitlines() or [""])[0].replace(f"'{path}'", "").replace(str(path), "").strip(" :.")
        raise TileReadError(
            f"{path}: provider cloud mask of {Path(tile.path).name} cannot be read ({reason or type(exc).__name__}); "
            "replace it with a raster (nonzero = cloud) or polygons (.gpkg, .shp, .geojson), or remove it (or "
            "masks.cloud_mask)") from None


def _raster_mask(path: Path, tile, crs, transform, shape) -> np.ndarray:
    with rasterio.open(path) as src:
        src_crs, src_t = src.crs, src.transform
        if src_crs is None:
            if (src.width, src.height) != (tile.width, tile.height):
                raise TileReadError(
                    f"{path}: provider cloud mask has no CRS and not the size of {Path(tile.path).name}; "
                    "georeference it or write it on the tile's grid")
            src_crs, src_t = tile.crs, tile.transform  # a mask on the tile's own pixels, saved without georeference
        dst = np.zeros(shape, np.float32)
        # max: an output pixel is cloud if any provider pixel under it is; nodata pixels are not cloud.
        reproject(rasterio.band(src, 1), dst, src_transform=src_t, src_crs=src_crs, src_nodata=src.nodata,
                  dst_transform=transform, dst_crs=crs, dst_nodata=0, resampling=Resampling.max)
    return dst != 0


def _vector_mask(path: Path, tile, crs, transform, shape) -> np.ndarray:
    import geopandas as gpd  # slow to import; only a run with vector masks needs it

    gdf = gpd.read_file(path, engine="pyogrio")
    if gdf.crs is None:
        gdf = gdf.set_crs(tile.crs)  # polygons drawn on the tile and saved without a CRS
    geoms = [g for g in gdf.to_crs(crs).geometry if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(shape, bool)
    return rasterize([(g, 1) for g in geoms], out_shape=shape, transform=transform, fill=0, all_touched=True,
                     dtype="uint8").astype(bool)
