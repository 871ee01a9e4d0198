"""Importing a run's patches into the review ledger, and linking them to the cases of earlier periods.

An import writes in transactions of :data:`IMPORT_CHUNK` patches, so decisions made meanwhile wait a fraction of a
second, and a killed import resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from shapely import wkb

from satcheck.config import ReviewConfig
from satcheck.export import read_patches
from satcheck.outfolder import check_complete
from satcheck.patch_ids import overlap
from satcheck.review.identity import check_places
from satcheck.review.ledger import Ledger, _latest, _now, append_event
from satcheck.review.paths import stored
from satcheck.review.states import NEW

IMPORT_CHUNK = 200  # patches per import transaction: the write lock is held well under a second at a time


@dataclass(frozen=True)
class ImportResult:
    added: int
    linked: int
    rereview: int
    skipped: int
    already_imported: bool = False
    updated: int = 0  # known patches still as imported (pending, undecided) whose outline or attributes changed


def import_patches(ledger: Ledger, path: str | Path, reviewer: str = "import") -> ImportResult:
    """Add a period's patches to ``ledger``; link those that continue a known case.

    Patches are matched by place, never by id alone (:func:`satcheck.review.identity.check_places`): an id
    the ledger has is the same place or an :class:`~satcheck.review.identity.IdentityError` (nothing imported).
    A known patch nobody has decided on yet takes the file's outline and attributes (a batch resumed after a
    failed tile completes a patch cut at its edge); one with decisions keeps what was decided on.

    The patches go in by transactions of :data:`IMPORT_CHUNK`, so that decisions made meanwhile wait well
    under a second; how far the import got is written with each, so an import killed half-way resumes where
    it stopped when run again (nothing lost, nothing twice, the same counts as one uninterrupted import).
    """
    path = Path(path)
    check_complete(path)  # also before the digest: a half-written run's patches.gpkg never counts as imported
    data = path.read_bytes() if path.is_file() else b""
    sha = hashlib.sha256(data).hexdigest()
    if ledger.db.execute("SELECT 1 FROM imports WHERE sha256=?", (sha,)).fetchone():
        return ImportResult(0, 0, 0, 0, already_imported=True)
    gdf = read_patches(path)
    chips = path.parent / "chips"
    crs = ledger.crs
    if crs is None:
        crs = gdf.crs.to_string() if gdf.crs else "EPSG:4547"
        with ledger.transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('crs', ?)", (crs,))
        crs = ledger.crs  # another import may have set it first
    if len(gdf) and gdf.crs is not None and gdf.crs.to_string() != crs:
        gdf = gdf.to_crs(crs)
    # Every class: a known id may have become approved or other_change. A read, no lock: each transaction
    # below checks its own patches again, against what other imports may have added meanwhile.
    with ledger._snapshot():  # no write lock: the check, and the count of patches it was made against
        check_places(ledger.db, ledger.path, ledger.config, path, gdf)
        known = ledger.db.execute("SELECT COUNT(*) FROM patches").fetchone()[0]
    ids = set(gdf["patch_id"])
    gdf = gdf[gdf["class"].isin(ledger.config.classes)].reset_index(drop=True)
    key = f"import:{sha}"
    row = ledger.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    # How far an earlier attempt at this file got (it was killed); with other review classes it starts afresh.
    done = json.loads(row[0]) if row else {}
    classes = sorted(ledger.config.classes)
    if done.get("classes") != classes:
        done = {}
    counts = {k: int(done.get(k, 0)) for k in ("rows", "added", "linked", "rereview", "skipped", "updated")}
    earlier = _Places(ledger.db, gdf["period"].max() if len(gdf) else None)
    start = counts["rows"]
    source = stored(path, ledger.path)
    chip_dir = stored(chips, ledger.path)  # the chips as stored: relative to the ledger, like the source
    names = {c.name for c in chips.iterdir()} if chips.is_dir() else set()
    chip_files = _ChipNames(names, chip_dir)
    records = _records(gdf)
    while True:
        chunk = gdf.iloc[start:start + IMPORT_CHUNK]
        # Outside the lock: what each new patch links to, its record.
        planned = [_plan(r, source, chip_files, earlier, ledger.config) for r in records[start:start + IMPORT_CHUNK]]
        last = start + len(chunk) >= len(gdf)
        with ledger.transaction() as db:
            if db.execute("SELECT COUNT(*) FROM patches").fetchone()[0] != known and len(chunk):
                # Another import wrote meanwhile: check this chunk again against what is there now.
                check_places(db, ledger.path, ledger.config, path, chunk, ids)
            for r, record, prev in planned:
                pid = r["patch_id"]
                if db.execute("SELECT 1 FROM patches WHERE patch_id=?", (pid,)).fetchone():
                    # the same place (checked above), imported before
                    counts["updated" if _refresh(db, pid, r, path, ledger.path) else "skipped"] += 1
                    continue
                to, note, kind = _link(db, r, prev, ledger.config)
                db.execute("INSERT INTO patches VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", record)
                append_event(db, pid, NEW, to, None, note, reviewer)
                counts[kind] += 1
                known += 1
            counts["rows"] = start + len(chunk)
            if last:
                period = gdf["period"].iloc[0] if len(gdf) else None
                db.execute("INSERT INTO imports VALUES (?,?,?,?,?,?,?)",
                           (sha, str(path), period, _now(), counts["added"], counts["linked"], counts["rereview"]))
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           (key, json.dumps(counts | {"classes": classes})))
        if last:
            break
        start += len(chunk)
    return ImportResult(counts["added"], counts["linked"], counts["rereview"], counts["skipped"],
                        updated=counts["updated"])


def _plan(r: dict, source: str, chip_files: dict[str, str], earlier: "_Places", config: ReviewConfig) -> tuple:
    """A new patch, its row of ``patches`` and the patch of an earlier period it continues (or None)."""
    pid, geom = r["patch_id"], r["geometry"]
    attrs = {k: _plain(v) for k, v in r.items() if k != "geometry"}
    prev = earlier.match(geom, r["period"], config.match_iou, config.match_share)
    record = (pid, r["period"], r["class"], r.get("change_type"), float(r["area_m2"]), float(r["area_mu"]),
              _plain(r.get("confidence")), r.get("admin_code"), r.get("admin_name"),
              _plain(r.get("centroid_lon")), _plain(r.get("centroid_lat")), *geom.bounds,
              json.dumps(attrs, ensure_ascii=False), wkb.dumps(geom), prev[0] if prev else None,
              chip_files.get(f"{pid}_before.png"), chip_files.get(f"{pid}_after.png"), source, _now())
    return r, record, prev


def _link(db: sqlite3.Connection, r, prev, config: ReviewConfig) -> tuple[str, str | None, str]:
    """A new patch's first state, note and count: pending (new, or a known case back for review) or linked."""
    if prev is None:
        return "pending", None, "added"
    prev_id, prev_area, prev_class = prev
    latest = _latest(db, prev_id)
    prev_state = latest["to_state"] if latest else "?"
    grew = (r["geometry"].area - prev_area) / max(prev_area, 1e-9)
    if grew > config.regrow_share or r["class"] != prev_class:
        why = f"grew {grew:.0%}" if grew > config.regrow_share else f"class was {prev_class}"
        return "pending", f"same case as {prev_id} ({prev_state}); {why}", "rereview"
    return "linked", f"same case as {prev_id} ({prev_state}), unchanged", "linked"


