"""Cloud, cloud-shadow and value scaling on decimated reads.

What we look for is often bright too: white and blue factory roofs,
concrete pads, bare ground.  A cloud differs from them in ways a roof
cannot imitate all at once: it is bright on one date only, large, smooth
inside and soft at its edge (a roof edge is a step of one or two pixels);
an edge a little sharper than a cloud's is cloud where it casts its own
outline as a shadow some way off, all clouds of a scene in the same
direction.  The mask is never grown into ground that is merely bright.  A
provider's cloud mask, where a tile has one, decides instead of the image
test.

The masks are computed once per pair on a decimated read (clouds are
hundreds of metres across, so a few metres per pixel is plenty) and looked
up per window, which keeps memory flat and lets a shadow be linked to a
cloud that lies in another window.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage, signal

from satcheck.config import MaskConfig

_EIGHT = np.ones((3, 3), bool)
SHADOW_REACH_M = 1500.0  # how far from its cloud a shadow may lie (cloud height x tan of the sun's zenith angle)
FRINGE_M = 200.0  # how far a cloud's thin edge may reach beyond its bright core
MIN_SHADOW_OFFSET_M = 60.0  # nearer than this, a dark copy of an outline is a building's own shadow


def dn_scale(dtype: str, sample: np.ndarray) -> float:
    """The number that maps stored values to about 0..1 reflectance."""
    if dtype == "uint8":
        return 255.0
    if dtype.startswith("float"):
        top = float(np.nanmax(sample)) if sample.size else 1.0
        return 1.0 if top <= 1.5 else 10000.0
    top = float(np.max(sample)) if sample.size else 0.0
    for bits in (10, 11, 12):
        if top < 2**bits:
            return float(2**bits - 1)
    return 10000.0  # Sentinel-2 / Landsat style reflectance × 10000


def cloud_and_shadow(refl: np.ndarray, valid: np.ndarray, cfg: MaskConfig, px_m: float,
                     other: np.ndarray | None = None, other_valid: np.ndarray | None = None,
                     provider: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Boolean mask of cloud and cloud shadow on a decimated reflectance image (bands R, G, B, ...).

    ``other`` is the other date on the same grid.  Where it is given, cloud must be brighter than the same place
    on it and soft-edged, and a shadow must be darker than it: forest and water are dark on both dates and lie
    near clouds too.  Judged on one date alone, cloud is bright, colourless, large and smooth (not grown).
    ``provider`` is (cloud, covered) from :func:`satcheck.provider_masks.provider_cloud`: where covered, its cloud
    replaces the image test.
    """
    shape = refl.shape[1:]
    covered = provider is not None and provider[1].any()
    if refl.shape[0] < 3 or not (cfg.cloud or covered):
        return np.zeros(shape, bool)
    bright = refl[:3].mean(axis=0)
    o_ok = None
    if other is not None:
        o_ok = valid & (np.ones(shape, bool) if other_valid is None else other_valid)
    dark = _darker(bright, valid, other, o_ok, cfg)
    cloud = np.zeros(shape, bool)
    if cfg.cloud:
        cloud = _image_cloud(refl[:3], bright, valid, cfg, px_m, other, o_ok, dark)
    if covered:
        cloud = np.where(provider[1], provider[0], cloud)
    shadow = np.zeros(shape, bool)
    min_px = max(1, int(cfg.min_cloud_m2 / (px_m * px_m)))
    if cfg.shadow and cloud.any():
        near = ndimage.distance_transform_edt(~cloud) * px_m < SHADOW_REACH_M
        shadow = _keep_large(dark & near & ~cloud, max(1, min_px // 2))
        shadow = ndimage.binary_closing(shadow, iterations=2)
    out = cloud | shadow
    grow = max(1, int(round(cfg.dilate_m / px_m)))
    if out.any():
        out = ndimage.binary_dilation(out, iterations=grow)
    return out


def pair_masks(before: np.ndarray, b_ok: np.ndarray, after: np.ndarray, a_ok: np.ndarray, cfg: MaskConfig,
               px_m: float, provider_b: tuple[np.ndarray, np.ndarray] | None = None,
               provider_a: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Cloud and shadow of either date of a pair (:func:`cloud_and_shadow` of each against the other), the later
    date's judged in a thread of its own meanwhile (numpy and scipy release the GIL for much of it)."""
    with ThreadPoolExecutor(1, thread_name_prefix="satcheck-masks") as pool:
        later = pool.submit(cloud_and_shadow, after, a_ok, cfg, px_m, before, b_ok, provider_a)
        earlier = cloud_and_shadow(before, b_ok, cfg, px_m, after, a_ok, provider_b)
        return earlier | later.result()


def _darker(bright: np.ndarray, valid: np.ndarray, other: np.ndarray | None, o_ok: np.ndarray | None,
            cfg: MaskConfig) -> np.ndarray:
    """Places that could be shadow: dark for the scene, and darker than the same place on the other date where
    there is one."""
    clear = valid & (bright <= cfg.cloud_brightness)
    med = float(np.median(bright[clear])) if clear.any() else 0.0
    # Shadow must be dark for the scene as well (limit <= med): a bright field turned dark green is a change to
    # look at, not a shadow.
    limit = np.full(bright.shape, med, np.float32)
    lost = np.ones(bright.shape, bool)
    if other is not None and o_ok.any() and clear.any():
        seen = _on_this_date(other[:3].mean(axis=0), bright, clear, o_ok)
        limit = np.where(o_ok, np.minimum(seen, med), med)
        # Haze adds light, which halves or doubles what forest and water send: a shadow also takes a good part of
        # the scene's light away outright.
        lost = ~o_ok | (seen - bright > 0.25 * med)
    return (bright < cfg.shadow_brightness * limit) & lost & clear


def _on_this_date(o_bright: np.ndarray, bright: np.ndarray, this_ok: np.ndarray, other_ok: np.ndarray) -> np.ndarray:
    """The other date's brightness on this date's scale: medians and interquartile ranges matched, so that a change
    of sun, gain, haze or contrast between the dates cancels (forest at 0.05 under a crisp sky and 0.12 under a
    hazy one is the same forest); medians alone where either date is too uniform to have a spread."""
    q1, med, q3 = np.percentile(bright[this_ok], [25, 50, 75])
    p1, o_med, p3 = np.percentile(o_bright[other_ok], [25, 50, 75])
    if q3 - q1 > 1e-3 and p3 - p1 > 1e-3:
        scale = (q3 - q1) / (p3 - p1)
        return (med + (o_bright - o_med) * scale).astype(np.float32)
    return (o_bright * (med / max(o_med, 1e-6))).astype(np.float32)


def _image_cloud(rgb: np.ndarray, bright: np.ndarray, valid: np.ndarray, cfg: MaskConfig, px_m: float,
                 other: np.ndarray | None, o_ok: np.ndarray | None, dark: np.ndarray) -> np.ndarray:
    sat = (rgb.max(axis=0) - rgb.min(axis=0)) / np.maximum(rgb.max(axis=0), 1e-3)
    cand = (bright > cfg.cloud_brightness) & (sat < cfg.cloud_max_saturation) & valid
    lift = None
    if other is not None:
        lift = _lift(bright, other, valid, o_ok, cand)
        cand &= lift > cfg.cloud_contrast
    if not cand.any():
        return cand
    # Grainy bright ground (and 8-bit products clipped flat at its brightest grains) passes the thresholds in
    # specks: closed, a field is judged on all of it, its dimmer grains and its own outer edge.
    cand = ndimage.binary_closing(cand, _EIGHT, iterations=2, border_value=1) & valid
    lab, n = ndimage.label(cand, _EIGHT)
    idx = np.arange(1, n + 1)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    large = sizes >= max(1, int(cfg.min_cloud_m2 / (px_m * px_m)))
    keep = large & (_texture(bright, cand, lab, idx) <= cfg.cloud_max_texture)
    if lift is not None and keep.any():
        # Bright on this date only, large and smooth fits a new white roof as well: the edge tells them apart. An
        # edge between a roof's and a cloud's (a thick cloud seen coarsely) is cloud if its shadow says so; a
        # crisp one never: on real pairs, cleared lots of one date met dark trees of the other at some offset.
        width = _edge_width(lift, cand, lab, idx, valid)
        unsure = keep & (width < cfg.cloud_edge_px)
        maybe = unsure & (width >= 0.75 * cfg.cloud_edge_px)
        if maybe.any():
            unsure &= ~_casts_shadow(lab, idx, maybe, dark, px_m)
        keep &= ~unsure
    cloud = np.concatenate([[False], keep])[lab]
    if lift is not None and cloud.any():
        # Thin cloud edges are dimmer than the core, but the ground under them veiled in white: brighter than on
        # the other date in every band and less coloured. Dim ground no brighter than before stays clear, and so
        # do fields that ripened or were harvested (brighter in red, not in blue, and more coloured). The veil
        # thins smoothly; a new pit or yard beside a cloud brightens in a step at its outline, which stops it.
        reach = ndimage.distance_transform_edt(~cloud) * px_m <= FRINGE_M
        smooth = np.hypot(*np.gradient(lift)) < cfg.cloud_contrast / 4
        veiled = reach & valid & smooth & (lift > cfg.cloud_contrast / 4) & _whitened(
            rgb, sat, other, o_ok, cand, cfg.cloud_contrast / 8)
        cloud = ndimage.binary_propagation(cloud, mask=cloud | veiled)
    return cloud


def _whitened(rgb: np.ndarray, sat: np.ndarray, other: np.ndarray, o_ok: np.ndarray, cand: np.ndarray,
              margin: float) -> np.ndarray:
    """Where this date is brighter than the other in red, green and blue (each band at its own gain between the
    dates) by ``margin``, and no more coloured."""
    o = other[:3]
    ground = o_ok & ~cand
    if not ground.any():
        return np.zeros(sat.shape, bool)
    out = o_ok.copy()
    for k in range(3):
        gain = float(np.median(rgb[k][ground])) / max(float(np.median(o[k][ground])), 1e-6)
        out &= rgb[k] - gain * o[k] > margin
    o_sat = (o.max(axis=0) - o.min(axis=0)) / np.maximum(o.max(axis=0), 1e-3)
    return out & (sat <= o_sat + 0.02)


def _lift(bright: np.ndarray, other: np.ndarray, valid: np.ndarray, o_ok: np.ndarray,
          cand: np.ndarray) -> np.ndarray:
    """How much brighter each place is than on the other date (:func:`_on_this_date`)."""
    o_bright = other[:3].mean(axis=0)
    ground = o_ok & ~cand
    if not ground.any():
        ground = o_ok
    if not ground.any():
        return np.full(bright.shape, np.inf, np.float32)
    # Where the other date has no data there is nothing to compare: as bright as this date's median, not a step.
    seen = np.where(o_ok, _on_this_date(o_bright, bright, ground, ground), float(np.median(bright[ground])))
    return np.where(valid, bright - seen, 0.0).astype(np.float32)


def _texture(bright: np.ndarray, cand: np.ndarray, lab: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per component, the median over its inside of the brightness' standard deviation over 3 x 3 px / mean."""
    b = bright.astype(np.float64)
    m = ndimage.uniform_filter(b, 3)
    sd = np.sqrt(np.maximum(ndimage.uniform_filter(b * b, 3) - m * m, 0.0))
    cv = sd / np.maximum(m, 1e-3)
    inside = ndimage.binary_erosion(cand, _EIGHT)
    lab_in = np.where(inside, lab, 0)
    has_inside = np.bincount(lab_in.ravel(), minlength=len(idx) + 1)[1:] > 0
    # A component too thin to have an inside is judged on all its pixels (its edges count then: good for roofs).
    return np.where(has_inside, _median(cv, lab_in, len(idx)), _median(cv, lab, len(idx)))


def _edge_width(lift: np.ndarray, cand: np.ndarray, lab: np.ndarray, idx: np.ndarray,
                valid: np.ndarray) -> np.ndarray:
    """Per component, how many pixels its edge spans: its step from inside down to the ground a few pixels out,
    over the steepest slope next to its border.  A roof's or a pad's step takes one or two pixels (about 2.5
    times the blur of the sensor); a cloud thins over many."""
    gy, gx = np.gradient(lift.astype(np.float64))
    steepest = ndimage.maximum_filter(np.hypot(gy, gx), size=5)
    border = cand & ~ndimage.binary_erosion(cand, _EIGHT, border_value=1)
    ring = (ndimage.binary_dilation(cand, _EIGHT, iterations=6) & ~ndimage.binary_dilation(cand, _EIGHT, iterations=2)
            & valid)
    ring_lab = np.where(ring, ndimage.grey_dilation(lab, size=(13, 13)), 0)
    inner = np.asarray(ndimage.mean(lift, lab, idx), float)
    has_ring = np.bincount(ring_lab.ravel(), minlength=len(idx) + 1)[1:] > 0
    outer = np.zeros(len(idx))
    if has_ring.any():
        outer[has_ring] = np.asarray(ndimage.mean(lift, ring_lab, idx[has_ring]), float)
    border_lab = np.where(border, lab, 0)
    has_border = np.bincount(border_lab.ravel(), minlength=len(idx) + 1)[1:] > 0
    g = np.where(has_border, _median(steepest, border_lab, len(idx)), np.inf)
    width = (inner - outer) / np.maximum(g, 1e-6)
    # A component that fills the image to its edges shows no border to judge: taken as soft.
    return np.where(has_ring & has_border, width, np.inf)


def _shadow_offset(src: np.ndarray, dark: np.ndarray, px_m: float, lo_m: float) -> tuple[int, int] | None:
    """The offset (rows, cols), lo_m to SHADOW_REACH_M long, at which ``src`` lands on most ``dark`` pixels: the
    scene's one shadow direction (None: no dark pixel at any)."""
    if not dark.any() or not src.any():
        return None
    h, w = src.shape
    corr = signal.fftconvolve(dark.astype(np.float32), src[::-1, ::-1].astype(np.float32), mode="full")
    dy = np.arange(corr.shape[0])[:, None] - (h - 1)
    dx = np.arange(corr.shape[1])[None, :] - (w - 1)
    dist = np.hypot(dy, dx) * px_m
    corr = np.where((dist >= lo_m) & (dist <= SHADOW_REACH_M), corr, 0)
    if corr.max() <= 0.5:
        return None
    i, j = np.unravel_index(int(np.argmax(corr)), corr.shape)
    return int(i - (h - 1)), int(j - (w - 1))


def _moved(ys: np.ndarray, xs: np.ndarray, off: tuple[int, int], shape: tuple[int, int]):
    ty, tx = ys + off[0], xs + off[1]
    inside = (ty >= 0) & (ty < shape[0]) & (tx >= 0) & (tx < shape[1])
    return ty[inside], tx[inside], inside


def _casts_shadow(lab: np.ndarray, idx: np.ndarray, which: np.ndarray, dark: np.ndarray, px_m: float,
                  share: float = 0.4) -> np.ndarray:
    """Per component in ``which``: whether its own outline lies dark (darker than on the other date) at the one
    offset where the outlines of all of them fall on dark ground best, as a scene's clouds and shadows do."""
    src = np.isin(lab, idx[which])
    off = _shadow_offset(src, dark, px_m, max(MIN_SHADOW_OFFSET_M, 3 * px_m))
    if off is None:
        return np.zeros(len(idx), bool)
    near_dark = ndimage.binary_dilation(dark, _EIGHT, iterations=2)
    ys, xs = np.nonzero(src)
    ty, tx, inside = _moved(ys, xs, off, lab.shape)
    # A shadow has its cloud's outline: dark inside it and mostly not around it. A large dark place (fields
    # ploughed since the other date) holds any outline, and its surroundings too.
    moved = np.zeros(lab.shape, bool)
    moved[ty, tx] = True
    d = ndimage.distance_transform_edt(~moved)
    ring = (d > 2) & (d <= 2 + max(3.0, 0.1 * float(np.hypot(*off)))) & ~src
    if ring.any() and dark[ring].mean() > 0.5 * dark[moved].mean():
        return np.zeros(len(idx), bool)
    labels = lab[ys[inside], xs[inside]]
    n_all = np.bincount(lab[ys, xs], minlength=len(idx) + 1)[1:]
    n_in = np.bincount(labels, minlength=len(idx) + 1)[1:]
    n_dark = np.bincount(labels, weights=near_dark[ty, tx], minlength=len(idx) + 1)[1:]
    # A shadow that falls mostly outside the image cannot vouch for its cloud.
    return which & (n_in >= 0.5 * n_all) & (n_dark >= share * np.maximum(n_in, 1))


def _median(values: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values`` per label 1..n (NaN where a label has no pixel); ndimage.median sorts every pixel of
    the image, this only those labelled."""
    sel = lab > 0
    lv, vv = lab[sel], values[sel]
    order = np.lexsort((vv, lv))
    lv, vv = lv[order], vv[order]
    counts = np.bincount(lv, minlength=n + 1)[1:]
    starts = np.cumsum(counts) - counts
    out = np.full(n, np.nan)
    has = counts > 0
    out[has] = vv[starts[has] + (counts[has] - 1) // 2]
    return out


def _keep_large(mask: np.ndarray, min_px: int) -> np.ndarray:
    if not mask.any():
        return mask
    lab, n = ndimage.label(mask)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[lab]


def upsample_lookup(lowres: np.ndarray, full_shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    """Nearest-neighbour values of a decimated mask for a window of the full grid."""
    fh, fw = full_shape
    lh, lw = lowres.shape
    r = np.minimum((np.arange(rows.start, rows.stop) * lh) // fh, lh - 1)
    c = np.minimum((np.arange(cols.start, cols.stop) * lw) // fw, lw - 1)
    return lowres[np.ix_(r, c)]


def mask_warning(name: str, share: float, cfg: MaskConfig) -> str | None:
    """A line for the user when much of a pair is masked as cloud or shadow (None otherwise)."""
    if share <= cfg.warn_share:
        return None
    fix = ("check the provider masks (masks.cloud_mask)" if cfg.cloud_mask else
           "for cloud-free imagery set masks.cloud: false (and masks.shadow: false), or give the provider's cloud "
           "masks (masks.cloud_mask)")
    return f"{name}: {share:.0%} of the pair is masked as cloud or cloud shadow and not compared; {fix}"
