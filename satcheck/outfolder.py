"""Whether an output folder is whole: every file in it from one run that finished.

A run (``satcheck run``, a ``batch``) writes :data:`MARKER` into its folder before it writes or replaces any
output there, and removes it once its last output (``run.json``) is in place. Files are replaced one at a time,
each atomically, so a run that fails half-way (an error, a full disk, kill -9) leaves new files beside the
earlier run's; the marker says so, and what reads an output folder (``review import``, ``export``, ``score``,
a batch's resume) refuses it with :class:`IncompleteOutputError` until a run into it finishes. A folder
without the marker is complete, also one no run wrote (a patches.gpkg made by hand, a copy).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

from satcheck.atomic import atomic_path
from satcheck.errors import SatcheckError

MARKER = "INCOMPLETE.txt"


class IncompleteOutputError(SatcheckError, ValueError):
    """An output folder holds the files of a run that did not finish (:data:`MARKER`)."""


def begin(out: str | os.PathLike) -> str:
    """Mark ``out`` incomplete for a new run; returns the run's id (run.json names it once the run is done)."""
    out = Path(out)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    run_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    # Plain words for whoever opens the folder; readers only look for the file. The id on the first line.
    with atomic_path(out / MARKER) as tmp:
        tmp.write_text(f"{run_id}\nThe satcheck run {run_id}, started {started} into this folder, did not finish "
                       "(it failed or was stopped, or it is still running): the files here may be half from an "
                       "earlier run. Run it again into this folder; a run that finishes removes this file.\n",
                       encoding="utf-8")
    return run_id


def run_id(out: str | os.PathLike) -> str | None:
    """The id of the run writing ``out`` now (of its :data:`MARKER`), None where none is."""
    try:
        return (Path(out) / MARKER).read_text(encoding="utf-8").split("\n", 1)[0].strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def seal(out: str | os.PathLike) -> None:
    """``out`` is complete: its run wrote its last output."""
    (Path(out) / MARKER).unlink(missing_ok=True)


def is_complete(out: str | os.PathLike) -> bool:
    return not (Path(out) / MARKER).exists()


def check_complete(path: str | os.PathLike) -> None:
    """Refuse ``path`` (an output folder, or a file in one) while its folder is marked incomplete."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not is_complete(folder):
        raise IncompleteOutputError(
            f"{path}: the run writing {folder} did not finish ({MARKER} is there; or it is still running), so its "
            f"files may be half from an earlier run; run it again into {folder}, then use its outputs")
