"""Patches of a whole generated scene against what was planted in it: the scene of issue 17, item 3.

    .venv/bin/python benchmarks/enforcement_scene.py SCENE [--model PATH] [--no-dig-check] [--set KEY=VALUE ...] [--json]
    .venv/bin/python -m satcheck.synth SCENE --size 6144 --gsd 2 --tiles 3 --seed 7    # the issue's scene, first

Runs ``satcheck run SCENE/before SCENE/after --rules SCENE/rules`` (in a temporary folder) and prints: recall of
the planted construction and excavation by the change polygons (>= 200 m² and >= 400 m², IoU >= 0.3, and by any
overlap), the patches by class, the patches that touch no planted change (false) per km², of any class and of
the mining classes (illegal, expired-permit and out-of-bounds mining), and how many mining patches touch a planted
excavation. Patches are those review takes (``review.classes``: not approved land, not ``other_change``). A patch
is made only where the rule layers say (construction on farmland, digging outside a permit), so recall is given for
the change polygons, which the rules then sort.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import geopandas as gpd

from satcheck.batch.pipeline import detect_changes
from satcheck.config import RunConfig, parse_settings
from satcheck.scoring import score_objects

IOU = 0.3
MINING = ("illegal_mining", "expired_permit_mining", "out_of_bounds_mining")


def touched(pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> int:
    """Planted objects that some prediction overlaps at all."""
    if not len(pred) or not len(truth):
        return 0
    union = pred.geometry.union_all()
    return int(truth.geometry.intersects(union).sum())


def score_scene(scene: Path, cfg: RunConfig) -> dict:
    truth = gpd.read_file(scene / "truth" / "changes.gpkg")
    with tempfile.TemporaryDirectory() as tmp:
        res = detect_changes(scene / "before", scene / "after", Path(tmp) / "out", cfg, rules=scene / "rules")
    km2 = res.pixels * res.pairs[0].after.pixel_area_m2 / 1e6
    out: dict = {"area_km2": round(km2, 2), "planted": len(truth), "seconds": round(res.seconds, 1)}
    for m2 in (200, 400):
        big = truth[truth.geometry.area >= m2]
        s = score_objects(res.changes, truth, km2, min_truth_m2=m2, min_pred_m2=0, iou=IOU)
        out[f"change_recall_{m2}m2_iou03"] = f"{s.found}/{s.truths}"
        out[f"change_recall_{m2}m2_touched"] = f"{touched(res.changes, big)}/{len(big)}"
        for kind in ("construction", "excavation"):
            k = big[big["class"] == kind]
            sk = score_objects(res.changes, k, km2, min_truth_m2=m2, iou=IOU)
            out[f"{kind}_recall_{m2}m2_iou03"] = f"{sk.found}/{sk.truths}"
    patches = res.patches if res.patches is not None else gpd.GeoDataFrame({"class": []}, geometry=[], crs=truth.crs)
    out["patches_by_class"] = patches["class"].value_counts().to_dict() if len(patches) else {}
    patches = patches[patches["class"].isin(cfg.review.classes)]  # what goes to review: not approved, other_change
    out["patches"] = len(patches)
    any_truth = truth.geometry.union_all() if len(truth) else None
    false = patches[~patches.geometry.intersects(any_truth)] if len(patches) and any_truth is not None else patches
    out["false_patches"] = len(false)
    out["false_patches_per_km2"] = round(len(false) / km2, 2)
    mining = patches[patches["class"].isin(MINING)]
    digs = truth[truth["class"] == "excavation"]
    dig_union = digs.geometry.union_all() if len(digs) else None
    on_digs = int(mining.geometry.intersects(dig_union).sum()) if len(mining) and dig_union is not None else 0
    out["mining_patches"] = len(mining)
    out["mining_on_planted_excavation"] = on_digs
    out["false_mining_per_km2"] = round(int(false["class"].isin(MINING).sum()) / km2, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene", type=Path, help="a folder written by python -m satcheck.synth")
    ap.add_argument("--model", default=None, help="weights file (default: the shipped weights)")
    ap.add_argument("--no-dig-check", action="store_true",
                    help="keep every change typed excavation (cleanup.excavation_min_contrast 0, "
                         "excavation_max_old_outline 1)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a run-config setting, e.g. cleanup.building_max_old_outline=0.6 (repeatable)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    cfg = RunConfig().with_overrides(**{
        "detect.model.weights": a.model, "output.probability_cog": False,
        "cleanup.excavation_min_contrast": 0 if a.no_dig_check else None,
        "cleanup.excavation_max_old_outline": 1 if a.no_dig_check else None, **parse_settings(a.set)})
    out = score_scene(a.scene, cfg)
    print(json.dumps(out) if a.json else "\n".join(f"{k:40} {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
