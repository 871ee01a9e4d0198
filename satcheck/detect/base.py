"""The detector interface: scores per pixel from an aligned pair window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from satcheck.align import PairWindow

# CONSTRUCTION is building-or-hardened where a detector cannot tell which (the cva baseline, older weights).
NO_CHANGE, CONSTRUCTION, EXCAVATION, BUILDING, HARDENED = 0, 1, 2, 3, 4
CHANGE_TYPES = {CONSTRUCTION: "construction", EXCAVATION: "excavation", BUILDING: "building", HARDENED: "hardened"}
CODES = {name: code for code, name in CHANGE_TYPES.items()}
# What each class that `satcheck eval --classes` scores counts as that class.
CLASS_CODES = {
    "building": (BUILDING, CONSTRUCTION),
    "hardened": (HARDENED, CONSTRUCTION),
    "excavation": (EXCAVATION,),
    "any": (CONSTRUCTION, EXCAVATION, BUILDING, HARDENED),
}


@dataclass
class ChangeScores:
    """Per-pixel change probability (0..1) and the more likely change type."""

    probability: np.ndarray  # float32 (h, w)
    change_type: np.ndarray  # uint8 (h, w): one of CHANGE_TYPES' codes


@runtime_checkable
class Detector(Protocol):
    """Anything that scores change between the two dates of a window.

    ``halo`` is the context in pixels the detector needs around a window
    for its scores to be independent of where windows fall.  ``prepare`` is
    called once per pair, before any window, with the pair's pixel size in
    metres (None where unknown, as for PNG datasets) and, if ``needs_sample``
    says it uses one, a decimated sample of the whole pair (else None).
    Pixels scoring ``threshold`` or more are change.  ``imagery_warning`` says, after ``prepare``, when the
    pair is imagery the detector was not made for (its results then need a sceptical look), else None.
    """

    name: str
    halo: int
    threshold: float
    needs_sample: bool

    def prepare(self, sample: PairWindow | None, px_m: float | None) -> None: ...

    def score(self, pw: PairWindow) -> ChangeScores: ...

    def imagery_warning(self) -> str | None: ...
