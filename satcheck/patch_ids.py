"""Patch ids (图斑编号) that belong to a place for good.

An id ``XZQDM-YYYYMM-NNNN``, once issued, names that place in that period for good: a rerun, a resumed or
partial batch, another model or threshold never renumbers it or gives it to another place.  Ids already issued
for the period come from

* the review ledger, when a batch names one (:meth:`satcheck.review.ledger.Ledger.issued`), and
* the registry ``OUT/patch_ids.json`` beside a run's outputs: every id any run into OUT issued, with the geometry
  it was first issued for, written atomically before the patch files.  An output folder written before the
  registry existed is read through its ``patches.gpkg`` instead.

A new patch takes the id of an issued patch that is the same place by the ledger's own rule (:func:`overlap`:
IoU of at least ``review.match_iou``, or ``review.match_share`` of either covered by the other), the ledger's
ids first (so a place under review keeps the id reviewers know), then the registry's.  Each id goes to at most
one patch and each patch takes at most one id: pairs are taken by shared area, largest first, so

* a split (one issued place is now two patches): the patch that overlaps it most keeps its id, the other is a new
  place with a new id;
* a merge (two issued places are now one patch): the patch takes the id it overlaps most; the other id is retired.

Ids no patch takes (a patch no longer found) are retired, never reused (as long as the registry is kept: without
it, ids that never reached the ledger, such as approved and other_change patches, are unknown and may be issued
again).  New places take the next numbers in
their admin unit and period after every number issued there (retired ones included), north to south, then west
to east among themselves; with nothing issued before, that is the order of the whole run, as before.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from satcheck.atomic import atomic_path
from satcheck.errors import SatcheckError

REGISTRY = "patch_ids.json"
_ID = re.compile(r"^(.*)-(\d{6})-(\d+)$")


class PatchIdError(SatcheckError, ValueError):
    """The registry of issued patch ids cannot be used."""


@dataclass(frozen=True)
class Issued:
    """An id already issued: its period (YYYY-MM), the place it was issued for, and where it is recorded."""

    patch_id: str
    period: str
    geometry: shapely.Geometry
    in_ledger: bool = False
    issued_at: str = ""


def overlap(a, b, match_iou: float, match_share: float) -> float:
    """The area ``a`` and ``b`` share when they are the same place by the ledger's rule, else 0.

    Same place: intersection over union of at least ``match_iou``, or at least ``match_share`` of either
    covered by the other (``review.match_iou`` and ``review.match_share``).
    """
    inter = a.intersection(b).area
    if inter <= 0:
        return 0.0
    union = a.area + b.area - inter
    smaller = min(a.area, b.area)
    if inter / max(union, 1e-12) >= match_iou or inter / max(smaller, 1e-12) >= match_share:
        return float(inter)
    return 0.0


def match(geoms: Sequence, issued: Sequence[Issued], match_iou: float, match_share: float) -> list[str | None]:
    """For each geometry, the issued id of the same place, or None (see the module docstring for the rules)."""
    result: list[str | None] = [None] * len(geoms)
    taken: set[str] = set()
    ledger_ids = {i.patch_id for i in issued if i.in_ledger}
    first = [i for i in issued if i.in_ledger]
    then = [i for i in issued if not i.in_ledger and i.patch_id not in ledger_ids]
    for stage in (first, then):
        if not stage or not len(geoms):
            continue
        tree = shapely.STRtree([i.geometry for i in stage])
        pairs = []
        for n, g in enumerate(geoms):
            if result[n] is not None:
                continue
            for j in tree.query(g, predicate="intersects"):
                area = overlap(g, stage[j].geometry, match_iou, match_share)
                if area > 0:
                    pairs.append((-area, n, stage[j].patch_id))
        for _, n, pid in sorted(pairs):
            if result[n] is None and pid not in taken:
                result[n] = pid
                taken.add(pid)
    return result


def split_id(patch_id: str) -> tuple[str, str, int] | None:
    """(admin code, YYYYMM, sequence) of a patch id, or None for an id not in that form."""
    m = _ID.match(str(patch_id))
    return (m[1], m[2], int(m[3])) if m else None


def issue(admin_codes: Sequence[str], xs: Sequence[float], ys: Sequence[float], geoms: Sequence, period: str,
          issued: Iterable[Issued], match_iou: float, match_share: float) -> list[str]:
    """Ids for one period's patches: those of the places already issued, the next free numbers for new ones."""
    yyyymm = period.replace("-", "")
    same = [i for i in issued if i.period == period]
    ids = match(geoms, same, match_iou, match_share)
    top: dict[str, int] = {}
    for i in same:
        parts = split_id(i.patch_id)
        if parts and parts[1] == yyyymm:
            top[parts[0]] = max(top.get(parts[0], 0), parts[2])
    new = [n for n, pid in enumerate(ids) if pid is None]
    # North to south, then west to east (1 m rows, so that jitter does not reorder).
    new.sort(key=lambda n: (str(admin_codes[n]), -np.floor(ys[n]), xs[n]))
    for n in new:
        code = str(admin_codes[n])
        top[code] = top.get(code, 0) + 1
        ids[n] = f"{code}-{yyyymm}-{top[code]:04d}"
    return ids  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- the registry
