"""Scores on the real labelled pairs in ../shared/data that the weights were not trained on, in one table.

    .venv/bin/python benchmarks/real_eval.py                         # the shipped weights and the cva baseline
    .venv/bin/python benchmarks/real_eval.py --recipe new=a.pt,b.pt --recipe old=c.pt,d.pt   # recipes, by seed
        [--json] [--views 8] [--ensemble OTHER.pt ...]

Validation protocol (models/MODEL_CARD.md): 8 whole LEVIR-CD scenes of ../shared/data/levir_cd_scenes (every
fourth in numeric order from the fourth: test_6, 13, 19, 25, 31, 37, 43, 49; the other 24 train), scored on the
building class, since LEVIR-CD labels buildings only; the LEVIR-CD samples train_412_0512_0768 and
val_27_0000_0256 (building); DSIFN 3_4 and 4_4 (building, and any change); OSCD aguasclaras, bordeaux and hongkong
(any change; RGB previews and the 4-band GeoTIFFs with NIR, scored as 10 m imagery, enlarged as a run enlarges
them). The LEVIR-CD validation scenes and DSIFN are also scored 2 and 4 times coarser (block means, label where at
least half the block changed), as a 1 m and a 2 m sensor would see them.

A recipe is several weights files trained alike with different seeds: each row gives every seed's pixel F1 and
object recall (IoU >= 0.3), their mean and their spread (max - min). A recipe is better than another only where
its mean gain exceeds both spreads. The classical baseline (cva) is measured in the same run.
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
from satcheck.model.runtime import TiledPredictor

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LEVIR_VAL = ["test_6", "test_13", "test_19", "test_25", "test_31", "test_37", "test_43", "test_49"]
# Label, folder, image names, class scored.
HELD_OUT = [
    ("LEVIR-CD scenes (0.5 m)", "levir_cd_scenes", LEVIR_VAL, "building"),
    ("LEVIR-CD samples (0.5 m)", "levir_cd_samples", ["train_412_0512_0768", "val_27_0000_0256"], "building"),
    ("DSIFN", "dsifn_samples", ["3_4", "4_4"], "building"),
    ("DSIFN", "dsifn_samples", ["3_4", "4_4"], "any"),
    ("OSCD RGB previews (10 m)", "oscd/rgb", ["aguasclaras", "bordeaux", "hongkong"], "any"),
]
OSCD_CITIES = ["aguasclaras", "bordeaux", "hongkong"]
OSCD_TRAINED = ["abudhabi", "beirut", "cupertino", "mumbai"]


def oscd_geotiffs(cities: list[str]) -> list[LabelledPair]:
    from satcheck.model.data import oscd_pool

    return [LabelledPair(c, e.before, e.after, e.label, None, 10.0)
            for c, e in zip(cities, oscd_pool(SHARED / "oscd", cities))]


def coarsened(pairs: list[LabelledPair], f: int) -> list[LabelledPair]:
    """Each pair as a sensor with f times larger pixels would see it: block means, majority label."""
    def down(x: np.ndarray) -> np.ndarray:
        c, h, w = x.shape
        return x[:, : h // f * f, : w // f * f].reshape(c, h // f, f, w // f, f).mean((2, 4))

    return [LabelledPair(p.name, down(p.before), down(p.after), (down(p.label[None].astype(np.float32))[0] >= 0.5)
                         .astype(np.uint8), None) for p in pairs]


class Averaged(TiledPredictor):
    """Mean logits of several predictors, each also over the 8 flips and rotations of the input if views == 8."""

    def __init__(self, members: list[TiledPredictor], views: int):
        like = members[0]
        super().__init__(like.tile, like.overlap, like.batch_size, like.outputs)
        self.engine, self.members, self.views = like.engine, members, views

    def _run(self, b: np.ndarray, a: np.ndarray) -> np.ndarray:
        out = []
        for m in self.members:
            for k in range(4 if self.views == 8 else 1):
                for flip in (False, True) if self.views == 8 else (False,):
                    tb, ta = np.rot90(b, k, (2, 3)), np.rot90(a, k, (2, 3))
                    if flip:
                        tb, ta = tb[..., ::-1], ta[..., ::-1]
                    o = m._run(np.ascontiguousarray(tb), np.ascontiguousarray(ta))
                    out.append(np.rot90(o[..., ::-1] if flip else o, -k, (2, 3)))
        return np.mean(out, axis=0)


def held_out_sets(oscd_trained: bool) -> list[tuple[str, str, list[LabelledPair], int]]:
    """(label, class scored, pairs, smallest object in pixels) of every held-out set."""
    sets = [(label, cls, load_dataset(SHARED / folder, names), 10) for label, folder, names, cls in HELD_OUT]
    oscd = oscd_geotiffs(OSCD_CITIES)
    sets.append(("OSCD 4-band GeoTIFF (10 m)", "any", oscd, 10))
    if oscd_trained:
        sets.append(("OSCD 4-band, trained on", "any", oscd_geotiffs(OSCD_TRAINED), 10))
    levir, dsifn = sets[0][2], sets[2][2]
    for f in (2, 4):
        # A 10 px object at 0.5 m is under one pixel at 2 m.
        sets.append((f"LEVIR-CD scenes {f}x coarser ({0.5 * f:g} m)", "building", coarsened(levir, f), 3))
        sets.append((f"DSIFN {f}x coarser", "any", coarsened(dsifn, f), 3))
    return sets


def score(weights: str | None, detector: str, label: str, cls: str, pairs: list[LabelledPair], min_px: int,
          a: argparse.Namespace) -> dict:
    if a.shift:
        pairs = [LabelledPair(p.name, np.roll(p.before, (a.shift, a.shift), (1, 2)), p.after, p.label,
                              p.change_class, p.px_m) for p in pairs]
    if a.blue_first:
        o = [2, 1, 0, *range(3, pairs[0].after.shape[0])]
        pairs = [LabelledPair(p.name, p.before[o], p.after[o], p.label, p.change_class, p.px_m) for p in pairs]
    cfg = RunConfig().with_overrides(**{"detect.detector": detector, "detect.model.weights": weights,
                                        "detect.model.threshold": a.threshold, "normalise.method": a.normalise,
                                        "detect.model.enlarge_by": a.enlarge_by,
                                        "align.coregister_max_px": a.coregister_max_px})
    det = get_detector(cfg.detect, pairs[0].after.shape[0])
    if detector == "model" and (a.views > 1 or a.ensemble):
        others = [get_detector(cfg.with_overrides(**{"detect.model.weights": w}).detect,
                               pairs[0].after.shape[0]).predictor for w in a.ensemble]
        det.predictor = Averaged([det.predictor, *others], a.views)
    m = evaluate(det, pairs, min_object_px=min_px, normalise=cfg.normalise.method,
                 coregister_max_px=cfg.align.coregister_max_px, px_m=10.0 if label.startswith("OSCD") else None,
                 classes=cls).total.metrics()
    return {k: m[k] for k in ("precision", "recall", "f1", "iou", "object_recall")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", action="append", default=[], metavar="NAME=W1.pt,W2.pt",
                    help="weights files of one recipe, one per seed (repeatable; default: shipped=the shipped weights)")
    ap.add_argument("--model", default=None, help="one weights file (same as --recipe model=FILE)")
    ap.add_argument("--no-baseline", action="store_true", help="leave out the cva baseline")
    ap.add_argument("--threshold", type=float, default=None, help="model threshold (default: the config's)")
    ap.add_argument("--views", type=int, choices=(1, 8), default=1, help="8: average over flips and rotations")
    ap.add_argument("--ensemble", nargs="+", default=[], help="other weights files whose logits are averaged in")
    ap.add_argument("--normalise", default=None, help="normalise.method (default: the config's)")
    ap.add_argument("--enlarge-by", type=float, default=None,
                    help="detect.model.enlarge_by for the 10 m sets (default: the config's; 1 = never)")
    ap.add_argument("--coregister-max-px", type=float, default=None,
                    help="align.coregister_max_px (default: the config's; 0 = no co-registration)")
    ap.add_argument("--shift", type=int, default=0,
                    help="move the earlier date of every pair by this many pixels down and right (misregistration)")
    ap.add_argument("--blue-first", action="store_true",
                    help="feed every pair as blue, green, red (, NIR): a GF-style file read without bands.before/after")
    ap.add_argument("--oscd-trained", action="store_true",
                    help="also score the four OSCD cities the weights were trained on (not held out)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: absent; nothing to evaluate")
    recipes = {}
    for r in a.recipe:
        name, _, files = r.partition("=")
        if not files:
            raise SystemExit(f"--recipe {r}: expected NAME=W1.pt[,W2.pt...]")
        recipes[name] = files.split(",")
    if a.model:
        recipes["model"] = [a.model]
    recipes = recipes or {"shipped": [None]}
    rows = []
    for label, cls, pairs, min_px in held_out_sets(a.oscd_trained):
        row = {"dataset": label, "class": cls, "images": len(pairs), "recipes": {}}
        for name, files in recipes.items():
            seeds = [score(w, "model", label, cls, pairs, min_px, a) for w in files]
            f1 = [s["f1"] or 0.0 for s in seeds]
            obj = [s["object_recall"] or 0.0 for s in seeds]
            row["recipes"][name] = {"seeds": seeds, "f1_mean": round(float(np.mean(f1)), 4),
                                    "f1_spread": round(max(f1) - min(f1), 4),
                                    "object_recall_mean": round(float(np.mean(obj)), 4)}
        if not a.no_baseline:
            row["cva"] = score(None, "cva", label, cls, pairs, min_px, a)
        rows.append(row)
        if not a.json:
            print_row(row)
    if a.json:
        print(json.dumps(rows, indent=2))


def print_row(r: dict) -> None:
    f = lambda v: "  -  " if v is None else f"{v:.3f}"  # noqa: E731
    parts = [f"{r['dataset']:34} {r['class']:9} {r['images']:>2}"]
    for name, rec in r["recipes"].items():
        per_seed = "/".join(f(s["f1"]) for s in rec["seeds"])
        obj = "/".join(f(s["object_recall"]) for s in rec["seeds"])
        spread = f" ±{rec['f1_spread']:.3f}" if len(rec["seeds"]) > 1 else ""
        parts.append(f"{name}: F1 {per_seed} (mean {rec['f1_mean']:.3f}{spread}) obj-R {obj}")
    if "cva" in r:
        parts.append(f"cva: F1 {f(r['cva']['f1'])}")
    print("  ".join(parts), flush=True)


if __name__ == "__main__":
    main()
