"""Pairs: which earlier tiles go with each later tile, and the part of its grid both dates cover.

A later tile pairs with every earlier tile whose footprint overlaps it, whatever their CRSs, resolutions and
tilings (:mod:`satcheck.align` reads them onto the later tile's grid). Tiles given as both dates, dates in the wrong
order and band counts the dates cannot share are refused here, before any pixel is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from satcheck.errors import BandMismatchError, DateOrderError, NoOverlapError, TileNameError
from satcheck.tiles import TileInfo, band_order_warning
from satcheck.windows import intersect


@dataclass(frozen=True)
class Pair:
    """A later tile and the earlier tiles that overlap it."""

    after: TileInfo
    befores: tuple[TileInfo, ...]
    window: Window  # the part of the later tile's grid covered by both dates
    note: str | None = None  # for the user: how the pair is read where its tiles differ (band counts)
    label: str | None = None  # the name, where the later tile's file name is not unique (see pair_names)

    @property
    def name(self) -> str:
        """What the pair's results are kept and reported under: its later tile's file name without suffix (after
        its folder's name where another later tile has that file name too)."""
        return self.label or self.after.path.stem

    @property
    def pixels(self) -> int:
        return int(self.window.width) * int(self.window.height)


def earlier_tiles(pairs: Sequence[Pair]) -> list[TileInfo]:
    """The earlier tiles of ``pairs``, each once, in the order of their paths."""
    return sorted({b for p in pairs for b in p.befores}, key=lambda t: str(t.path))


def pair_tiles(befores: Sequence[TileInfo], afters: Sequence[TileInfo]) -> list[Pair]:
    """Pair each later tile with the earlier tiles whose footprints overlap it."""
    _check_distinct(befores, afters)
    labels = pair_names(afters)
    pairs = []
    for a in afters:
        covered: list[TileInfo] = []
        win = None
        for b in befores:
            part = footprint(b, a)
            if part is None:
                continue
            covered.append(b)
            win = part if win is None else _union(win, part)
        if covered and win is not None:
            _check_date_order(covered, a)
            pairs.append(_common_bands(Pair(a, tuple(covered), win, label=labels.get(a.path))))
    if not pairs:
        raise NoOverlapError(
            f"{befores[0].path.parent if befores else '?'} and {afters[0].path.parent if afters else '?'}: "
            "no earlier tile overlaps any later tile; check that both dates show the same place")
    return pairs


def pair_warnings(pairs: Sequence[Pair], afters: Sequence[TileInfo] = ()) -> list[str]:
    """What the user should know about how the pairs are read (band counts, band order) and what of the later
    tiles ``afters`` is not compared for want of earlier imagery; each line once."""
    lines = [p.note for p in pairs] + [band_order_warning(t) for p in pairs for t in (*p.befores, p.after)]
    paired = {p.after.path for p in pairs}
    alone = [a.path.name for a in afters if a.path not in paired]
    if alone:
        names = ", ".join(alone[:5]) + (f" and {len(alone) - 5} more" if len(alone) > 5 else "")
        tiles = f"{len(alone)} later tile{'s' * (len(alone) > 1)}"
        lines.append(f"no earlier tile overlaps {tiles}, not compared: {names}; add the earlier imagery of that area")
    for p in pairs:
        outside = 1 - p.pixels / (p.after.width * p.after.height)
        if outside >= 0.05:
            lines.append(f"{p.after.path.name}: {outside:.0%} of it lies outside the earlier imagery and is not "
                         "compared")
    return list(dict.fromkeys(w for w in lines if w))


def _common_bands(pair: Pair) -> Pair:
    """The pair read with the bands both dates have: an RGB orthophoto against an R, G, B, NIR image is compared
    in red, green and blue; fewer than those three in common is an error."""
    a, tiles = pair.after, (pair.after, *pair.befores)
    n = min(t.count for t in tiles)
    if all(t.count == n for t in tiles):
        return pair
    odd = next(t for t in tiles if t.count != a.count)
    if n < 3:
        raise BandMismatchError(
            f"{odd.path}: has {odd.count} band{'s' * (odd.count != 1)} but {a.path} has {a.count}; both dates need "
            "red, green and blue (and NIR, if both have it) in the same order; a panchromatic date cannot be compared")
    left = ", ".join(t.path.name for t in tiles if t.count > n)
    shared = ", ".join(("red", "green", "blue", "NIR")[:n]) if n <= 4 else f"bands 1-{n}"
    note = (f"{odd.path.name} has {odd.count} bands, {a.path.name} {a.count}: compared on the first {n} ({shared}); "
            f"the other bands of {left} are not used")
    return Pair(a.first_bands(n), tuple(b.first_bands(n) for b in pair.befores), pair.window, note, pair.label)


def footprint(b: TileInfo, a: TileInfo) -> Window | None:
    """The part of ``a``'s grid that tile ``b`` covers (None: apart, or sharing only an edge)."""
    left, bottom, right, top = transform_bounds(b.crs, a.crs, *b.bounds, densify_pts=21)
    w = from_bounds(left, bottom, right, top, transform=a.transform)
    if not _overlaps(w, a.width, a.height):
        return None
    w = w.round_offsets(op="floor").round_lengths(op="ceil") if hasattr(w, "round_offsets") else w
    return intersect(Window(int(w.col_off), int(w.row_off), int(w.width) + 1, int(w.height) + 1),
                     Window(0, 0, a.width, a.height))


def _check_distinct(befores: Sequence[TileInfo], afters: Sequence[TileInfo]) -> None:
    """Refuse a tile given as both dates: compared with itself it shows no change anywhere."""
    def key(t: TileInfo):
        st = os.stat(t.path)
        return st.st_dev, st.st_ino  # the same file by another path (a link, a mount) too

    earlier = {key(b): b for b in befores}
    both = [a for a in afters if key(a) in earlier]
    if not both:
        return
    where = both[0].path.parent if len(both) == len(afters) == len(befores) else both[0].path
    raise DateOrderError(f"{where}: given as both the earlier and the later date, so it would be compared with itself "
                         "and show no change; pass the earlier imagery as BEFORE and the later as AFTER")


def shared_stems(paths: Iterable[Path]) -> set[str]:
    """File names (without suffix) that more than one of ``paths`` has."""
    seen: set[str] = set()
    shared: set[str] = set()
    for p in paths:
        (shared if p.stem in seen else seen).add(p.stem)
    return shared


def distinct_names(tiles: Sequence[TileInfo]) -> dict[Path, str]:
    """The tiles whose file name (without suffix) another of ``tiles`` has too, by their folder's name and theirs."""
    shared = shared_stems(t.path for t in tiles)
    return {t.path: f"{t.path.parent.name}_{t.path.stem}" for t in tiles if t.path.stem in shared}


def pair_names(afters: Sequence[TileInfo]) -> dict[Path, str]:
    """Names for later tiles whose file name another later tile has too (a glob over two folders, a STAC collection
    whose items all call their image ``visual.tif``): the folder's name and the file's, ``S2A_0412_visual``.

    A pair's results are kept under its name, so two of one name would overwrite each other; where even the folders
    share their names, the tiles are refused."""
    labels = distinct_names(afters)
    seen: dict[str, TileInfo] = {}
    for a in afters:
        other = seen.setdefault(labels.get(a.path, a.path.stem), a)
        if other is not a:
            raise TileNameError(f"{a.path}: has the name of the later tile {other.path} (with its folder's name too), "
                                "and a tile's results are kept under its name; rename one of them")
    return labels


def _check_date_order(befores: Sequence[TileInfo], after: TileInfo) -> None:
    # New construction seen backwards is demolition, which is not flagged: swapped dates would find nothing.
    for b in befores:
        if b.date and after.date and b.date > after.date:
            raise DateOrderError(
                f"{b.path}: dated {b.date} but pairs with the later tile {after.path.name} of {after.date}; the "
                "dates look swapped: pass the earlier date first (BEFORE AFTER)")


def _overlaps(w: Window, width: int, height: int, tol: float = 1e-6) -> bool:
    """Whether a fractional window covers some area of a ``width`` x ``height`` grid."""
    return (w.col_off < width - tol and w.row_off < height - tol
            and w.col_off + w.width > tol and w.row_off + w.height > tol)


def _union(a: Window, b: Window) -> Window:
    c0, r0 = min(a.col_off, b.col_off), min(a.row_off, b.row_off)
    c1 = max(a.col_off + a.width, b.col_off + b.width)
    r1 = max(a.row_off + a.height, b.row_off + b.height)
    return Window(c0, r0, c1 - c0, r1 - r0)


def grid_offset(b: TileInfo, a: TileInfo) -> tuple[int, int] | None:
    """(row, col) of ``a``'s origin on ``b``'s grid when both share CRS, pixel size and pixel edges, else None."""
    if b.crs != a.crs:
        return None
    tb, ta = b.transform, a.transform
    if not (np.isclose(tb.a, ta.a) and np.isclose(tb.e, ta.e) and tb.b == ta.b == tb.d == ta.d == 0):
        return None
    col = (ta.c - tb.c) / tb.a
    row = (ta.f - tb.f) / tb.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return int(round(row)), int(round(col))