def read_registry(out: str | Path, crs) -> list[Issued]:
    """Every id issued into the output folder ``out``, geometries in ``crs``; [] for a new folder."""
    out = Path(out)
    path = out / REGISTRY
    if not path.exists():
        return _from_patches(out / "patches.gpkg", crs)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        src = CRS.from_user_input(data["crs"])
        rows = [(r["patch_id"], r["period"], shapely.from_wkt(r["geometry"]), r.get("issued_at", ""))
                for r in data["patches"]]
    except (OSError, ValueError, KeyError, TypeError, shapely.errors.GEOSException) as exc:
        raise PatchIdError(f"{path}: not a registry of patch ids ({type(exc).__name__}); restore it from a backup, "
                           "or delete it to match ids against patches.gpkg and the ledger only") from None
    geoms = reproject([g for _, _, g, _ in rows], src, crs)
    return [Issued(pid, period, g, False, at) for (pid, period, _, at), g in zip(rows, geoms)]


def write_registry(out: str | Path, known: Sequence[Issued], patch_ids: Sequence[str], periods: Sequence[str],
                   geoms: Sequence, crs) -> Path:
    """Record the ids of this run beside those issued before (first geometry kept); atomically."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    entries = {i.patch_id: i for i in known}
    for pid, period, g in zip(patch_ids, periods, geoms):
        if pid not in entries:
            entries[pid] = Issued(pid, period, g, False, now)
    rows = sorted(entries.values(), key=lambda i: (i.period, i.patch_id))
    data = {"about": "patch ids issued into this folder; an id stays with its place (satcheck/patch_ids.py)",
            "crs": CRS.from_user_input(crs).to_string(),
            "patches": [{"patch_id": i.patch_id, "period": i.period, "issued_at": i.issued_at,
                         "geometry": shapely.to_wkt(i.geometry, rounding_precision=3)} for i in rows]}
    path = Path(out) / REGISTRY
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def _from_patches(path: Path, crs) -> list[Issued]:
    if not path.exists():
        return []
    import geopandas as gpd

    try:
        gdf = gpd.read_file(path, layer="patches", engine="pyogrio")
    except Exception:  # an unreadable old output is no registry; it is rewritten by this run
        return []
    if not len(gdf) or "patch_id" not in gdf or "period" not in gdf:
        return []
    if gdf.crs is not None and crs is not None and gdf.crs != CRS.from_user_input(crs):
        gdf = gdf.to_crs(crs)
    return [Issued(str(p), str(q), g, False, "") for p, q, g in zip(gdf["patch_id"], gdf["period"], gdf.geometry)
            if not pd.isna(p) and g is not None]


def reproject(geoms: list, src, dst) -> list:
    if dst is None or not geoms or CRS.from_user_input(src) == CRS.from_user_input(dst):
        return geoms
    t = Transformer.from_crs(src, dst, always_xy=True)
    return [shapely.transform(g, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))) for g in geoms]
