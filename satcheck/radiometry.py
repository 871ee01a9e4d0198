"""Radiometric normalisation of a pair: pure functions on numpy arrays.

The earlier date is matched to the later one band by band (inside pixels
valid on both): by mean and standard deviation (``meanstd``, the default),
by its whole histogram (``histogram``), or not at all (``none``); then both
are stretched by the later date's 1st and 99th percentiles.  Histogram
matching removes any monotone difference of sensor, sun and haze, but
where much of a pair really changed (fields become a town) it also maps
much of that change away; a gain and an offset cannot.  The same maths
serve whole tiles (the statistics then come from a decimated read) and
training crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_QUANTILES = 257
MAX_STAT_PX = 2**18
# Sensor, sun and haze change a band's gain between dates by well under 2x; a larger ratio of spreads means the
# scene itself changed (a bright new building on a flat field), which a normalisation must not scale away.
GAIN_RANGE = (0.5, 2.0)


@dataclass(frozen=True)
class Normalisation:
    method: str
    before_q: tuple[np.ndarray, ...]  # per band: quantiles of the earlier date (or mean, std)
    after_q: tuple[np.ndarray, ...]
    lo: tuple[float, ...]  # per band: later date's 1st percentile
    span: tuple[float, ...]  # per band: 99th minus 1st percentile

    def apply(self, x: np.ndarray, before: bool) -> np.ndarray:
        out = np.empty(x.shape, np.float32)
        for i in range(x.shape[0]):
            b = x[i]
            if before and self.method == "histogram":
                b = np.interp(b, self.before_q[i], self.after_q[i])
            elif before and self.method == "meanstd":
                (mb, sb), (ma, sa) = self.before_q[i], self.after_q[i]
                b = (b - mb) / sb * sa + ma
            out[i] = (b - self.lo[i]) / self.span[i]
        return np.clip(out, -0.5, 1.5, out=out)

    def table(self, scale: float, dtype: str, before: bool) -> np.ndarray | None:
        """For integer tiles: :meth:`apply` of ``dn / scale`` for every stored value, as a lookup table
        (bands, values).  A gather per pixel instead of interpolation: several times faster, same numbers."""
        if dtype not in ("uint8", "uint16"):
            return None
        dn = np.arange(np.iinfo(dtype).max + 1).astype(np.float32) / scale
        return self.apply(np.broadcast_to(dn, (len(self.lo), 1, dn.size)), before)[:, 0]


def apply_table(table: np.ndarray, dn: np.ndarray) -> np.ndarray:
    """Normalised reflectance of stored values ``dn`` (bands, h, w) through :meth:`Normalisation.table`."""
    out = np.empty(dn.shape, np.float32)
    for i in range(dn.shape[0]):
        np.take(table[i], dn[i], out=out[i])
    return out


def fit_normalisation(before: np.ndarray, after: np.ndarray, ok: np.ndarray, method: str = "histogram") -> Normalisation:
    """Statistics for :meth:`Normalisation.apply` from pixels where ``ok``."""
    q = np.linspace(0, 1, N_QUANTILES)
    bq, aq, lo, span = [], [], [], []
    for i in range(after.shape[0]):
        b, a = before[i][ok], after[i][ok]
        if a.size > MAX_STAT_PX:
            # Quantiles of a regular subsample: a quarter million values pin each of 257 quantiles to well
            # under 0.5 % of rank, at a fraction of the cost of partitioning a whole decimated tile.
            step = -(-a.size // MAX_STAT_PX)
            b, a = b[::step], a[::step]
        if a.size == 0:
            b = a = np.zeros(1, np.float32)
        if method == "histogram":
            bq.append(_strictly_increasing(np.quantile(b, q)))
            aq.append(np.quantile(a, q).astype(np.float32))
        elif method == "meanstd":
            sb, sa = b.std() + 1e-6, a.std() + 1e-6
            # The gain sa / sb, kept within GAIN_RANGE.
            bq.append(np.array([b.mean(), sb]))
            aq.append(np.array([a.mean(), sb * float(np.clip(sa / sb, *GAIN_RANGE))]))
        else:
            bq.append(np.zeros(0))
            aq.append(np.zeros(0))
        p1, p99 = np.quantile(a, [0.01, 0.99])
        lo.append(float(p1))
        span.append(float(max(p99 - p1, 1e-3)))
    return Normalisation(method, tuple(bq), tuple(aq), tuple(lo), tuple(span))


def _strictly_increasing(x: np.ndarray) -> np.ndarray:
    # np.interp needs increasing x; flat runs (saturated values) are nudged apart.
    x = x.astype(np.float64)
    return (x + np.arange(x.size) * 1e-9).astype(np.float64)


def normalise_pair(before: np.ndarray, after: np.ndarray, ok: np.ndarray, method: str = "histogram"):
    """Both dates of a small pair, normalised with statistics from the pair itself."""
    n = fit_normalisation(before, after, ok, method)
    return n.apply(before, True), n.apply(after, False)
