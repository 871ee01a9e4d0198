"""How far a run or batch has got: ``progress(stage, done, total)``, called as work goes.

The library only calls the function; the command line draws it (a bar on a terminal, plain lines otherwise,
:mod:`satcheck.cli_progress`).  Each stage is announced with ``done == 0`` before its work starts and ends with
``done == total``; ``done`` never passes ``total``.  What the numbers count depends on the stage (:data:`UNITS`).
"""

from __future__ import annotations

from typing import Callable

Progress = Callable[[str, int, int], None]  # (stage, done, total)

# Stages in the order they run, and what one unit of their numbers is.
UNITS: dict[str, str] = {
    "detection": "pixel",          # satcheck run: pixels of the tile pairs scored
    "tiles": "tile",               # satcheck batch: tiles done or failed, of those to do now
    "changes": "piece",            # pieces of every window and tile merged into change polygons
    "patches": "change polygon",   # made into patches; patches.gpkg and the field files written
    "chips": "patch",              # before/after chips and the locator, one patch at a time
    "sheets": "file",              # field_sheet.html and field_sheet.pdf
    "import": "patch",             # a batch's ledger import
}


def report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    """Call ``progress`` if there is one, with ``done`` held to ``0..total``."""
    if progress is not None:
        total = max(int(total), 0)
        progress(stage, min(max(int(done), 0), total), total)
