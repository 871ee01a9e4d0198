"""The review ledger: every patch of every period and every decision on it, in one SQLite file.

Decisions are append-only events (patch, from, to, reason, note, reviewer,
time); a patch's state is its latest event.  Triggers refuse any UPDATE or
DELETE of events, and the tool offers no way to edit them.  Writes are
short ``BEGIN IMMEDIATE`` transactions in WAL mode, so two reviewers on
one ledger lose nothing, and a process killed mid-write leaves the last
committed state.  The schema is versioned; :data:`MIGRATIONS` upgrades
older ledgers in place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from shapely import wkb

from satcheck.config import ReviewConfig
from satcheck.errors import SatcheckError
from satcheck.export import read_patches
from satcheck.patch_ids import Issued, overlap, reproject
from satcheck.review.identity import IdentityError, check_places  # noqa: F401 (IdentityError: for callers)
from satcheck.review.paths import stored
from satcheck.review.states import NEW, ConflictError, TransitionError, check

SCHEMA_VERSION = 1
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE patches (
        patch_id TEXT PRIMARY KEY, period TEXT NOT NULL, class TEXT NOT NULL, change_type TEXT,
        area_m2 REAL NOT NULL, area_mu REAL, confidence REAL, admin_code TEXT, admin_name TEXT,
        centroid_lon REAL, centroid_lat REAL, minx REAL, miny REAL, maxx REAL, maxy REAL,
        attrs TEXT NOT NULL, geom BLOB NOT NULL, prev_patch_id TEXT REFERENCES patches(patch_id),
        chip_before TEXT, chip_after TEXT, source TEXT, imported_at TEXT NOT NULL);
    CREATE INDEX patches_period ON patches(period);
    CREATE INDEX patches_bbox ON patches(minx, maxx, miny, maxy);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, patch_id TEXT NOT NULL REFERENCES patches(patch_id),
        from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT, note TEXT, reviewer TEXT NOT NULL,
        at TEXT NOT NULL);
    CREATE INDEX events_patch ON events(patch_id, id);
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TABLE imports (sha256 TEXT PRIMARY KEY, path TEXT, period TEXT, at TEXT, added INTEGER, linked INTEGER,
                          rereview INTEGER);
    CREATE VIEW current AS
        SELECT e.patch_id AS patch_id, e.to_state AS state, e.at AS at, e.reviewer AS reviewer, e.reason AS reason
        FROM events e JOIN (SELECT patch_id, MAX(id) AS id FROM events GROUP BY patch_id) m ON e.id = m.id;
    """,
}


class LedgerError(SatcheckError, RuntimeError):
    """The ledger file cannot be used."""


@dataclass(frozen=True)
class Event:
    id: int
    patch_id: str
    from_state: str
    to_state: str
    reason: str | None
    note: str | None
    reviewer: str
    at: str


@dataclass(frozen=True)
class ImportResult:
    added: int
    linked: int
    rereview: int
    skipped: int
    already_imported: bool = False
    updated: int = 0  # known patches still as imported (pending, undecided) whose outline or attributes changed


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def append_event(db: sqlite3.Connection, patch_id: str, from_state: str, to_state: str, reason: str | None,
                 note: str | None, reviewer: str) -> Event:
    """Append one event to the history (inside the caller's transaction) and return it."""
    at = _now()
    cur = db.execute("INSERT INTO events (patch_id, from_state, to_state, reason, note, reviewer, at) "
                     "VALUES (?,?,?,?,?,?,?)", (patch_id, from_state, to_state, reason, note, reviewer, at))
    return Event(cur.lastrowid, patch_id, from_state, to_state, reason, note, reviewer, at)


