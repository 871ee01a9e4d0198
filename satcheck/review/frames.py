"""Patches of a ledger as a table for export: the patch fields, the current state and the latest decision."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
from shapely import wkb

from satcheck.labels import REVIEW_FIELDS
from satcheck.patches import PATCH_FIELDS, empty_patches
from satcheck.review.ledger import Event, Ledger
from satcheck.review.states import NEW


def latest_events(lg: Ledger) -> dict[str, Event]:
    rows = lg.db.execute("SELECT e.* FROM events e JOIN (SELECT patch_id, MAX(id) AS id FROM events GROUP BY patch_id) m "
                         "ON e.id = m.id").fetchall()
    return {r["patch_id"]: Event(**dict(r)) for r in rows}


def histories(lg: Ledger, patch_ids: list[str]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {pid: [] for pid in patch_ids}
    for r in lg.db.execute("SELECT * FROM events ORDER BY id").fetchall():
        if r["patch_id"] in out:
            out[r["patch_id"]].append(Event(**dict(r)))
    return out


def review_frame(lg: Ledger, period: str | None = None, cls: str | None = None, state: str | None = None,
                 admin: str | None = None, min_area: float | None = None) -> gpd.GeoDataFrame:
    """One row per patch: :data:`PATCH_FIELDS` (status = current state), then :data:`REVIEW_FIELDS`.

    ``reviewer`` and ``decided_at`` are those of the latest decision (blank while a patch is as imported),
    ``note`` that of the latest event; ``reason`` is the rejection reason of rejected patches.
    """
    rows = lg.patches(period, cls, state, admin, min_area)
    columns = list(PATCH_FIELDS) + list(REVIEW_FIELDS)
    if not rows:
        gdf = empty_patches(lg.crs or "EPSG:4547")
        for k in REVIEW_FIELDS:
            gdf[k] = pd.Series(dtype="object")
        return gdf[columns + ["geometry"]]
    last = latest_events(lg)
    wanted = {r["patch_id"] for r in rows}
    stored = {r[0]: (r[1], r[2]) for r in lg.db.execute("SELECT patch_id, geom, attrs FROM patches")
              if r[0] in wanted}
    recs, geoms = [], []
    for r in rows:
        geom, attrs = stored[r["patch_id"]]
        a = {k: None for k in PATCH_FIELDS} | json.loads(attrs)
        e = last[r["patch_id"]]
        decided = e.from_state != NEW
        a.update({"status": r["state"], "reviewer": e.reviewer if decided else None,
                  "decided_at": e.at if decided else None, "reason": e.reason if r["state"] == "rejected" else None,
                  "note": e.note, "prev_patch_id": r["prev_patch_id"]})
        recs.append({k: a.get(k) for k in columns})
        geoms.append(wkb.loads(geom))
    return gpd.GeoDataFrame(recs, geometry=geoms, crs=lg.crs)
