"""Portable ledgers: files a ledger refers to (chips, the patches file) are stored relative to its folder.

A ledger and its run folders can then move or be copied together (another disk, another machine).
``review import`` stores them so (:func:`stored`). Older ledgers stored absolute paths; :func:`resolve` still
finds such a file after a move when it sits at the same place relative to the ledger, and
:func:`make_portable` rewrites the paths that it can.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the ledger stores paths with stored(): no import at run time
    from satcheck.review.ledger import Ledger


def stored(path: str | Path, ledger_path: str | Path) -> str:
    """How the ledger at ``ledger_path`` records ``path``: relative to its folder, with '/'."""
    p = Path(path).resolve()
    base = Path(ledger_path).resolve().parent
    try:
        return Path(os.path.relpath(p, base)).as_posix()
    except ValueError:  # another drive (Windows): nothing relative exists
        return str(p)


def resolve(value: str | None, ledger_path: str | Path) -> Path | None:
    """The file a stored path means now, or where it was expected when it is gone; None if none was stored."""
    if not value:
        return None
    base = Path(ledger_path).parent
    p = PurePath(value)
    if not p.is_absolute():
        return base / Path(value)
    if Path(value).exists():
        return Path(value)
    parts = p.parts[1:]  # an absolute path from before a move: look for its tail beside the ledger
    for i in range(len(parts)):
        cand = base.joinpath(*parts[i:])
        if cand.exists():
            return cand
    return Path(value)


@dataclass(frozen=True)
class Chip:
    which: str
    path: Path | None  # None: the run made no chip for this patch

    @property
    def ok(self) -> bool:
        return self.path is not None and self.path.is_file()

    @property
    def missing(self) -> bool:
        """A chip was recorded but its file is not there (a run folder moved or was deleted)."""
        return self.path is not None and not self.path.is_file()

    def as_dict(self) -> dict:
        return {"ok": self.ok, "missing": self.missing, "path": str(self.path) if self.path else None}


def chips(lg: Ledger, patch_id: str) -> dict[str, Chip]:
    """The before, after and locator images of a patch, found wherever the ledger's folder is now."""
    row = lg.db.execute("SELECT chip_before, chip_after FROM patches WHERE patch_id=?", (patch_id,)).fetchone()
    if row is None:
        return {w: Chip(w, None) for w in ("before", "after", "locator")}
    before, after = resolve(row[0], lg.path), resolve(row[1], lg.path)
    locator = None
    if before is not None and before.name.endswith("_before.png"):
        cand = before.with_name(before.name[: -len("_before.png")] + "_locator.png")
        locator = cand if cand.is_file() else None
    return {"before": Chip("before", before), "after": Chip("after", after), "locator": Chip("locator", locator)}


def make_portable(lg: Ledger) -> int:
    """Rewrite absolute paths of files that exist as paths relative to the ledger's folder; returns how many rows."""
    n = 0
    with lg.transaction() as db:
        rows = db.execute("SELECT patch_id, chip_before, chip_after, source FROM patches").fetchall()
        for pid, *vals in rows:
            new = [_portable(v, lg.path, i == 2) for i, v in enumerate(vals)]
            if new != list(vals):
                db.execute("UPDATE patches SET chip_before=?, chip_after=?, source=? WHERE patch_id=?", (*new, pid))
                n += 1
    return n


def _portable(value: str | None, ledger_path: Path, typed: bool) -> str | None:
    if not value:
        return value
    if PurePath(value).is_absolute():
        found = resolve(value, ledger_path)
        return stored(found, ledger_path) if found is not None and found.exists() else value
    if typed and Path(value).exists() and not (ledger_path.parent / value).exists():
        return stored(value, ledger_path)  # the patches file as typed, relative to the working folder
    return value