class Ledger:
    def __init__(self, path: str | Path, config: ReviewConfig = ReviewConfig(), create: bool = True):
        self.path = Path(path)
        self.config = config
        if not self.path.exists() and not create:
            raise LedgerError(f"{self.path}: ledger not found; create it with 'satcheck review import {self.path} PATCHES'")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not a satcheck ledger ({exc}); pass a ledger file or a new path") from None

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        has_meta = self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone()
        version = 0
        if has_meta:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{self.path}: ledger schema {version} is newer than this satcheck ({SCHEMA_VERSION}); "
                              "upgrade satcheck")
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx() as db:
                for stmt in _statements(MIGRATIONS[v]):
                    db.execute(stmt)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(v),))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def crs(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='crs'").fetchone()
        return row[0] if row else None

    @property
    def reasons(self) -> set[str]:
        return {r.key for r in self.config.reasons}

    # ------------------------------------------------------------------ import
    def import_patches(self, path: str | Path, reviewer: str = "import") -> ImportResult:
        """Add a period's patches; link those that continue a known case.

        Patches are matched by place, never by id alone (:func:`satcheck.review.identity.check_places`): an id
        the ledger has is the same place or an :class:`IdentityError` (nothing imported). A known patch nobody has
        decided on yet takes the file's outline and attributes (a batch resumed after a failed tile completes a
        patch cut at its edge); one with decisions keeps what was decided on.
        """
        path = Path(path)
        data = path.read_bytes() if path.is_file() else b""
        sha = hashlib.sha256(data).hexdigest()
        if self.db.execute("SELECT 1 FROM imports WHERE sha256=?", (sha,)).fetchone():
            return ImportResult(0, 0, 0, 0, already_imported=True)
        gdf = read_patches(path)
        chips = path.parent / "chips"
        with self._tx() as db:
            crs = self.crs
            if crs is None:
                crs = gdf.crs.to_string() if gdf.crs else "EPSG:4547"
                db.execute("INSERT INTO meta VALUES ('crs', ?)", (crs,))
            if len(gdf) and gdf.crs is not None and gdf.crs.to_string() != crs:
                gdf = gdf.to_crs(crs)
            # Every class: a known id may have become approved or other_change.
            check_places(db, self.path, self.config, path, gdf)
            gdf = gdf[gdf["class"].isin(self.config.classes)]
            added = linked = rereview = skipped = updated = 0
            for _, r in gdf.iterrows():
                pid = r["patch_id"]
                if db.execute("SELECT 1 FROM patches WHERE patch_id=?", (pid,)).fetchone():
                    if _refresh(db, pid, r, path, self.path):  # the same place (checked above), imported before
                        updated += 1
                    else:
                        skipped += 1
                    continue
                geom = r.geometry
                match = self._match(db, geom, r["period"])
                attrs = {k: _plain(v) for k, v in r.items() if k != "geometry"}
                b = geom.bounds
                cb, ca = chips / f"{pid}_before.png", chips / f"{pid}_after.png"
                db.execute(
                    "INSERT INTO patches VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (pid, r["period"], r["class"], r.get("change_type"), float(r["area_m2"]), float(r["area_mu"]),
                     _plain(r.get("confidence")), r.get("admin_code"), r.get("admin_name"),
                     _plain(r.get("centroid_lon")), _plain(r.get("centroid_lat")), *b,
                     json.dumps(attrs, ensure_ascii=False), wkb.dumps(geom),
                     match[0] if match else None,
                     stored(cb, self.path) if cb.exists() else None, stored(ca, self.path) if ca.exists() else None,
                     stored(path, self.path), _now()))
                if match is None:
                    to, note = "pending", None
                    added += 1
                else:
                    prev_id, prev_area, prev_class, prev_state = match
                    grew = (geom.area - prev_area) / max(prev_area, 1e-9)
                    changed = r["class"] != prev_class
                    if grew > self.config.regrow_share or changed:
                        to = "pending"
                        why = f"grew {grew:.0%}" if grew > self.config.regrow_share else f"class was {prev_class}"
                        note = f"same case as {prev_id} ({prev_state}); {why}"
                        rereview += 1
                    else:
                        to, note = "linked", f"same case as {prev_id} ({prev_state}), unchanged"
                        linked += 1
                append_event(db, pid, NEW, to, None, note, reviewer)
            period = gdf["period"].iloc[0] if len(gdf) else None
            db.execute("INSERT INTO imports VALUES (?,?,?,?,?,?,?)",
                       (sha, str(path), period, _now(), added, linked, rereview))
        return ImportResult(added, linked, rereview, skipped, updated=updated)

    def _match(self, db: sqlite3.Connection, geom, period: str):
        """The most recent patch of another period that is the same place, or None."""
        minx, miny, maxx, maxy = geom.bounds
        rows = db.execute(
            "SELECT p.patch_id, p.area_m2, p.class, p.geom, p.period, c.state FROM patches p "
            "JOIN current c ON c.patch_id = p.patch_id "
            "WHERE p.period < ? AND p.maxx >= ? AND p.minx <= ? AND p.maxy >= ? AND p.miny <= ? "
            "ORDER BY p.period DESC, p.patch_id", (period, minx, maxx, miny, maxy)).fetchall()
        for row in rows:
            other = wkb.loads(row["geom"])
            if overlap(geom, other, self.config.match_iou, self.config.match_share) > 0:
                return row["patch_id"], other.area, row["class"], row["state"]
        return None

    def issued(self, period: str, crs=None) -> list[Issued]:
        """The ids the ledger holds for ``period`` with their places (in ``crs``), to issue ids with
        (:mod:`satcheck.patch_ids`: a place under review keeps its id)."""
        rows = self.db.execute("SELECT patch_id, period, geom, imported_at FROM patches WHERE period=? "
                               "ORDER BY patch_id", (period,)).fetchall()
        geoms = [wkb.loads(r["geom"]) for r in rows]
        if crs is not None and self.crs:
            geoms = reproject(geoms, self.crs, crs)
        return [Issued(r["patch_id"], r["period"], g, True, r["imported_at"]) for r, g in zip(rows, geoms)]

    # ------------------------------------------------------------------ reading
    def state(self, patch_id: str) -> str:
        row = self.db.execute("SELECT state FROM current WHERE patch_id=?", (patch_id,)).fetchone()
        if row is None:
            raise LedgerError(f"{self.path}: no patch '{patch_id}'; list them with 'satcheck review list {self.path}'")
        return row[0]

    def patches(self, period: str | None = None, cls: str | None = None, state: str | None = None,
                admin: str | None = None, min_area: float | None = None) -> list[dict]:
        q = ("SELECT p.patch_id, p.period, p.class, p.change_type, p.area_m2, p.area_mu, p.confidence, p.admin_code, "
             "p.admin_name, p.centroid_lon, p.centroid_lat, p.prev_patch_id, c.state, c.at, c.reviewer, c.reason "
             "FROM patches p JOIN current c ON c.patch_id = p.patch_id WHERE 1=1")
        args: list = []
        for cond, val in (("p.period = ?", period), ("p.class = ?", cls), ("c.state = ?", state),
                          ("p.admin_code LIKE ?", f"{admin}%" if admin else None), ("p.area_m2 >= ?", min_area)):
            if val is not None:
                q += f" AND {cond}"
                args.append(val)
        q += " ORDER BY p.period, p.patch_id"
        return [dict(r) for r in self.db.execute(q, args).fetchall()]

    def patch(self, patch_id: str) -> dict:
        row = self.db.execute("SELECT p.*, c.state FROM patches p JOIN current c ON c.patch_id = p.patch_id "
                              "WHERE p.patch_id=?", (patch_id,)).fetchone()
        if row is None:
            raise LedgerError(f"{self.path}: no patch '{patch_id}'; list them with 'satcheck review list {self.path}'")
        d = dict(row)
        d["attrs"] = json.loads(d["attrs"])
        g = wkb.loads(d.pop("geom"))
        d["geometry"] = shapely.to_geojson(_to_lonlat(g, self.crs))
        d["history"] = [e.__dict__ for e in self.history(patch_id)]
        return d

    def history(self, patch_id: str) -> list[Event]:
        rows = self.db.execute("SELECT * FROM events WHERE patch_id=? ORDER BY id", (patch_id,)).fetchall()
        return [Event(**dict(r)) for r in rows]

    def geodataframe(self, **filters) -> gpd.GeoDataFrame:
        rows = self.patches(**filters)
        stored = {r[0]: (r[1], r[2]) for r in self.db.execute("SELECT patch_id, geom, attrs FROM patches")}
        geoms, attrs = [], []
        for r in rows:
            geom, attr = stored[r["patch_id"]]
            geoms.append(wkb.loads(geom))
            a = json.loads(attr)
            a.update({"status": r["state"], "prev_patch_id": r["prev_patch_id"], "decided_by": r["reviewer"],
                      "decided_at": r["at"], "reason": r["reason"]})
            attrs.append(a)
        return gpd.GeoDataFrame(attrs, geometry=geoms, crs=self.crs)

    # ------------------------------------------------------------------ decisions
    def decide(self, patch_id: str, to: str, reviewer: str, reason: str | None = None, note: str | None = None,
               expected: str | None = None) -> Event:
        """Append a decision; ``expected`` is the state the reviewer saw (conflict if it moved on)."""
        if not reviewer:
            raise TransitionError(f"{patch_id}: a decision needs a reviewer name (--by)")
        with self._tx() as db:
            row = db.execute("SELECT state, reviewer, at FROM current WHERE patch_id=?", (patch_id,)).fetchone()
            if row is None:
                raise LedgerError(f"{self.path}: no patch '{patch_id}'")
            current = row["state"]
            if expected is not None and current != expected:
                raise ConflictError(f"{patch_id}: {row['reviewer']} set it to {current} at {row['at']} after you "
                                    f"opened it as {expected}; reload and decide again")
            check(patch_id, current, to, reason, self.reasons)
            return append_event(db, patch_id, current, to, reason or None, note or None, reviewer)

    def bulk(self, csv_path: str | Path, reviewer: str) -> list[Event]:
        """Decisions from a CSV (patch_id, decision, reason, note): all or nothing.

        ``reopen`` undoes the patch's latest decision, as ``satcheck review reopen`` does (one made earlier in the
        same CSV too): it goes back to the state before, with reason ``undo``.
        """
        from satcheck.review.csvfile import read_rows
        from satcheck.review.states import DECISIONS, FIELD_RESULTS
        from satcheck.review.undo import UNDO, undo_target

        path = Path(csv_path)
        rows = read_rows(path)  # UTF-8, UTF-8 with BOM or GB18030; else a one-line error
        plan = []
        with self._tx() as db:
            histories: dict[str, list[Event]] = {}  # of each patch in the CSV, with the rows planned so far
            for i, r in enumerate(rows, start=2):
                pid = (r.get("patch_id") or "").strip()
                decision = (r.get("decision") or "").strip()
                to = DECISIONS.get(decision, decision if decision in FIELD_RESULTS else None)
                reason = (r.get("reason") or "").strip() or None
                try:
                    if pid not in histories:
                        histories[pid] = [Event(**dict(e)) for e in db.execute(
                            "SELECT * FROM events WHERE patch_id=? ORDER BY id", (pid,))]
                    history = histories[pid]
                    if not history:
                        raise TransitionError(f"no patch '{pid}'")
                    if to is None:
                        raise TransitionError(f"'{decision}' is not a decision (accept, reject, defer, reopen, "
                                              f"{', '.join(FIELD_RESULTS)})")
                    current = history[-1].to_state
                    if decision == "reopen":
                        to, reason = undo_target(pid, history, str(self.path)).from_state, UNDO
                    else:
                        check(pid, current, to, reason, self.reasons)
                except SatcheckError as exc:
                    raise TransitionError(f"{path}: row {i}: {exc}; nothing was applied") from None
                note = (r.get("note") or "").strip() or None
                history.append(Event(0, pid, current, to, reason, note, reviewer, ""))
                plan.append((pid, current, to, reason, note))
            return [append_event(db, pid, frm, to, reason, note, reviewer) for pid, frm, to, reason, note in plan]

    def progress(self, period: str | None = None) -> tuple[int, int]:
        """(reviewed, total) among patches that entered review."""
        q = ("SELECT c.state FROM patches p JOIN current c ON c.patch_id = p.patch_id "
             "WHERE (? IS NULL OR p.period = ?) AND c.state != 'linked'")
        states = [r[0] for r in self.db.execute(q, (period, period)).fetchall()]
        return sum(s not in ("pending", "deferred") for s in states), len(states)


