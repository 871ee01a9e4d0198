"""Scores on the real labelled pairs in ../shared/data, images the shipped weights were not trained on.

    .venv/bin/python benchmarks/real_eval.py [--model models/changenet.pt] [--json]

Held out (configs/train.yaml): LEVIR-CD train_412_0512_0768 and val_27_0000_0256; DSIFN 3_4 and 4_4; OSCD
aguasclaras, bordeaux and hongkong (RGB previews, and the 4-band GeoTIFFs with NIR). Prints pixel
precision, recall, F1 of the change class, pooled over the held-out images, for the model and for the
classical baseline (cva), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from satcheck.config import RunConfig
from satcheck.datasets import LabelledPair, load_dataset
from satcheck.detect import get_detector
from satcheck.evaluate import evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HELD_OUT = {
    "LEVIR-CD (0.5 m)": ("levir_cd_samples", ["train_412_0512_0768", "val_27_0000_0256"]),
    "DSIFN (Google Earth)": ("dsifn_samples", ["3_4", "4_4"]),
    "OSCD RGB previews (10 m)": ("oscd/rgb", ["aguasclaras", "bordeaux", "hongkong"]),
}
OSCD_CITIES = ["aguasclaras", "bordeaux", "hongkong"]


def oscd_geotiffs(cities: list[str]) -> list[LabelledPair]:
    from satcheck.model.data import oscd_pool

    return [LabelledPair(c, e.before, e.after, e.label, None) for c, e in zip(cities, oscd_pool(SHARED / "oscd", cities))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threshold", type=float, default=None, help="model threshold (default: the config's)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: absent; nothing to evaluate")
    rows = []
    sets = {k: load_dataset(SHARED / d, names) for k, (d, names) in HELD_OUT.items()}
    sets["OSCD 4-band GeoTIFF (10 m)"] = oscd_geotiffs(OSCD_CITIES)
    for label, pairs in sets.items():
        row = {"dataset": label, "images": len(pairs)}
        for det_name in ("model", "cva"):
            cfg = RunConfig().with_overrides(**{"detect.detector": det_name, "detect.model.weights": a.model,
                                                "detect.model.threshold": a.threshold})
            det = get_detector(cfg.detect, pairs[0].after.shape[0])
            m = evaluate(det, pairs).total.metrics()
            row[det_name] = {k: m[k] for k in ("precision", "recall", "f1", "iou", "object_recall")}
        rows.append(row)
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'dataset':28} {'n':>2}  {'model P':>7} {'R':>6} {'F1':>6}   {'cva P':>6} {'R':>6} {'F1':>6}")
    f = lambda v: "   -  " if v is None else f"{v:6.3f}"  # noqa: E731
    for r in rows:
        mo, cv = r["model"], r["cva"]
        print(f"{r['dataset']:28} {r['images']:>2}  {f(mo['precision']):>7} {f(mo['recall'])} {f(mo['f1'])}   "
              f"{f(cv['precision'])} {f(cv['recall'])} {f(cv['f1'])}")
    _ = np


if __name__ == "__main__":
    main()
