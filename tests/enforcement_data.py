"""A small jurisdiction for patch tests: 3 x 3 later tiles with planted changes, rule layers, a batch manifest.

Everything is generated with fixed seeds (tests/generate.py's texture), in EPSG:4547, 1 m pixels. With the cva
baseline the batch finds seven patches: five construction on farmland (one, E, across the border of the centre
tile and its eastern neighbour), one pit digging past a permit (D, on the centre tile), and G on approved land
(kept in patches.gpkg, not exported or reviewed); a shed under the 200 m² minimum mapping unit (H) comes in with
``patches.mmu_m2.farmland_construction: 100``.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import yaml
from rasterio.transform import from_origin
from shapely.geometry import box

from tests.generate import ORIGIN, textured, write

ROOF = (0.50, 0.50, 0.50, 0.45)
SOIL = (0.75, 0.55, 0.30, 0.35)
TILE_PX = 96
# name: (row, col, side) in pixels of the whole 288 x 288 later date, and the surface planted there
PLANTS = {"A": (10, 10, 24, ROOF), "B": (10, 110, 24, ROOF), "C": (120, 20, 30, SOIL), "D": (130, 120, 30, SOIL),
          "E": (110, 180, 24, ROOF), "F": (220, 30, 24, ROOF), "G": (220, 200, 30, SOIL), "H": (50, 60, 12, ROOF)}
CRS = "EPSG:4547"


def place(name: str):
    """A planted change's outline in EPSG:4547."""
    r, c, s, _ = PLANTS[name]
    return box(ORIGIN[0] + c, ORIGIN[1] - r - s, ORIGIN[0] + c + s, ORIGIN[1] - r)


def jurisdiction(folder: Path, *, seed: int = 7, tiles: int = 3) -> Path:
    """Tiles, rules and a manifest (cva, ledger) under ``folder``; returns the manifest."""
    size = tiles * TILE_PX
    before = textured(seed, (size, size))
    after = before.copy()
    for r, c, s, v in PLANTS.values():
        after[:, r:r + s, c:c + s] = np.asarray(v, np.float32)[:, None, None]
    write(folder / "before" / "S_20260901.tif", before, from_origin(*ORIGIN, 1.0, 1.0))
    for i in range(tiles):
        for j in range(tiles):
            sub = after[:, i * TILE_PX:(i + 1) * TILE_PX, j * TILE_PX:(j + 1) * TILE_PX]
            write(folder / "after" / f"S_20261001_r{i}c{j}.tif", sub,
                  from_origin(ORIGIN[0] + j * TILE_PX, ORIGIN[1] - i * TILE_PX, 1.0, 1.0))
    x0, y0 = ORIGIN
    rules = folder / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame({"DLBM": ["0101"], "DLMC": ["水田"]}, geometry=[box(x0, y0 - size, x0 + size, y0)],
                     crs=CRS).to_file(rules / "farmland.gpkg")
    r, c = 125, 110  # a valid permit under the north-west corner of pit D: D digs past it
    gpd.GeoDataFrame({"permit_no": ["P1"], "holder": ["甲矿业"], "valid_from": ["2020-01-01"], "valid_to": ["2030-12-31"]},
                     geometry=[box(x0 + c, y0 - r - 20, x0 + c + 20, y0 - r)],
                     crs=CRS).to_file(rules / "mining_permits.gpkg")
    r, c, side, _ = PLANTS["G"]  # G is built on approved land: a patch kept in patches.gpkg, not for review
    gpd.GeoDataFrame({"approval_no": ["赣2026-7"], "approved_on": ["2026-05-01"]},
                     geometry=[box(x0 + c - 5, y0 - r - side - 5, x0 + c + side + 5, y0 - r + 5)],
                     crs=CRS).to_file(rules / "approved_land.gpkg")
    gpd.GeoDataFrame({"XZQDM": ["360821", "360822"], "XZQMC": ["吉安县", "吉水县"]},
                     geometry=[box(x0 - 1000, y0 - 1000, x0 + 144, y0 + 1000),
                               box(x0 + 144, y0 - 1000, x0 + 2000, y0 + 1000)], crs=CRS).to_file(rules / "admin.gpkg")
    return manifest(folder)


def manifest(folder: Path, **over) -> Path:
    m = {"period": "2026-10", "before": "before", "after": "after", "rules": "rules", "out": "out",
         "ledger": "ledger.sqlite", "detector": "cva"} | over
    path = folder / "batch.yaml"
    path.write_text(yaml.safe_dump(m, allow_unicode=True), encoding="utf-8")
    return path


def config(folder: Path, name: str, data: dict) -> str:
    """Write a run configuration beside the manifest; returns its file name (for ``config:``)."""
    (folder / name).write_text(yaml.safe_dump(data), encoding="utf-8")
    return name
