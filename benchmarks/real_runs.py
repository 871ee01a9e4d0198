"""Real labelled building change run end to end, to see what a run setting costs there (not only on farmland).

    .venv/bin/python benchmarks/real_runs.py [--model PATH] --set KEY=VALUE [--set ...] [--json]
    .venv/bin/python benchmarks/real_runs.py --set cleanup.building_max_old_outline=0.6

``real_eval.py`` scores the model's pixels; this runs each held-out pair through the whole chain a run uses (masks,
cleanup, polygons; no rule layers), once with the defaults and once with the --set settings, and compares the
change polygons with the labelled buildings: objects found (IoU >= 0.3, labelled objects >= 50 m²), polygons that
touch no label (false), and the polygons the settings remove that touch a labelled building (real change lost).
``benchmarks/naip_farmland.py --set ...`` gives the other side: what the settings remove on farmland.

Pairs: the 8 LEVIR-CD validation scenes (0.5 m) and DSIFN 3_4 and 4_4 (taken as 2 m), written as GeoTIFFs on an
EPSG:4547 grid since the PNGs carry no georeference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import shapes
from rasterio.transform import from_origin
from real_eval import LEVIR_VAL  # beside this script: the validation scenes of the protocol
from shapely.geometry import shape

from satcheck.batch.pipeline import detect_changes
from satcheck.config import RunConfig, parse_settings
from satcheck.datasets import load_dataset
from satcheck.scoring import score_objects

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

SETS = [("LEVIR-CD scenes (0.5 m)", "levir_cd_scenes", LEVIR_VAL, 0.5),
        ("DSIFN (2 m)", "dsifn_samples", ["3_4", "4_4"], 2.0)]
CRS = "EPSG:4547"
MIN_TRUTH_M2 = 50.0


def write_pair(pair, folder: Path, gsd: float) -> tuple[Path, Path, gpd.GeoDataFrame]:
    """The pair as two GeoTIFF tiles on a made-up CGCS2000 grid, and its label as polygons on the same grid."""
    transform = from_origin(500000, 3000000, gsd, gsd)
    dirs = []
    for date, img in (("20250101", pair.before), ("20260101", pair.after)):
        path = folder / date / f"PAIR_{date}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.clip(img * 255, 0, 255).round().astype("uint8")
        with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                           dtype="uint8", crs=CRS, transform=transform) as dst:
            dst.write(data)
        dirs.append(path.parent)
    label = np.squeeze(pair.label).astype("uint8")
    geoms = [shape(g) for g, _ in shapes(label, mask=label > 0, transform=transform)]
    return dirs[0], dirs[1], gpd.GeoDataFrame(geometry=geoms, crs=CRS)


def compare(cfgs: dict[str, RunConfig]) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for title, folder, names, gsd in SETS:
            row = {"labelled": 0, "polygons": {k: 0 for k in cfgs}, "found": {k: 0 for k in cfgs},
                   "false": {k: 0 for k in cfgs}, "removed": 0, "removed_on_buildings": 0}
            for pair in load_dataset(SHARED / folder, names):
                before, after, truth = write_pair(pair, Path(tmp) / pair.name, gsd)
                km2 = pair.label.size * gsd * gsd / 1e6
                changes = {}
                for tag, cfg in cfgs.items():
                    res = detect_changes(before, after, Path(tmp) / pair.name / tag, cfg)
                    changes[tag] = res.changes.to_crs(CRS)
                    s = score_objects(changes[tag], truth, km2, min_truth_m2=MIN_TRUTH_M2, iou=0.3)
                    row["found"][tag] += s.found
                    row["polygons"][tag] += len(changes[tag])
                    row["false"][tag] += int((~changes[tag].intersects(truth.union_all())).sum())
                row["labelled"] += s.truths
                base, other = changes["defaults"], changes["settings"]
                kept = other.union_all() if len(other) else None
                gone = base if kept is None else base[~base.representative_point().within(kept)]
                row["removed"] += len(gone)
                row["removed_on_buildings"] += int(gone.intersects(truth.union_all()).sum())
            out[title] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="weights file (default: the shipped weights)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", required=True,
                    help="the run-config setting to compare with the defaults (repeatable)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not (SHARED / "levir_cd_scenes").is_dir():
        sys.exit(f"{SHARED / 'levir_cd_scenes'}: the LEVIR-CD scenes are not there")
    base = RunConfig().with_overrides(**{"detect.model.weights": a.model, "output.probability_cog": False})
    out = compare({"defaults": base, "settings": base.with_overrides(**parse_settings(a.set))})
    if a.json:
        print(json.dumps({"settings": a.set, **out}))
        return
    print(f"settings: {' '.join(a.set)} (against the defaults)")
    for title, r in out.items():
        print(f"{title}: {r['labelled']} labelled objects; found {r['found']['defaults']} -> {r['found']['settings']}; "
              f"polygons {r['polygons']['defaults']} -> {r['polygons']['settings']}; false {r['false']['defaults']} -> "
              f"{r['false']['settings']}; removed {r['removed']}, {r['removed_on_buildings']} of them on labelled buildings")


if __name__ == "__main__":
    main()