def _refresh(db: sqlite3.Connection, pid: str, r, path: Path, ledger: Path) -> bool:
    """Give a known patch that is still as imported (pending, no decision) the file's outline and attributes."""
    row = db.execute("SELECT p.attrs, c.state, (SELECT COUNT(*) FROM events e WHERE e.patch_id = p.patch_id) AS n "
                     "FROM patches p JOIN current c ON c.patch_id = p.patch_id WHERE p.patch_id=?", (pid,)).fetchone()
    attrs = json.dumps({k: _plain(v) for k, v in r.items() if k != "geometry"}, ensure_ascii=False)
    if row["state"] != "pending" or row["n"] != 1 or row["attrs"] == attrs:
        return False
    geom = r.geometry
    db.execute("UPDATE patches SET class=?, change_type=?, area_m2=?, area_mu=?, confidence=?, admin_code=?, "
               "admin_name=?, centroid_lon=?, centroid_lat=?, minx=?, miny=?, maxx=?, maxy=?, attrs=?, geom=?, "
               "source=? WHERE patch_id=?",
               (r["class"], r.get("change_type"), float(r["area_m2"]), float(r["area_mu"]), _plain(r.get("confidence")),
                r.get("admin_code"), r.get("admin_name"), _plain(r.get("centroid_lon")), _plain(r.get("centroid_lat")),
                *geom.bounds, attrs, wkb.dumps(geom), stored(path, ledger), pid))
    return True


def _statements(script: str) -> list[str]:
    out, buf = [], []
    for line in script.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and (not joined.upper().startswith("CREATE TRIGGER") or joined.upper().endswith("END;")):
            out.append(joined)
            buf = []
    return out


def _plain(v):
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _to_lonlat(geom, crs: str | None):
    if not crs:
        return geom
    t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
