"""Patches are the ledger's by place, never by id alone: the check ``satcheck review import`` makes first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import shapely
from shapely import wkb

from satcheck.config import ReviewConfig
from satcheck.errors import SatcheckError
from satcheck.patch_ids import overlap

NOT_MATCHED = ("; the file's ids were not matched against this ledger: make the patches with it (the batch "
               "manifest's 'ledger:') or into the output folder its patches came from; nothing was imported")


class IdentityError(SatcheckError, ValueError):
    """A patch file gives an id the ledger knows to another place, or a place it knows another id."""


def check_places(db: sqlite3.Connection, ledger: Path, config: ReviewConfig, path: Path, gdf: gpd.GeoDataFrame,
                 file_ids: set[str] | None = None) -> None:
    """Refuse a file whose ids do not fit the places the ledger knows for their period (same overlap rule).

    An id the ledger has must be the same place; an id it has not must not be a place it already has for the
    period under an id the file does not use (the file would enter it twice). A file made with this ledger's
    ids (``satcheck batch`` with ``ledger:``, :mod:`satcheck.patch_ids`) always fits.
    """
    ids = set(gdf["patch_id"])
    iou, share = config.match_iou, config.match_share
    for period, rows in gdf.groupby("period"):
        known = db.execute("SELECT patch_id, class, area_m2, centroid_lon, centroid_lat, source, geom "
                           "FROM patches WHERE period=?", (period,)).fetchall()
        if not known:
            continue
        geoms = [wkb.loads(k["geom"]) for k in known]
        by_id = {k["patch_id"]: (k, g) for k, g in zip(known, geoms)}
        tree = shapely.STRtree(geoms)
        for _, r in rows.iterrows():
            pid, geom = r["patch_id"], r.geometry
            if pid in by_id:
                k, g = by_id[pid]
                if overlap(geom, g, iou, share) == 0:
                    raise IdentityError(f"{path}: {pid} here ({_where(r)}) is not the place {pid} is in the ledger "
                                        f"{ledger} ({_where(k)}, from {k['source']}){NOT_MATCHED}")
                continue
            for j in tree.query(geom, predicate="intersects"):
                k = known[j]
                if k["patch_id"] not in ids and overlap(geom, geoms[j], iou, share) > 0:
                    raise IdentityError(f"{path}: {pid} here ({_where(r)}) is the place the ledger {ledger} has "
                                        f"as {k['patch_id']} ({_where(k)}, from {k['source']}){NOT_MATCHED}")


def _where(r) -> str:
    """A patch in a few words, for messages: class, area, centroid."""
    lon, lat = _number(r["centroid_lon"]), _number(r["centroid_lat"])
    at = f" at {lon:.5f}°E {lat:.5f}°N" if lon is not None and lat is not None else ""
    return f"{r['class']}, {float(r['area_m2']):.0f} m²{at}"


def _number(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f
