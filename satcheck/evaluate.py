"""Scoring a detector on labelled A/B/label datasets: pixel and object metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from rasterio.windows import Window
from scipy import ndimage

from satcheck.align import PairWindow
from satcheck.config import NormaliseConfig
from satcheck.coregister import measure_arrays, shift_array
from satcheck.datasets import LabelledPair
from satcheck.detect.base import CLASS_CODES
from satcheck.radiometry import normalise_pair


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    truth_objects: int = 0
    truth_found: int = 0
    pred_objects: int = 0
    pred_matched: int = 0

    def __iadd__(self, o: "Counts") -> "Counts":
        for k, v in asdict(o).items():
            setattr(self, k, getattr(self, k) + v)
        return self

    def metrics(self) -> dict[str, float | None]:
        def div(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        p, r = div(self.tp, self.tp + self.fp), div(self.tp, self.tp + self.fn)
        f1 = div(2 * self.tp, 2 * self.tp + self.fp + self.fn)
        return {
            "precision": p, "recall": r, "f1": f1, "iou": div(self.tp, self.tp + self.fp + self.fn),
            "object_recall": div(self.truth_found, self.truth_objects),
            "object_precision": div(self.pred_matched, self.pred_objects),
        }


def _components(mask: np.ndarray, min_px: int) -> tuple[np.ndarray, int]:
    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return lab, 0
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    remap = np.zeros(n + 1, np.int32)
    remap[keep] = np.arange(1, keep.sum() + 1)
    return remap[lab], int(keep.sum())


def count(pred: np.ndarray, truth: np.ndarray, min_object_px: int = 10, match_iou: float = 0.3) -> Counts:
    """Pixel counts and object matches of a predicted mask against a truth mask."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    c = Counts(int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum()))
    tl, nt = _components(truth, min_object_px)
    pl, npred = _components(pred, min_object_px)
    c.truth_objects, c.pred_objects = nt, npred
    if nt and npred:
        # Intersections of every (truth, prediction) pair that overlaps, from one joint histogram.
        both = (tl > 0) & (pl > 0)
        pairs = np.unique(np.stack([tl[both], pl[both]]), axis=1, return_counts=True)
        t_area = np.bincount(tl.ravel(), minlength=nt + 1)
        p_area = np.bincount(pl.ravel(), minlength=npred + 1)
        found_t, matched_p = set(), set()
        for (ti, pi), inter in zip(pairs[0].T, pairs[1]):
            iou = inter / (t_area[ti] + p_area[pi] - inter)
            if iou >= match_iou:
                found_t.add(int(ti))
                matched_p.add(int(pi))
        c.truth_found, c.pred_matched = len(found_t), len(matched_p)
    return c


@dataclass
class EvalResult:
    total: Counts = field(default_factory=Counts)
    images: list[tuple[str, Counts]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = self.total.metrics()
        out["images"] = [{"name": n, **c.metrics()} for n, c in self.images]
        out["skipped_trained_on"] = self.skipped
        return out


def predict(detector, pair: LabelledPair, normalise: str | None = None, px_m: float | None = None,
            coregister_max_px: float = 0.0, classes: str = "any") -> np.ndarray:
    """Change mask of one labelled pair, normalised (``normalise``: the run's ``normalise.method``) and
    co-registered as in a run.

    ``px_m`` is the pixel size in metres where the pair itself does not say (PNG). ``classes`` keeps the change
    a run would type as that class (a key of ``CLASS_CODES``): a building dataset is scored on what would be
    reported as buildings, so new yards it does not label are neither found nor false.
    """
    ok = np.ones(pair.label.shape, bool)
    before = shift_array(pair.before, measure_arrays(pair.before, pair.after, ok, coregister_max_px))
    b, a = normalise_pair(before, pair.after, ok, normalise or NormaliseConfig().method)
    pw = PairWindow(Window(0, 0, a.shape[2], a.shape[1]), b, a, ok, np.zeros_like(ok))
    detector.prepare(pw, pair.px_m or px_m)
    scores = detector.score(pw)
    changed = scores.probability >= detector.threshold
    if classes == "any":
        return changed
    return changed & np.isin(scores.change_type, CLASS_CODES[classes])


def evaluate(detector, pairs: list[LabelledPair], min_object_px: int = 10, match_iou: float = 0.3,
             normalise: str | None = None, px_m: float | None = None, coregister_max_px: float = 0.0,
             classes: str = "any") -> EvalResult:
    if classes not in CLASS_CODES:
        raise ValueError(f"classes {classes!r}: expected one of {', '.join(CLASS_CODES)}")
    res = EvalResult()
    for p in pairs:
        c = count(predict(detector, p, normalise, px_m, coregister_max_px, classes), p.label == 1, min_object_px,
                  match_iou)
        res.total += c
        res.images.append((p.name, c))
    return res


def trained_names(meta: dict, dataset, names: list[str]) -> list[str]:
    """Images of ``dataset`` that the weights were trained on, from the manifest saved with them."""
    from pathlib import Path

    trained_on = meta.get("trained_on", {})
    entry = trained_on.get(Path(dataset).resolve().name)
    if entry and entry.get("names") == "all":
        return list(names)
    listed = {n for e in trained_on.values() if isinstance(e, dict) and isinstance(e.get("names"), list)
              for n in e["names"]}
    return [n for n in names if n in listed]