class _Places:
    """The ledger's patches of periods before ``period`` in a spatial index: what a new patch may continue."""

    def __init__(self, db: sqlite3.Connection, period: str | None):
        rows = [] if period is None else db.execute(
            "SELECT patch_id, period, class, geom FROM patches WHERE period < ?", (period,)).fetchall()
        # The most recent period first, then by id: the patch a new one continues when several are the same place.
        rows.sort(key=lambda r: r["patch_id"])
        rows.sort(key=lambda r: r["period"], reverse=True)
        self.rows = rows
        self.geoms = [wkb.loads(r["geom"]) for r in rows]
        self.tree = shapely.STRtree(self.geoms) if rows else None

    def match(self, geom, period: str, match_iou: float, match_share: float) -> tuple[str, float, str] | None:
        """(patch_id, area, class) of the most recent patch of an earlier period that is the same place, or None."""
        if self.tree is None:
            return None
        for j in sorted(self.tree.query(geom)):
            row, other = self.rows[j], self.geoms[j]
            if row["period"] < period and overlap(geom, other, match_iou, match_share) > 0:
                return row["patch_id"], other.area, row["class"]
        return None


class _ChipNames(dict):
    """File name in the chips folder -> the path the ledger stores for it; None for a chip the run did not make."""

    def __init__(self, names: set[str], stored_dir: str):
        super().__init__()
        self.names, self.dir = names, stored_dir

    def get(self, name: str, default=None):
        return f"{self.dir}/{name}" if name in self.names else default


def _records(gdf: gpd.GeoDataFrame) -> list[dict]:
    """The rows of a patch file as dicts, each with its ``geometry`` (much faster than ``iterrows``)."""
    plain = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    return [rec | {"geometry": g} for rec, g in zip(plain.to_dict("records"), gdf.geometry)]


def _refresh(db: sqlite3.Connection, pid: str, r, path: Path, ledger: Path) -> bool:
    """Give a known patch that is still as imported (pending, no decision) the file's outline and attributes."""
    row = db.execute("SELECT p.attrs, (SELECT COUNT(*) FROM events e WHERE e.patch_id = p.patch_id) AS n "
                     "FROM patches p WHERE p.patch_id=?", (pid,)).fetchone()
    attrs = json.dumps({k: _plain(v) for k, v in r.items() if k != "geometry"}, ensure_ascii=False)
    latest = _latest(db, pid)
    if latest is None or latest["to_state"] != "pending" or row["n"] != 1 or row["attrs"] == attrs:
        return False
    geom = r["geometry"]
    db.execute("UPDATE patches SET class=?, change_type=?, area_m2=?, area_mu=?, confidence=?, admin_code=?, "
               "admin_name=?, centroid_lon=?, centroid_lat=?, minx=?, miny=?, maxx=?, maxy=?, attrs=?, geom=?, "
               "source=? WHERE patch_id=?",
               (r["class"], r.get("change_type"), float(r["area_m2"]), float(r["area_mu"]), _plain(r.get("confidence")),
                r.get("admin_code"), r.get("admin_name"), _plain(r.get("centroid_lon")), _plain(r.get("centroid_lat")),
                *geom.bounds, attrs, wkb.dumps(geom), stored(path, ledger), pid))
    return True


def _plain(v):
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v
