"""Pairing by footprint, window arithmetic of pairs, radiometric normalisation and cloud masks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin
from rasterio.windows import Window
from scipy import ndimage

from satcheck.align import PairReader
from satcheck.config import MaskConfig, RunConfig
from satcheck.masks import cloud_and_shadow
from satcheck.pairs import pair_tiles
from satcheck.radiometry import apply_table, fit_normalisation
from satcheck.tiles import open_tile
from tests.generate import ORIGIN, textured, write


@given(st.integers(-150, 150), st.integers(-150, 150), st.integers(20, 200), st.integers(20, 200))
@settings(max_examples=25, deadline=None)
def test_pair_window_is_the_footprint_intersection(tmp_path_factory, dx, dy, bw, bh):
    tmp = tmp_path_factory.mktemp("p")
    a = write(tmp / "a_20261001.tif", np.full((1, 100, 120), 0.3, np.float32), from_origin(*ORIGIN, 1, 1))
    b_t = from_origin(ORIGIN[0] + dx, ORIGIN[1] - dy, 1, 1)
    b = write(tmp / "b_20260901.tif", np.full((1, bh, bw), 0.3, np.float32), b_t)
    c0, r0 = max(0, dx), max(0, dy)
    c1, r1 = min(120, dx + bw), min(100, dy + bh)
    try:
        pairs = pair_tiles([open_tile(b)], [open_tile(a)])
    except Exception:
        assert c1 <= c0 or r1 <= r0
        return
    w = pairs[0].window
    assert c1 > c0 and r1 > r0
    # Same grid: the window is exact up to the one-pixel pad that covers partial pixels.
    assert abs(w.col_off - c0) <= 1 and abs(w.row_off - r0) <= 1
    assert abs((w.col_off + w.width) - c1) <= 1 and abs((w.row_off + w.height) - r1) <= 1


def test_tiles_pair_by_footprint(tmp_path):
    t = from_origin(*ORIGIN, 1, 1)
    big = write(tmp_path / "b" / "big_20260901.tif", textured(1, (200, 200)), t)
    afters = [write(tmp_path / "a" / f"t{i}_20261001.tif", textured(2, (100, 100)),
                    from_origin(ORIGIN[0] + 100 * (i % 2), ORIGIN[1] - 100 * (i // 2), 1, 1)) for i in range(4)]
    far = write(tmp_path / "a" / "far_20261001.tif", textured(3, (50, 50)), from_origin(ORIGIN[0] + 5000, ORIGIN[1], 1, 1))
    pairs = pair_tiles([open_tile(big)], [open_tile(p) for p in [*afters, far]])
    assert [p.after.path.name for p in pairs] == [p.name for p in afters]
    assert all(p.window == Window(0, 0, 100, 100) for p in pairs)


def test_histogram_matching_removes_gain_and_offset():
    rng = np.random.default_rng(0)
    after = rng.random((4, 64, 64), dtype=np.float32)
    before = after * 0.7 + 0.1  # a different sun and haze
    n = fit_normalisation(before, after, np.ones((64, 64), bool))
    assert np.abs(n.apply(before, True) - n.apply(after, False)).max() < 0.02


@pytest.mark.parametrize("method", ["histogram", "meanstd"])
def test_matching_removes_a_linear_difference_of_dates(method):
    rng = np.random.default_rng(1)
    after = rng.normal(0.3, 0.05, (4, 64, 64)).astype(np.float32)
    before = after * 1.4 - 0.05
    n = fit_normalisation(before, after, np.ones((64, 64), bool), method)
    assert np.abs(n.apply(before, True) - n.apply(after, False)).max() < 0.02


def test_meanstd_does_not_scale_a_new_building_on_a_flat_field_into_noise():
    rng = np.random.default_rng(2)
    before = (0.35 + rng.normal(0, 0.002, (3, 64, 64))).astype(np.float32)
    after = before.copy()
    after[:, 20:36, 20:36] = 0.9  # 6 % of the pair: its spread is the building, not the sun
    n = fit_normalisation(before, after, np.ones((64, 64), bool), "meanstd")
    b, a = n.apply(before, True), n.apply(after, False)
    quiet = np.ones((64, 64), bool)
    quiet[20:36, 20:36] = False
    assert np.abs(b - a)[:, quiet].max() < 0.1 < np.abs(b - a)[:, ~quiet].min()


def test_reader_normalises_a_brighter_earlier_date(tmp_path):
    t = from_origin(*ORIGIN, 1, 1)
    img = textured(4, (128, 128))
    a = write(tmp_path / "a_20261001.tif", img, t)
    b = write(tmp_path / "b_20260901.tif", np.clip(img * 1.3 + 0.05, 0, 0.8), t)
    pair = pair_tiles([open_tile(b)], [open_tile(a)])[0]
    with PairReader(pair, RunConfig()) as r:
        pw = r.read(Window(0, 0, 128, 128))
    assert np.abs(pw.before - pw.after).mean() < 0.03


def test_cloud_masked_roof_not():
    cfg = MaskConfig()
    img = np.full((4, 200, 200), 0.15, np.float32)
    yy, xx = np.mgrid[0:200, 0:200]
    cloud = (yy - 60) ** 2 + (xx - 60) ** 2 < 40**2
    img[:, cloud] = 0.85
    img[:, 180:188, 10:20] = 0.8  # a white roof, 80 m², far from the cloud and its shadow
    shadow = ((yy - 110) ** 2 + (xx - 130) ** 2 < 35**2) & ~cloud
    img[:, shadow] *= 0.4
    m = cloud_and_shadow(img, np.ones((200, 200), bool), cfg, px_m=1.0)
    assert m[cloud].all()
    assert m[shadow].mean() > 0.9
    assert not m[180:188, 10:20].any()


def test_forest_near_a_cloud_is_not_shadow_when_it_is_dark_on_both_dates():
    cfg = MaskConfig()
    yy, xx = np.mgrid[0:200, 0:200]
    earlier = np.full((4, 200, 200), 0.2, np.float32)
    forest = (yy > 120) & (xx < 90)  # dark on both dates, 100 m from the cloud
    earlier[:, forest] = 0.05
    field = (yy > 120) & (xx > 110) & (xx < 190)  # a bright bare field that is dark green crop later
    earlier[:, field] = 0.4
    later = earlier.copy()
    later[:, field] = 0.15
    cloud = (yy - 60) ** 2 + (xx - 60) ** 2 < 45**2
    # Soft-edged, as clouds are: a crisp bright disc there on one date only is a roof or a pad, not masked.
    alpha = ndimage.gaussian_filter(cloud.astype(np.float32), 3)
    later = later * (1 - alpha) + 0.85 * alpha
    shadow = ((yy - 70) ** 2 + (xx - 150) ** 2 < 30**2) & ~cloud & ~forest
    later[:, shadow] *= 0.4
    ok = np.ones((200, 200), bool)
    m = cloud_and_shadow(later, ok, cfg, 1.0, earlier, ok)
    assert m[shadow].mean() > 0.9
    assert not m[forest & (yy > 160)].any()  # beyond the 30 m margin of the cloud
    assert not m[field & (yy > 160)].any()
    # Judged on one date alone the forest is taken for shadow: the other date is what tells them apart.
    assert cloud_and_shadow(later, ok, cfg, 1.0)[forest & (yy > 160)].mean() > 0.9


def test_band_count_mismatch_message(tmp_path):
    from satcheck.errors import BandMismatchError

    t = from_origin(*ORIGIN, 1, 1)
    a = write(tmp_path / "a_20261001.tif", textured(1, (32, 32)), t)
    b = write(tmp_path / "b_20260901.tif", textured(1, (32, 32), bands=2), t)
    with pytest.raises(BandMismatchError, match="b_20260901.tif: has 2 bands but .*a_20261001.tif has 4"):
        pair_tiles([open_tile(b)], [open_tile(a)])


@pytest.mark.parametrize("before_bands, after_bands", [(3, 4), (4, 3)])
def test_rgb_against_rgb_nir_is_compared_in_rgb(tmp_path, before_bands, after_bands):
    """An RGB orthophoto of one date and an R, G, B, NIR image of the other: both read as red, green, blue."""
    t = from_origin(*ORIGIN, 1, 1)
    a = write(tmp_path / "a_20261001.tif", textured(1, (32, 32), bands=after_bands), t)
    b = write(tmp_path / "b_20260901.tif", textured(1, (32, 32), bands=before_bands), t)
    (pair,) = pair_tiles([open_tile(b)], [open_tile(a)])
    assert pair.after.count == 3 and all(x.count == 3 for x in pair.befores)
    assert pair.after.band_indexes == [1, 2, 3] and "compared on the first 3" in pair.note
    assert ("a_20261001.tif are not used" if after_bands == 4 else "b_20260901.tif are not used") in pair.note
    same = write(tmp_path / "c_20260901.tif", textured(1, (32, 32), bands=after_bands), t)
    assert pair_tiles([open_tile(same)], [open_tile(a)])[0].note is None


@pytest.mark.parametrize("dtype, scale", [("uint8", 255.0), ("uint16", 4095.0)])
@pytest.mark.parametrize("method", ["histogram", "meanstd", "none"])
def test_lookup_table_gives_the_same_numbers_as_the_formula(dtype, scale, method):
    rng = np.random.default_rng(4)
    top = 255 if dtype == "uint8" else 4095
    b = rng.integers(0, top, (4, 60, 70)).astype(dtype)
    a = rng.integers(0, top, (4, 60, 70)).astype(dtype)
    ok = np.ones((60, 70), bool)
    norm = fit_normalisation(b.astype(np.float32) / scale, a.astype(np.float32) / scale, ok, method)
    for x, before in ((b, True), (a, False)):
        expected = norm.apply(x.astype(np.float32) / scale, before)
        assert np.array_equal(apply_table(norm.table(scale, dtype, before), x), expected)
    assert norm.table(scale, "float32", True) is None


def test_decimated_read_by_strips_gives_gdals_pixels(tmp_path):
    import rasterio
    from rasterio.enums import Resampling

    from satcheck.align import _decimated_by_strips

    dn = np.clip(np.round(textured(9, (700, 650)) * 255 / 0.8), 1, 255).astype(np.uint8)
    dn[:, :40, :] = 0  # a nodata margin, so the mask has both values
    path = write(tmp_path / "t_20261001.tif", dn, from_origin(*ORIGIN, 1, 1))
    with rasterio.open(path) as src:
        assert not src.read_masks(1).all()
        for win, shape in ((Window(0, 0, 650, 700), (128, 119)), (Window(13, 29, 601, 555), (97, 213))):
            kw = {"window": win, "out_shape": shape, "resampling": Resampling.nearest}
            data, mask = _decimated_by_strips(src, win, shape, [1, 2, 3, 4], strip=64)
            assert np.array_equal(data, src.read(**kw))
            assert np.array_equal(mask, src.read_masks(1, **kw) > 0)


@pytest.mark.parametrize("before_res", [1.0, 1.5])  # the earlier tile read directly, or warped onto the grid
def test_windows_read_from_several_threads_are_the_ones_read_from_one(tmp_path, before_res):
    from concurrent.futures import ThreadPoolExecutor

    a = write(tmp_path / "a_20261001.tif", textured(5, (384, 384)), from_origin(*ORIGIN, 1, 1))
    b = write(tmp_path / "b_20260901.tif", textured(6, (300, 300)), from_origin(*ORIGIN, before_res, before_res))
    pair = pair_tiles([open_tile(b)], [open_tile(a)])[0]
    wins = [Window(c, r, 96, 96) for r in range(0, int(pair.window.height) - 95, 48)
            for c in range(0, int(pair.window.width) - 95, 48)]
    with PairReader(pair, RunConfig(), readers=4) as r:
        one = [r.read(w) for w in wins]
        with ThreadPoolExecutor(4) as pool:
            many = list(pool.map(r.read, wins))
    for x, y in zip(one, many):
        assert np.array_equal(x.before, y.before) and np.array_equal(x.after, y.after)
        assert np.array_equal(x.valid, y.valid)
