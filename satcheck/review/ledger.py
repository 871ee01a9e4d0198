"""The review ledger: every patch of every period and every decision on it, in one SQLite file.

Decisions are append-only events (patch, from, to, reason, note, reviewer,
time); a patch's state is its latest event.  Triggers refuse any UPDATE or
DELETE of events, and the tool offers no way to edit them.  Writes are
short ``BEGIN IMMEDIATE`` transactions in WAL mode, so two reviewers on
one ledger lose nothing, and a process killed mid-write leaves the last
committed state.  The schema is versioned; :data:`MIGRATIONS` upgrades
older ledgers in place.  A ledger whose tables or columns are not those of its
schema version (damaged, or edited by hand) is refused when opened.

A write waits up to :data:`BUSY_TIMEOUT_S` for another writer's lock, then fails with
:class:`LedgerBusyError`; an import writes in transactions of :data:`IMPORT_CHUNK` patches, so decisions
made meanwhile wait a fraction of a second, and a killed import resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
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

BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's write lock
IMPORT_CHUNK = 200  # patches per import transaction: the write lock is held well under a second at a time
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


class LedgerBusyError(LedgerError, TimeoutError):
    """Another process held the ledger's write lock for longer than :data:`BUSY_TIMEOUT_S`; nothing was changed."""


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
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._migrate()
        except LedgerError:
            raise
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc) or "full" in str(exc):
                raise self._db_error(exc) from None
            raise LedgerError(f"{self.path}: not a satcheck ledger ({exc}); pass a ledger file or a new path") from None
        self._check_schema()

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _tx(self, convert: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it or nothing; SQLite errors become one-line :class:`LedgerError`
        (``convert``; a busy ledger always does)."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if convert or _is_busy(exc):
                raise self._db_error(exc) from None
            raise
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as exc:
            # SQLite rolls back by itself on some errors (a full disk): a second ROLLBACK would fail with "no
            # transaction is active" and hide the real cause.
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and (convert or _is_busy(exc)):
                raise self._db_error(exc) from None
            raise

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Reads that see one state of the ledger, without the write lock (WAL: writers go on meanwhile)."""
        self.db.execute("BEGIN")
        try:
            yield self.db
        finally:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def _db_error(self, exc: sqlite3.Error) -> LedgerError:
        """A SQLite error during a write as a one-line error saying what to do; nothing of the write was kept."""
        msg = str(exc)
        if _is_busy(exc):
            return LedgerBusyError(f"{self.path}: the ledger is busy: another process (an import, another reviewer) "
                                   f"held its write lock for over {BUSY_TIMEOUT_S:g} s; nothing was changed; run the "
                                   "command again in a moment")
        if "full" in msg:
            return LedgerError(f"{self.path}: the disk is full ({msg}); the write under way was not kept; free some "
                               "space and run the command again (an import goes on where it stopped)")
        if "readonly" in msg or "read-only" in msg:
            return LedgerError(f"{self.path}: the ledger cannot be written ({msg}); nothing was changed; make the file "
                               "and its folder writable")
        if "no such" in msg or "has no column" in msg:
            return LedgerError(f"{self.path}: damaged ledger ({msg}); nothing was changed; restore it from a backup")
        return LedgerError(f"{self.path}: the ledger could not be written ({msg}); nothing was changed")

    def _check_schema(self) -> None:
        """Refuse a ledger whose tables, views, triggers or columns are not those of its schema version."""
        try:
            have = _schema(self.db)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not a satcheck ledger ({exc}); pass a ledger file or a new path") from None
        problems = []
        for name, (kind, cols) in _expected_schema().items():
            if name not in have:
                problems.append(f"no {kind} '{name}'")
                continue
            missing = [c for c in cols if c not in have[name][1]]
            if missing:
                problems.append(f"{kind} '{name}' lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if problems:
            raise LedgerError(f"{self.path}: damaged ledger: {'; '.join(problems)} (schema {SCHEMA_VERSION}); nothing "
                              "was changed; restore it from a backup")

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
            with self._tx(convert=False) as db:  # a failure here: not a ledger (the caller says so)
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

        The patches go in by transactions of :data:`IMPORT_CHUNK`, so that decisions made meanwhile wait well
        under a second; how far the import got is written with each, so an import killed half-way resumes where
        it stopped when run again (nothing lost, nothing twice, the same counts as one uninterrupted import).
        """
        path = Path(path)
        data = path.read_bytes() if path.is_file() else b""
        sha = hashlib.sha256(data).hexdigest()
        if self.db.execute("SELECT 1 FROM imports WHERE sha256=?", (sha,)).fetchone():
            return ImportResult(0, 0, 0, 0, already_imported=True)
        gdf = read_patches(path)
        chips = path.parent / "chips"
        crs = self.crs
        if crs is None:
            crs = gdf.crs.to_string() if gdf.crs else "EPSG:4547"
            with self._tx() as db:
                db.execute("INSERT OR IGNORE INTO meta VALUES ('crs', ?)", (crs,))
            crs = self.crs  # another import may have set it first
        if len(gdf) and gdf.crs is not None and gdf.crs.to_string() != crs:
            gdf = gdf.to_crs(crs)
        # Every class: a known id may have become approved or other_change. A read, no lock: each transaction
        # below checks its own patches again, against what other imports may have added meanwhile.
        with self._snapshot():  # no write lock: the check, and the count of patches it was made against
            check_places(self.db, self.path, self.config, path, gdf)
            known = self.db.execute("SELECT COUNT(*) FROM patches").fetchone()[0]
        ids = set(gdf["patch_id"])
        gdf = gdf[gdf["class"].isin(self.config.classes)].reset_index(drop=True)
        key = f"import:{sha}"
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        # How far an earlier attempt at this file got (it was killed); with other review classes it starts afresh.
        done = json.loads(row[0]) if row else {}
        classes = sorted(self.config.classes)
        if done.get("classes") != classes:
            done = {}
        counts = {k: int(done.get(k, 0)) for k in ("rows", "added", "linked", "rereview", "skipped", "updated")}
        earlier = _Places(self.db, gdf["period"].max() if len(gdf) else None)
        start = counts["rows"]
        source = stored(path, self.path)
        chip_dir = stored(chips, self.path)  # the chips as stored: relative to the ledger, like the source
        names = {c.name for c in chips.iterdir()} if chips.is_dir() else set()
        chip_files = _ChipNames(names, chip_dir)
        records = _records(gdf)
        while True:
            chunk = gdf.iloc[start:start + IMPORT_CHUNK]
            # Outside the lock: what each new patch links to, its record.
            planned = [self._plan(r, source, chip_files, earlier) for r in records[start:start + IMPORT_CHUNK]]
            last = start + len(chunk) >= len(gdf)
            with self._tx() as db:
                if db.execute("SELECT COUNT(*) FROM patches").fetchone()[0] != known and len(chunk):
                    # Another import wrote meanwhile: check this chunk again against what is there now.
                    check_places(db, self.path, self.config, path, chunk, ids)
                for r, record, prev in planned:
                    pid = r["patch_id"]
                    if db.execute("SELECT 1 FROM patches WHERE patch_id=?", (pid,)).fetchone():
                        # the same place (checked above), imported before
                        counts["updated" if _refresh(db, pid, r, path, self.path) else "skipped"] += 1
                        continue
                    to, note, kind = self._link(db, r, prev)
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

    def _plan(self, r: dict, source: str, chip_files: dict[str, str], earlier: "_Places") -> tuple:
        """A new patch, its row of ``patches`` and the patch of an earlier period it continues (or None)."""
        pid, geom = r["patch_id"], r["geometry"]
        attrs = {k: _plain(v) for k, v in r.items() if k != "geometry"}
        prev = earlier.match(geom, r["period"], self.config.match_iou, self.config.match_share)
        record = (pid, r["period"], r["class"], r.get("change_type"), float(r["area_m2"]), float(r["area_mu"]),
                  _plain(r.get("confidence")), r.get("admin_code"), r.get("admin_name"),
                  _plain(r.get("centroid_lon")), _plain(r.get("centroid_lat")), *geom.bounds,
                  json.dumps(attrs, ensure_ascii=False), wkb.dumps(geom), prev[0] if prev else None,
                  chip_files.get(f"{pid}_before.png"), chip_files.get(f"{pid}_after.png"), source, _now())
        return r, record, prev

    def _link(self, db: sqlite3.Connection, r, prev) -> tuple[str, str | None, str]:
        """A new patch's first state, note and count: pending (new, or a known case back for review) or linked."""
        if prev is None:
            return "pending", None, "added"
        prev_id, prev_area, prev_class = prev
        latest = _latest(db, prev_id)
        prev_state = latest["to_state"] if latest else "?"
        grew = (r["geometry"].area - prev_area) / max(prev_area, 1e-9)
        if grew > self.config.regrow_share or r["class"] != prev_class:
            why = f"grew {grew:.0%}" if grew > self.config.regrow_share else f"class was {prev_class}"
            return "pending", f"same case as {prev_id} ({prev_state}); {why}", "rereview"
        return "linked", f"same case as {prev_id} ({prev_state}), unchanged", "linked"

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
        row = _latest(self.db, patch_id)
        if row is None:
            raise LedgerError(f"{self.path}: no patch '{patch_id}'; list them with 'satcheck review list {self.path}'")
        return row["to_state"]

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
            return self._decide(db, patch_id, to, reviewer, reason, note, expected)

    def decide_many(self, patch_ids: list[str], to: str, reviewer: str, reason: str | None = None,
                    note: str | None = None) -> list[Event]:
        """The same decision on several patches in one transaction: all of them, or none if any cannot be
        decided (an unknown id, a decision its state does not allow); an id given twice is decided once."""
        if not reviewer:
            raise TransitionError("a decision needs a reviewer name (--by)")
        ids = list(dict.fromkeys(patch_ids))
        with self._tx() as db:
            events = []
            for pid in ids:
                try:
                    events.append(self._decide(db, pid, to, reviewer, reason, note))
                except SatcheckError as exc:
                    raise _none_applied(exc, len(ids)) from None
            return events

    def _decide(self, db: sqlite3.Connection, patch_id: str, to: str, reviewer: str, reason: str | None,
                note: str | None, expected: str | None = None) -> Event:
        row = _latest(db, patch_id)
        if row is None:
            raise LedgerError(f"{self.path}: no patch '{patch_id}'; list them with 'satcheck review list {self.path}'")
        current = row["to_state"]
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


def _none_applied(exc: SatcheckError, n: int) -> SatcheckError:
    """``exc`` of one patch of a decision on ``n`` (the transaction rolled back), saying that none was applied."""
    if n == 1:
        return exc
    try:
        return type(exc)(f"{exc}; none of the {n} decisions was applied")
    except TypeError:  # an error type with other arguments
        return TransitionError(f"{exc}; none of the {n} decisions was applied")


def _is_busy(exc: sqlite3.Error) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _schema(db: sqlite3.Connection) -> dict[str, tuple[str, set[str]]]:
    """Tables, views and triggers of a database: name -> (kind, column names)."""
    out = {}
    for kind, name in db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger') "
                                 "AND name NOT LIKE 'sqlite_%'").fetchall():
        cols = set() if kind == "trigger" else {r[1] for r in db.execute(f'PRAGMA table_info("{name}")')}
        out[name] = (kind, cols)
    return out


@functools.lru_cache(maxsize=1)
def _expected_schema() -> dict[str, tuple[str, set[str]]]:
    """What :data:`MIGRATIONS` make, from an empty database in memory."""
    db = sqlite3.connect(":memory:")
    try:
        for v in range(1, SCHEMA_VERSION + 1):
            for stmt in _statements(MIGRATIONS[v]):
                db.execute(stmt)
        return _schema(db)
    finally:
        db.close()


def _latest(db: sqlite3.Connection, patch_id: str) -> sqlite3.Row | None:
    """A patch's latest event (its current state), by the events index; None: no such patch.

    The ``current`` view groups every event of the ledger; this reads one patch's.
    """
    return db.execute("SELECT * FROM events WHERE patch_id=? ORDER BY id DESC LIMIT 1", (patch_id,)).fetchone()


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
