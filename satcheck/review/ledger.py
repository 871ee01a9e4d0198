"""The review ledger: every patch of every period and every decision on it, in one SQLite file.

Decisions are append-only events (patch, from, to, reason, note, reviewer,
time); a patch's state is its latest event.  Triggers refuse any UPDATE or
DELETE of events, and the tool offers no way to edit them.  Writes are
short ``BEGIN IMMEDIATE`` transactions in WAL mode, so two reviewers on
one ledger lose nothing, and a process killed mid-write leaves the last
committed state.  The schema is versioned (:mod:`satcheck.review.schema`
upgrades older ledgers in place); a ledger whose tables or columns are not those
of its schema version (damaged, or edited by hand) is refused when opened.

A write waits up to :data:`BUSY_TIMEOUT_S` for another writer's lock, then fails with
:class:`LedgerBusyError`; ``on_wait``, where given, is called once when it has waited
:data:`WAIT_NOTICE_S` (the command line says so: the library prints nothing).  Importing a run's
patches is :mod:`satcheck.review.importing`; decisions from a CSV, :mod:`satcheck.review.bulk`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import shapely
from pyproj import Transformer
from shapely import wkb

from satcheck.config import ReviewConfig
from satcheck.errors import SatcheckError
from satcheck.patch_ids import Issued, reproject
from satcheck.review import schema
from satcheck.review.schema import SCHEMA_VERSION
from satcheck.review.states import ConflictError, TransitionError, check

if TYPE_CHECKING:
    from satcheck.review.importing import ImportResult

BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's write lock
# A wait shorter than this is one of an import's short transactions, not worth a word; a longer one would look hung.
WAIT_NOTICE_S = 1.0


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
    def __init__(self, path: str | Path, config: ReviewConfig = ReviewConfig(), create: bool = True,
                 check_pages: bool = True, on_wait: Callable[[float], None] | None = None):
        """``on_wait(seconds_left)``: called once per write that has waited :data:`WAIT_NOTICE_S` for another
        process's write lock, before it waits on."""
        self.path = Path(path)
        self.config = config
        self.on_wait = on_wait
        self._create = create
        if not self.path.exists() and not create:
            raise LedgerError(f"{self.path}: ledger not found; create it with 'satcheck review import {self.path} PATCHES'")
        if not create and self.path.is_file() and self.path.stat().st_size == 0:
            raise LedgerError(f"{self.path}: an empty file, not a satcheck ledger; pass a ledger file, or import "
                              "patches into it to start one")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"{self.path}: its folder cannot be made ({exc.strerror or exc}); pass a ledger path in a "
                              "writable folder") from None
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
        if check_pages:  # off only where one process opens it many times and checked it once (the web page)
            self._check_pages()

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def transaction(self, convert: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it or nothing; SQLite errors become one-line :class:`LedgerError`
        (``convert``; a busy ledger always does). For the review modules that write several rows at once (import,
        bulk decisions, undo, chip paths)."""
        try:
            self._begin()
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

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for the write lock as long as the connection's busy timeout says (the
        page sets a shorter one), in two steps where :attr:`on_wait` is set: it hears of a wait in between."""
        total_ms = self.db.execute("PRAGMA busy_timeout").fetchone()[0] if self.on_wait else 0
        notice_ms = int(WAIT_NOTICE_S * 1000)
        if total_ms <= notice_ms:
            self.db.execute("BEGIN IMMEDIATE")
            return
        try:
            self.db.execute(f"PRAGMA busy_timeout={notice_ms}")
            try:
                self.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
            self.on_wait((total_ms - notice_ms) / 1000)
            self.db.execute(f"PRAGMA busy_timeout={total_ms - notice_ms}")
            self.db.execute("BEGIN IMMEDIATE")
        finally:
            self.db.execute(f"PRAGMA busy_timeout={total_ms}")

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

    def _check_pages(self) -> None:
        found = schema.damaged_pages(self.db)
        if found:
            raise LedgerError(f"{self.path}: damaged ledger file ({found}); nothing was changed; restore it from a "
                              "backup (satcheck cannot repair a ledger)")

    def _check_schema(self) -> None:
        """Refuse a ledger whose tables, views, triggers or columns are not those of its schema version."""
        try:
            found = schema.problems(self.db)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not a satcheck ledger ({exc}); pass a ledger file or a new path") from None
        if found:
            raise LedgerError(f"{self.path}: damaged ledger: {'; '.join(found)} (schema {SCHEMA_VERSION}); nothing "
                              "was changed; restore it from a backup")

    def _migrate(self) -> None:
        version = schema.version(self.db)
        if version == 0:
            # SQLite takes an empty file, or any other database, for a new one: the schema would be written into
            # a file that was never a ledger (someone else's database, a file cut to nothing).
            tables = self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise LedgerError(f"{self.path}: an SQLite database, but not a satcheck ledger (it holds other "
                                  "tables); pass a ledger file or a new path")
            if not self._create:
                raise LedgerError(f"{self.path}: not a satcheck ledger (no ledger tables); pass a ledger file, or "
                                  "import patches into a new path to start one")
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{self.path}: ledger schema {version} is newer than this satcheck ({SCHEMA_VERSION}); "
                              "upgrade satcheck")
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction(convert=False) as db:  # a failure here: not a ledger (the caller says so)
                schema.upgrade(db, v)

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
    def import_patches(self, path: str | Path, reviewer: str = "import") -> "ImportResult":
        """Add a period's patches; link those that continue a known case
        (:func:`satcheck.review.importing.import_patches`)."""
        # Imported here: importing builds on this module, so at the top it would be a cycle.
        from satcheck.review.importing import import_patches

        return import_patches(self, path, reviewer)

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

    # ------------------------------------------------------------------ decisions
    def decide(self, patch_id: str, to: str, reviewer: str, reason: str | None = None, note: str | None = None,
               expected: str | None = None) -> Event:
        """Append a decision; ``expected`` is the state the reviewer saw (conflict if it moved on)."""
        if not reviewer:
            raise TransitionError(f"{patch_id}: a decision needs a reviewer name (--by)")
        with self.transaction() as db:
            return self._decide(db, patch_id, to, reviewer, reason, note, expected)

    def decide_many(self, patch_ids: list[str], to: str, reviewer: str, reason: str | None = None,
                    note: str | None = None) -> list[Event]:
        """The same decision on several patches in one transaction: all of them, or none if any cannot be
        decided (an unknown id, a decision its state does not allow); an id given twice is decided once."""
        if not reviewer:
            raise TransitionError("a decision needs a reviewer name (--by)")
        ids = list(dict.fromkeys(patch_ids))
        with self.transaction() as db:
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
        """Decisions from a CSV, all or nothing (:func:`satcheck.review.bulk.apply_csv`)."""
        from satcheck.review.bulk import apply_csv  # it builds on this module: at the top, a cycle

        return apply_csv(self, csv_path, reviewer)

    def progress(self, period: str | None = None) -> tuple[int, int]:
        """(reviewed, total) among patches that entered review."""
        q = ("SELECT c.state FROM patches p JOIN current c ON c.patch_id = p.patch_id "
             "WHERE (? IS NULL OR p.period = ?) AND c.state != 'linked'")
        states = [r[0] for r in self.db.execute(q, (period, period)).fetchall()]
        return sum(s not in ("pending", "deferred") for s in states), len(states)


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


def _latest(db: sqlite3.Connection, patch_id: str) -> sqlite3.Row | None:
    """A patch's latest event (its current state), by the events index; None: no such patch.

    The ``current`` view groups every event of the ledger; this reads one patch's.
    """
    return db.execute("SELECT * FROM events WHERE patch_id=? ORDER BY id DESC LIMIT 1", (patch_id,)).fetchone()


def _to_lonlat(geom, crs: str | None):
    if not crs:
        return geom
    t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
