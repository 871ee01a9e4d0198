"""Object-level scoring of change polygons against ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np

from satcheck.errors import SatcheckError
from satcheck.outfolder import check_complete
from satcheck.rules import rule_kind


class ScoreInputError(SatcheckError, ValueError):
    """A file given to ``satcheck score`` cannot be used: not vector data, no CRS, a damaged run.json."""


def read_vector(path, what: str) -> gpd.GeoDataFrame:
    """The polygons of ``path`` (``what``: how the command names it), or a one-line :class:`ScoreInputError`."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ScoreInputError(f"{p}: not found; pass the {what} as a vector file (GeoPackage, GeoJSON, Shapefile)")
    check_complete(p)
    try:
        gdf = gpd.read_file(p)
    except Exception as exc:  # pyogrio raises several types for a file it cannot read
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ScoreInputError(f"{p}: not a vector file ({why}); pass the {what} as a GeoPackage, GeoJSON or "
                              "Shapefile") from None
    if len(gdf) and gdf.crs is None:
        raise ScoreInputError(f"{p}: has no CRS, so it cannot be compared; give the {what} a CRS")
    kinds = set(gdf.geometry.dropna().geom_type) - {"Polygon", "MultiPolygon"}
    if kinds:
        # Points or lines have no area: every one would fall under --min-area and the score be of nothing.
        raise ScoreInputError(f"{p}: holds {', '.join(sorted(kinds))} geometries; pass the {what} as polygons "
                              "(outlines with an area)")
    return gdf


@dataclass(frozen=True)
class ObjectScore:
    truths: int
    found: int
    recall: float
    false_objects: int
    false_per_km2: float
    type_correct: float | None
    # Per truth object counted (area >= min_truth_m2), in the truth's order; the same whatever ``iou`` is.
    best_iou: tuple[float, ...] = ()


def score_objects(pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, area_km2: float, *, min_truth_m2: float = 400.0,
                  min_pred_m2: float = 0.0, iou: float = 0.5) -> ObjectScore:
    """Recall of truth objects (matched at IoU >= ``iou``) and false predictions per km².

    A prediction is false when it overlaps no truth object at all; truth
    objects below ``min_truth_m2`` are neither required nor counted as false.
    """
    pred = pred[pred.geometry.area >= min_pred_m2] if len(pred) else pred
    big = truth[truth.geometry.area >= min_truth_m2] if len(truth) else truth
    found = 0
    type_ok = []
    best_iou = []
    for _, t in big.iterrows():
        hits = pred[pred.intersects(t.geometry)] if len(pred) else pred
        best, best_row = 0.0, None
        for _, p in hits.iterrows():
            u = p.geometry.union(t.geometry).area
            one = p.geometry.intersection(t.geometry).area / u if u else 0.0
            if one > best:
                best, best_row = one, p
        if len(hits) > 1:
            # A change split by a boundary still counts when its pieces cover it (typed by its best piece).
            merged = hits.geometry.union_all()
            best = max(best, merged.intersection(t.geometry).area / merged.union(t.geometry).area)
        best_iou.append(best)
        if best >= iou:
            found += 1
            if "class" in t and "change_type" in best_row:
                type_ok.append(rule_kind(best_row["change_type"]) == rule_kind(t["class"]))
    false = 0
    if len(pred):
        any_truth = truth.geometry.union_all() if len(truth) else None
        for g in pred.geometry:
            if any_truth is None or not g.intersects(any_truth):
                false += 1
    n = len(big)
    return ObjectScore(n, found, found / n if n else float("nan"), false, false / max(area_km2, 1e-9),
                       float(np.mean(type_ok)) if type_ok else None, tuple(best_iou))

