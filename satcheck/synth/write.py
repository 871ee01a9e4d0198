"""Write a generated scene as GeoTIFF tiles, ground truth and rule layers."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window
from shapely import affinity
from shapely.geometry.base import BaseGeometry

from satcheck.atomic import atomic_path
from satcheck.synth.layout import CONSTRUCTION
from satcheck.synth.scene import ScenePair, make_pair, raster, to_dn
from satcheck.windows import window_grid

BAND_NAMES = ("red", "green", "blue", "nir")
# 吉安县, Jiangxi: inside the 3-degree Gauss-Krüger zone with central meridian 114°E (EPSG:4547).
DEFAULT_CRS = "EPSG:4547"
DEFAULT_LONLAT = (114.93, 27.06)
ADMIN_UNITS = (("360821", "吉安县"), ("360822", "吉水县"))
DLMC = {"0101": "水田", "0102": "水浇地", "0103": "旱地"}


@dataclass(frozen=True)
class SceneSpec:
    seed: int = 20261018
    size: int = 1536
    gsd: float = 1.0
    crs: str = DEFAULT_CRS
    before_date: dt.date = dt.date(2026, 9, 12)
    after_date: dt.date = dt.date(2026, 10, 18)
    after_tiles: int = 2  # the later date comes as after_tiles × after_tiles tiles
    before_strips: int = 2  # the earlier date comes as this many column strips (another tiling than the later date)
    dtype: str = "uint8"
    changes: bool = True
    nuisance: bool = True
    cloud: bool = True
    before_crs: str | None = None  # reproject the earlier date (tests of alignment)
    before_gsd: float | None = None
    name: str = "JX"


def scene_transform(spec: SceneSpec) -> Affine:
    x, y = Transformer.from_crs("EPSG:4490", spec.crs, always_xy=True).transform(*DEFAULT_LONLAT)
    return from_origin(round(x), round(y), spec.gsd, spec.gsd)


def _write_tif(path: Path, data: np.ndarray, crs: CRS, transform: Affine, date: dt.date | None,
               nodata: float | None = 0, names: tuple[str, ...] = BAND_NAMES) -> None:
    profile = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
        "dtype": str(data.dtype), "crs": crs, "transform": transform, "nodata": nodata,
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
        "predictor": 2, "zlevel": 9, "interleave": "pixel", "photometric": "minisblack",
    }
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, n in enumerate(names[: data.shape[0]]):
                dst.set_band_description(i + 1, n)
            if date is not None:
                dst.update_tags(TIFFTAG_DATETIME=date.strftime("%Y:%m:%d 00:00:00"))


def _to_map(geom: BaseGeometry, t: Affine) -> BaseGeometry:
    return affinity.affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])


def _gdf(rows: list[dict], crs: str) -> gpd.GeoDataFrame:
    if not rows:
        return gpd.GeoDataFrame({"geometry": []}, geometry="geometry", crs=crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


def _write_layer(path: Path, gdf: gpd.GeoDataFrame, layer: str) -> None:
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio")


def write_scene(out: str | Path, spec: SceneSpec = SceneSpec()) -> dict[str, object]:
    """Generate ``spec`` and write it under ``out``; returns a summary."""
    out = Path(out)
    pair = make_pair(spec.seed, (spec.size, spec.size), spec.gsd, changes=spec.changes,
                     nuisance=spec.nuisance, cloud=spec.cloud)
    t = scene_transform(spec)
    crs = CRS.from_user_input(spec.crs)
    tag = f"{spec.name}"
    before = to_dn(pair.before, pair.before_valid, spec.dtype)
    after = to_dn(pair.after, pair.after_valid, spec.dtype)

    before_dir, after_dir = out / "before", out / "after"
    b_name = f"{tag}_{spec.before_date:%Y%m%d}.tif"
    if spec.before_crs or spec.before_gsd:
        _write_reprojected(before_dir / b_name, before, crs, t, spec)
    elif spec.before_strips > 1:
        step_c = -(-spec.size // spec.before_strips)
        for c0 in range(0, spec.size, step_c):
            win = Window(c0, 0, min(step_c, spec.size - c0), spec.size)
            name = f"{tag}_{spec.before_date:%Y%m%d}_c{c0 // step_c}.tif"
            _write_tif(before_dir / name, before[:, :, c0:c0 + int(win.width)], crs, rasterio.windows.transform(win, t),
                       spec.before_date)
    else:
        _write_tif(before_dir / b_name, before, crs, t, spec.before_date)
    step = -(-spec.size // spec.after_tiles)
    for win in window_grid(spec.size, spec.size, step):
        r, c = int(win.row_off) // step, int(win.col_off) // step
        suffix = f"_r{r}c{c}" if spec.after_tiles > 1 else ""
        name = f"{tag}_{spec.after_date:%Y%m%d}{suffix}.tif"
        sl = (slice(None), slice(int(win.row_off), int(win.row_off + win.height)),
              slice(int(win.col_off), int(win.col_off + win.width)))
        _write_tif(after_dir / name, after[sl], crs, rasterio.windows.transform(win, t), spec.after_date)

    truth_dir = out / "truth"
    _write_tif(truth_dir / "change_mask.tif", pair.truth[None], crs, t, None, nodata=None, names=("change_class",))
    L = pair.layout
    px_area = spec.gsd**2
    changes = []
    for c in L.changes:
        g = _to_map(c.geom, t)
        # The truth raster is emptied under cloud and its shadow: what is left of the object is what can be seen.
        own = raster([c.geom], pair.truth.shape).astype(bool)
        clear = float((pair.truth[own] > 0).mean()) if own.any() else 1.0
        changes.append({"label": c.label.split(":")[0], "class": "construction" if c.kind == CONSTRUCTION else "excavation",
                        "area_m2": round(g.area, 1), "clear_share": round(clear, 3), "geometry": g})
    _write_layer(truth_dir / "changes.gpkg", _gdf(changes, spec.crs), "changes")

    rules = out / "rules"
    farmland = [{"DLBM": p.dlbm, "DLMC": DLMC[p.dlbm], "geometry": _to_map(p.geom, t)} for p in L.parcels]
    _write_layer(rules / "farmland.gpkg", _gdf(farmland, spec.crs), "farmland")
    basic = [{"JBNTBH": f"JB{i:05d}", "geometry": _to_map(g, t)} for i, g in enumerate(L.basic_farmland)]
    _write_layer(rules / "basic_farmland.gpkg", _gdf(basic, spec.crs), "basic_farmland")
    permits = [{k: v for k, v in p.items() if k != "geom"} | {"geometry": _to_map(p["geom"], t)} for p in L.permits]
    _write_layer(rules / "mining_permits.gpkg", _gdf(permits, spec.crs), "mining_permits")
    approved = [{k: v for k, v in p.items() if k != "geom"} | {"geometry": _to_map(p["geom"], t)} for p in L.approved]
    _write_layer(rules / "approved_land.gpkg", _gdf(approved, spec.crs), "approved_land")
    from shapely.geometry import box as _box
    frame = _box(0, 0, spec.size, spec.size)
    west = L.admin_split.intersection(frame)
    east = frame.difference(L.admin_split)
    admin = [{"XZQDM": code, "XZQMC": name, "geometry": _to_map(g, t)}
             for (code, name), g in zip(ADMIN_UNITS, (west, east))]
    _write_layer(rules / "admin.gpkg", _gdf(admin, spec.crs), "admin")

    summary = {
        "seed": spec.seed, "size": spec.size, "gsd": spec.gsd, "crs": spec.crs,
        "before": before_dir.name, "after": after_dir.name,
        "planted_changes": len(changes), "parcels": len(farmland), "pixel_area_m2": px_area,
    }
    # Folders relative to the scene in its file (the scene can be moved), full paths for whoever called.
    (out / "scene.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary | {"before": str(before_dir), "after": str(after_dir)}


def _write_reprojected(path: Path, data: np.ndarray, crs: CRS, t: Affine, spec: SceneSpec) -> None:
    dst_crs = CRS.from_user_input(spec.before_crs or spec.crs)
    h, w = data.shape[1:]
    left, top = t.c, t.f
    right, bottom = t * (w, h)
    kwargs = {}
    if spec.before_gsd and dst_crs == crs:
        kwargs["resolution"] = spec.before_gsd
    dst_t, dw, dh = calculate_default_transform(crs, dst_crs, w, h, left, bottom, right, top, **kwargs)
    if spec.before_gsd and dst_crs != crs and dst_crs.is_projected:
        dst_t, dw, dh = calculate_default_transform(crs, dst_crs, w, h, left, bottom, right, top,
                                                    resolution=spec.before_gsd)
    out = np.zeros((data.shape[0], dh, dw), data.dtype)
    reproject(data, out, src_transform=t, src_crs=crs, dst_transform=dst_t, dst_crs=dst_crs,
              src_nodata=0, dst_nodata=0, resampling=Resampling.bilinear)
    _write_tif(path, out, dst_crs, dst_t, spec.before_date)


def write_large_pair(out: str | Path, size: int, seed: int = 1, block: int = 2048, gsd: float = 1.0,
                     crs: str = DEFAULT_CRS, offset_px: tuple[int, int] = (0, 0), name: str | None = None,
                     split: bool = False, unique_blocks: int | None = None) -> tuple[Path, Path]:
    """A large pair for benchmarks, drawn block by block so memory stays bounded.

    ``offset_px`` (row, col) places the pair in a mosaic of such pairs; ``split`` writes the two dates
    into before/ and after/ subfolders.
    """
    out = Path(out)
    spec = SceneSpec(seed=seed, size=size, gsd=gsd, crs=crs)
    t = scene_transform(spec) * Affine.translation(offset_px[1], offset_px[0])
    stem = name or f"bench_{size}"
    b_dir, a_dir = (out / "before", out / "after") if split else (out, out)
    paths = (b_dir / f"{stem}_{spec.before_date:%Y%m%d}.tif", a_dir / f"{stem}_{spec.after_date:%Y%m%d}.tif")
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint8",
               "crs": CRS.from_user_input(crs), "transform": t, "nodata": 0, "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "predictor": 2, "BIGTIFF": "IF_SAFER",
               "photometric": "minisblack"}
    with atomic_path(paths[0]) as tb, atomic_path(paths[1]) as ta:
        with rasterio.open(tb, "w", **profile) as db, rasterio.open(ta, "w", **profile) as da:
            cache: dict[tuple, ScenePair] = {}
            for i, win in enumerate(window_grid(size, size, block)):
                # unique_blocks repeats a few drawn blocks: same memory and work, a fraction of the drawing time.
                k = i % unique_blocks if unique_blocks else i
                shape = (int(win.height), int(win.width))
                if (k, shape) not in cache:
                    if unique_blocks is None:
                        cache.clear()
                    cache[(k, shape)] = make_pair(seed * 1000 + k, shape, gsd, rich=False, collar=False,
                                                  cloud=(k % 3 == 0))
                p = cache[(k, shape)]
                db.write(to_dn(p.before, p.before_valid), window=win)
                da.write(to_dn(p.after, p.after_valid), window=win)
            for d, date in ((db, spec.before_date), (da, spec.after_date)):
                d.update_tags(TIFFTAG_DATETIME=date.strftime("%Y:%m:%d 00:00:00"))
                for b, n in enumerate(BAND_NAMES):
                    d.set_band_description(b + 1, n)
    return paths

