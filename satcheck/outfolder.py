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
from typing import Iterable

from satcheck.atomic import atomic_path
from satcheck.errors import OutputError, SatcheckError

MARKER = "INCOMPLETE.txt"
# Files at the top of a run's folder that not every run writes (patches and exports only with rule layers, the
# sheets only when configured, the PDF not when it fails): what an earlier run may leave that a later one does
# not replace. The patch id registry is not among them: ids are meant to outlive runs.
SHAPEFILE_SIDECARS = ("dbf", "shx", "prj", "cpg")  # written with patches.shp, which alone is named among the outputs
OPTIONAL_FILES = ("patches.gpkg", "patches.geojson", "patches.kml", "patches.csv", "patches.xlsx", "field_sheet.html",
                  "field_sheet.pdf", "patches.shp", *(f"patches.{x}" for x in SHAPEFILE_SIDECARS))


class IncompleteOutputError(SatcheckError, ValueError):
    """An output folder holds the files of a run that did not finish (:data:`MARKER`)."""


def begin(out: str | os.PathLike) -> str:
    """Mark ``out`` incomplete for a new run; returns the run's id (run.json names it once the run is done)."""
    out = Path(out)
    now = dt.datetime.now(dt.timezone.utc)
    started, run_id = now.isoformat(timespec="seconds"), f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
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


def remove_stale(out: str | os.PathLike, written: Iterable[str | os.PathLike], tiles: Iterable[str]) -> list[Path]:
    """Remove what an earlier run left in ``out`` that this run did not write; returns what was removed.

    ``written``: the files this run wrote (a Shapefile: its .shp); ``tiles``: the tiles whose probability COGs
    (``probability/<tile>.tif``) are this run's. A run without rule layers after one with them leaves no patches
    of the other behind, nor a sheet that failed this time an earlier run's sheet.
    """
    out = Path(out)
    names = {Path(w).name for w in written}
    if "patches.shp" in names:
        names.update(f"patches.{x}" for x in SHAPEFILE_SIDECARS)
    keep = set(tiles)
    stale = [out / n for n in OPTIONAL_FILES if n not in names and (out / n).is_file()]
    stale += [f for f in sorted((out / "probability").glob("*.tif")) if f.stem not in keep]
    for f in stale:
        try:
            f.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(f"{f}: left by an earlier run and cannot be removed ({exc.strerror or exc}); remove it "
                              "by hand and run again, or choose another --out") from None
    return stale


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
