"""Patches on real farmland where nothing was built or dug: consecutive years of the NAIP series.

    .venv/bin/python benchmarks/naip_farmland.py [--model PATH] [--no-dig-check] [--set KEY=VALUE ...] [--json]

Runs each pair of consecutive dates of ../shared/data/naip_series (North Dakota cropland at 5 m: harvest,
ploughing, fallow fields, wetlands filling and drying, real co-registration offsets) with the whole frame as dry
farmland (0103) and no mining permit, so a farmland-construction patch is a field taken for a building and a mining
patch a field or pond taken for a pit. Prints the patches of each pair by class, and per km² over all pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import rasterio
from shapely.geometry import box

from satcheck.batch.pipeline import detect_changes
from satcheck.config import RunConfig, parse_settings

SERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "naip_series"


def write_rules(folder: Path, frame, crs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame({"DLBM": ["0103"], "DLMC": ["旱地"]}, geometry=[frame], crs=crs).to_file(folder / "farmland.gpkg")
    gpd.GeoDataFrame({"XZQDM": ["360821"], "XZQMC": ["NAIP"]}, geometry=[frame], crs=crs).to_file(folder / "admin.gpkg")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="weights file (default: the shipped weights)")
    ap.add_argument("--no-dig-check", action="store_true", help="keep every change typed excavation")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a run-config setting, e.g. cleanup.building_max_old_outline=0.6 (repeatable)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    files = sorted(SERIES.glob("*.tif"))
    if len(files) < 2:
        sys.exit(f"{SERIES}: the NAIP series is not there")
    cfg = RunConfig().with_overrides(**{
        "detect.model.weights": a.model, "output.probability_cog": False,
        "cleanup.excavation_min_contrast": 0 if a.no_dig_check else None,
        "cleanup.excavation_max_old_outline": 1 if a.no_dig_check else None, **parse_settings(a.set)})
    with rasterio.open(files[0]) as src:
        b, crs = src.bounds, src.crs
    frame = box(b.left - 100, b.bottom - 100, b.right + 100, b.top + 100)
    pairs, totals, km2 = [], {}, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        rules = write_rules(Path(tmp) / "rules", frame, crs)
        for before, after in zip(files, files[1:]):
            res = detect_changes(before, after, Path(tmp) / after.stem, cfg, rules=rules)
            km2 += res.pixels * res.pairs[0].after.pixel_area_m2 / 1e6
            patches = res.patches[res.patches["class"].isin(cfg.review.classes)]
            by_class = patches["class"].value_counts().to_dict()
            pairs.append({"before": before.stem[-8:], "after": after.stem[-8:], "patches": by_class})
            for k, v in by_class.items():
                totals[k] = totals.get(k, 0) + v
    out = {"pairs": pairs, "area_km2": round(km2, 1), "patches": totals,
           "per_km2": {k: round(v / km2, 3) for k, v in totals.items()}}
    if a.json:
        print(json.dumps(out))
        return
    for p in pairs:
        print(f"{p['before']} -> {p['after']}: {p['patches'] or 'none'}")
    print(f"{out['area_km2']} km² in all: {totals or 'no patch'}; per km² {out['per_km2']}")


if __name__ == "__main__":
    main()
