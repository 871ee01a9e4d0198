"""The ledger's SQLite schema: the migrations that make each version, and the check that a file is what its
version says.

The check compares names of tables, views, triggers and columns with what :data:`MIGRATIONS` make in an empty
database, so a migration added here is checked without anything else to keep in step.
"""

from __future__ import annotations

import functools
import sqlite3

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


def version(db: sqlite3.Connection) -> int:
    """The schema version a database is at; 0: none (a new file)."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def upgrade(db: sqlite3.Connection, v: int) -> None:
    """Apply migration ``v`` (inside the caller's transaction)."""
    for stmt in _statements(MIGRATIONS[v]):
        db.execute(stmt)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(v),))


def problems(db: sqlite3.Connection) -> list[str]:
    """What a database lacks of its schema version's tables, views, triggers and columns; empty: nothing."""
    have = _schema(db)
    out = []
    for name, (kind, cols) in _expected_schema().items():
        if name not in have:
            out.append(f"no {kind} '{name}'")
            continue
        missing = [c for c in cols if c not in have[name][1]]
        if missing:
            out.append(f"{kind} '{name}' lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return out


def _schema(db: sqlite3.Connection) -> dict[str, tuple[str, set[str]]]:
    """Tables, views and triggers of a database: name -> (kind, column names)."""
    out = {}
    for kind, name in db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger') "
                                 "AND name NOT LIKE 'sqlite_%'").fetchall():
        cols = set() if kind == "trigger" else {r[1] for r in db.execute(f'PRAGMA table_info("{name}")')}
        out[name] = (kind, cols)
    return out


def damaged_pages(db: sqlite3.Connection) -> str | None:
    """The first damage ``PRAGMA quick_check`` finds in the file's pages; None: none.

    A query meets a damaged page only when it reads it ("database disk image is malformed", maybe long after a
    write went in beside it); the check reads every page once (about 30 ms for 13,000 patches).
    """
    try:
        rows = db.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as exc:  # damage the check cannot even step over
        return str(exc) or type(exc).__name__
    found = [line for r in rows for line in str(r[0]).splitlines() if line.strip() and not line.startswith("***")]
    if found == ["ok"]:
        return None
    return found[0] if found else "damaged pages"


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


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one: a trigger's body has semicolons of its own, so it ends at END;."""
    out, buf = [], []
    for line in script.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and (not joined.upper().startswith("CREATE TRIGGER") or joined.upper().endswith("END;")):
            out.append(joined)
            buf = []
    return out
