"""Is a change typed excavation a pit, or a field that was harvested, ploughed or left fallow, or a pond drained?

The network types bare ground that was green before as excavation, and after harvest or ploughing every field
is such ground. Two things tell a pit from a field at the later date:

- **contrast with its surroundings**: spoil, rock and pit walls stand out brighter than the land around them;
  a bare field lies among other bare or stubble fields and is about as bright as they are;
- **a new outline**: a pit cuts across the land; a field or a pond changes as a whole, inside the ridges, paths
  and banks that bounded it before, so its outline lies on edges the earlier date already had.

Both are measured on the imagery around the change polygon (:mod:`satcheck.batch.excavation` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from satcheck.detect.cva import edges

RING_M = 20.0  # the surroundings a change is compared with: the ground within this distance of its outline


@dataclass(frozen=True)
class DigEvidence:
    contrast: float | None  # later-date brightness inside over that of the ring around it (None: no ring seen)
    old_outline: float | None  # share of the outline on edges of the earlier date (None: no outline seen)

    def is_field_change(self, min_contrast: float, max_old_outline: float) -> bool:
        """True when the change looks like a field or pond changing as a whole rather than a pit."""
        if self.contrast is not None and self.contrast < min_contrast:
            return True
        return self.old_outline is not None and self.old_outline > max_old_outline


def dig_evidence(before: np.ndarray, after: np.ndarray, ok: np.ndarray, inside: np.ndarray,
                 ring: np.ndarray, edge_threshold: float = 0.2) -> DigEvidence:
    """Evidence of a pit from RGB ``before`` and ``after`` (3, h, w, scaled to about 0..1) on one grid.

    ``ok``: pixels seen on both dates; ``inside``: the change; ``ring``: the ground around it.
    """
    inside_ok, ring_ok = inside & ok, ring & ok
    contrast = None
    if inside_ok.sum() >= 4 and ring_ok.sum() >= 4:
        bright = after.mean(axis=0)
        contrast = float(bright[inside_ok].mean() / max(bright[ring_ok].mean(), 1e-6))
    outline = inside & ~ndimage.binary_erosion(inside, iterations=1, border_value=1) & ok
    old_outline = None
    if outline.any():
        # The earlier date's edges, widened by 2 pixels for misregistration, as the cva detector's parcel rule.
        old_outline = float(edges(before, 2, edge_threshold)[outline].mean())
    return DigEvidence(contrast, old_outline)
