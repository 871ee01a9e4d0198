"""Scores on the real labelled pairs in ../shared/data, images the shipped weights were not trained on.

    .venv/bin/python benchmarks/real_eval.py [--model models/changenet.pt] [--json]
        [--views 8] [--ensemble OTHER.pt ...]    # averaged variants the model card reports

Held out (configs/train.yaml): LEVIR-CD train_412_0512_0768 and val_27_0000_0256; DSIFN 3_4 and 4_4; OSCD
aguasclaras, bordeaux and hongkong (RGB previews, and the 4-band GeoTIFFs with NIR). Prints pixel
precision, recall, F1 of the change class, pooled over the held-out images, for the model and for the
classical baseline (cva), measured in the same run. The OSCD pairs are scored as 10 m imagery: enlarged for the
model as a run enlarges them (detect.model.enlarge_by; --enlarge-by 1 scores them at their own pixel size).

Enforcement imagery runs from 0.5 to 2 m; the held-out LEVIR-CD and DSIFN pairs are also scored made 2 and 4
times coarser (block means of the pixels, label where at least half the block changed), which shows LEVIR-CD's
0.5 m houses as a 1 m and a 2 m sensor would see them.
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
HELD_OUT = {
    "LEVIR-CD (0.5 m)": ("levir_cd_samples", ["train_412_0512_0768", "val_27_0000_0256"]),
    "DSIFN (Google Earth)": ("dsifn_samples", ["3_4", "4_4"]),
    "OSCD RGB previews (10 m)": ("oscd/rgb", ["aguasclaras", "bordeaux", "hongkong"]),
}
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
        super().__init__(like.tile, like.overlap, like.batch_size)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
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
    rows = []
    sets = {k: load_dataset(SHARED / d, names) for k, (d, names) in HELD_OUT.items()}
    sets["OSCD 4-band GeoTIFF (10 m)"] = oscd_geotiffs(OSCD_CITIES)
    if a.oscd_trained:
        sets["OSCD 4-band, trained on"] = oscd_geotiffs(OSCD_TRAINED)
    min_object_px = dict.fromkeys(sets, 10)
    for f in (2, 4):
        for name, base in ((f"LEVIR-CD {f}x coarser ({0.5 * f:g} m)", "LEVIR-CD (0.5 m)"),
                           (f"DSIFN {f}x coarser", "DSIFN (Google Earth)")):
            sets[name] = coarsened(sets[base], f)
            min_object_px[name] = 3  # a 10 px object at 0.5 m is under one pixel at 2 m
    for label, pairs in sets.items():
        if a.shift:
            pairs = [LabelledPair(p.name, np.roll(p.before, (a.shift, a.shift), (1, 2)), p.after, p.label,
                                  p.change_class, p.px_m) for p in pairs]
        if a.blue_first:
            o = [2, 1, 0, *range(3, pairs[0].after.shape[0])]
            pairs = [LabelledPair(p.name, p.before[o], p.after[o], p.label, p.change_class, p.px_m) for p in pairs]
        row = {"dataset": label, "images": len(pairs)}
        for det_name in ("model", "cva"):
            cfg = RunConfig().with_overrides(**{"detect.detector": det_name, "detect.model.weights": a.model,
                                                "detect.model.threshold": a.threshold,
                                                "normalise.method": a.normalise,
                                                "detect.model.enlarge_by": a.enlarge_by,
                                                "align.coregister_max_px": a.coregister_max_px})
            det = get_detector(cfg.detect, pairs[0].after.shape[0])
            if det_name == "model" and (a.views > 1 or a.ensemble):
                others = [get_detector(cfg.with_overrides(**{"detect.model.weights": w}).detect,
                                       pairs[0].after.shape[0]).predictor for w in a.ensemble]
                det.predictor = Averaged([det.predictor, *others], a.views)
            m = evaluate(det, pairs, min_object_px=min_object_px[label], normalise=cfg.normalise.method,
                         coregister_max_px=cfg.align.coregister_max_px,
                         px_m=10.0 if label.startswith("OSCD") else None).total.metrics()
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


if __name__ == "__main__":
    main()
