"""Co-registration: the shift between dates is measured from the images and corrected before detection."""

import json

import geopandas as gpd
import numpy as np
import pytest
from rasterio.windows import Window
from shapely.geometry import box
from typer.testing import CliRunner

from satcheck.cli import app
from satcheck.coregister import estimate_shift, measure_arrays, shift_array
from satcheck.windows import spread_windows
from tests.generate import misregister, square_pair, textured

runner = CliRunner()


def _chips(before, after):
    ok = np.ones(after.shape[1:], bool)
    return [(before[:, w.toslices()[0], w.toslices()[1]], after[:, w.toslices()[0], w.toslices()[1]],
             ok[w.toslices()]) for w in spread_windows(Window(0, 0, after.shape[2], after.shape[1]), 256, 3)]


@pytest.mark.parametrize("rows, cols", [(3, -2), (0, 5), (-6, 1)])
def test_a_rolled_date_is_measured(rows, cols):
    after = textured(4, (600, 600))
    before = np.roll(after, (rows, cols), (1, 2))  # before[r + rows] shows after[r]
    s = estimate_shift(_chips(before, after), 8)
    assert s.agreed and s.agreeing == s.chips == 9
    assert s.rows == pytest.approx(rows, abs=0.1) and s.cols == pytest.approx(cols, abs=0.1)
    # Moved back, the earlier date lines up with the later one away from the repeated edges.
    back = shift_array(before, s)
    assert np.abs(back - after)[:, 10:-10, 10:-10].max() < 0.02


def test_unrelated_dates_give_no_shift():
    s = estimate_shift(_chips(textured(1, (600, 600)), textured(2, (600, 600))), 8)
    assert not s.agreed and (s.rows, s.cols) == (0, 0)


def test_shift_beyond_the_search_is_not_guessed():
    after = textured(4, (600, 600))
    assert not estimate_shift(_chips(np.roll(after, (12, 0), (1, 2)), after), 8).agreed


def test_small_images_are_not_measured():
    """Under about 340 px a chip holds too little to tell misregistration from the change in it."""
    after = textured(4, (256, 256))
    assert not measure_arrays(np.roll(after, (3, 3), (1, 2)), after, np.ones((256, 256), bool), 8).agreed


@pytest.mark.parametrize("before_res, east_m, north_m, rows, cols", [(None, 3.0, 2.0, -2, 3), (2.0, 4.0, -3.0, 3, 4)])
def test_misregistered_tile_is_corrected_in_a_run(tmp_path, before_res, east_m, north_m, rows, cols):
    """The earlier tile's georeference is some metres off; on the same grid (whole pixels) and warped (fractions):
    the shift is found and the planted square comes back alone, at its place."""
    b, a, bounds = square_pair(tmp_path, size=640, square=(280, 260, 80), before_res=before_res)
    misregister(b, east_m, north_m)
    r = runner.invoke(app, ["run", str(b), str(a), "--out", str(tmp_path / "out"), "--detector", "cva", "--json"])
    assert r.exit_code == 0, r.output
    [shift] = json.loads((tmp_path / "out" / "run.json").read_text())["tiles"][0]["shift_px"]
    assert shift["agreed"] and shift["tile"] == b.name
    assert json.loads(r.output)["coregistered"]["pairs"] == 1
    assert shift["rows"] == pytest.approx(rows, abs=0.5) and shift["cols"] == pytest.approx(cols, abs=0.5)
    changes = gpd.read_file(tmp_path / "out" / "changes.gpkg")
    assert len(changes) == 1
    assert changes.geometry.iloc[0].hausdorff_distance(box(*bounds)) <= 2.0


def test_coregistration_can_be_turned_off(tmp_path):
    b, a, _ = square_pair(tmp_path, size=640, square=(280, 260, 80))
    misregister(b, 3.0, 0.0)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("align:\n  coregister_max_px: 0\n")
    r = runner.invoke(app, ["run", str(b), str(a), "--out", str(tmp_path / "out"), "--detector", "cva", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    [shift] = json.loads((tmp_path / "out" / "run.json").read_text())["tiles"][0]["shift_px"]
    assert not shift["agreed"] and shift["chips"] == 0


def test_earlier_tiles_off_by_different_amounts_are_each_corrected(tmp_path):
    """The earlier date in two strips from different scenes, each misregistered its own way: each is measured
    and moved, and the square planted across their seam comes back whole, alone and in place."""
    import rasterio
    from rasterio.windows import Window as W

    b, a, bounds = square_pair(tmp_path, size=768, square=(344, 344, 80))
    with rasterio.open(b) as src:
        data, profile, t = src.read(), src.profile, src.transform
    b.unlink()
    for name, cols, east_m in (("S_20260901_left.tif", (0, 384), 3.0), ("S_20260901_right.tif", (384, 768), -2.0)):
        part = rasterio.windows.transform(W(cols[0], 0, cols[1] - cols[0], 768), t)
        profile.update(width=cols[1] - cols[0], transform=part, photometric="minisblack")  # not RGBA
        with rasterio.open(b.parent / name, "w", **profile) as dst:
            dst.write(data[:, :, cols[0]:cols[1]])
        misregister(b.parent / name, east_m, 0.0)
    r = runner.invoke(app, ["run", str(b.parent), str(a), "--out", str(tmp_path / "out"), "--detector", "cva"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "out" / "run.json").read_text())["tiles"][0]["shift_px"]
    by_tile = {s["tile"]: s for s in report}
    assert by_tile["S_20260901_left.tif"]["agreed"] and by_tile["S_20260901_right.tif"]["agreed"]
    assert by_tile["S_20260901_left.tif"]["cols"] == pytest.approx(3, abs=0.5)
    assert by_tile["S_20260901_right.tif"]["cols"] == pytest.approx(-2, abs=0.5)
    changes = gpd.read_file(tmp_path / "out" / "changes.gpkg")
    assert len(changes) == 1
    assert changes.geometry.iloc[0].hausdorff_distance(box(*bounds)) <= 2.0


def _stitched_pair(folder, size=2048, offset=3):
    """One earlier file stitched from two scenes: its left half is (offset, offset) px off, its right half the
    other way; the later date is the same ground, in place."""
    from rasterio.transform import from_origin

    from tests.generate import ORIGIN, write

    after = textured(5, (size, size))
    before = np.concatenate([np.roll(after, (offset, offset), (1, 2))[:, :, : size // 2],
                             np.roll(after, (-offset, -offset), (1, 2))[:, :, size // 2:]], axis=2)
    t = from_origin(*ORIGIN, 1, 1)
    return (write(folder / "before" / "S_20260901.tif", before, t),
            write(folder / "after" / "S_20261001.tif", after, t))


@pytest.mark.parametrize("per_window", [True, False])
def test_misregistration_that_varies_across_a_tile_is_corrected_window_by_window(tmp_path, per_window):
    """The tile's chips disagree (3 px one way on the left, 3 px the other way on the right), so no tile shift;
    each 1024 px window then measures its own and lines up, unless align.coregister_windows is off."""
    from satcheck.align import PairReader
    from satcheck.config import RunConfig
    from satcheck.pairs import pair_tiles
    from satcheck.tiles import open_tile
    from satcheck.windows import window_grid, with_halo

    b, a = _stitched_pair(tmp_path)
    (pair,) = pair_tiles([open_tile(b)], [open_tile(a)])
    cfg = RunConfig().with_overrides(**{"align.coregister_windows": per_window})
    with PairReader(pair, cfg) as reader:
        assert not reader.shifts[0].agreed
        worst = 0.0
        for core in window_grid(2048, 2048, 1024):
            pw = reader.read(with_halo(core, 48, 2048, 2048)[0])
            inner = (slice(None), slice(60, -60), slice(60, -60))
            worst = max(worst, float(np.abs(pw.before[inner] - pw.after[inner]).mean()))
        report = reader.window_report()
    if per_window:
        assert report == {"measured": 4, "moved": 4, "largest_px": pytest.approx(3 * 2 ** 0.5, abs=0.2)}
        assert worst < 0.01
    else:
        assert report is None and worst > 0.02


def test_windows_moved_on_their_own_are_reported(tmp_path):
    b, a = _stitched_pair(tmp_path)
    r = runner.invoke(app, ["run", str(b), str(a), "--out", str(tmp_path / "out"), "--detector", "cva", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["coregistered"] == {"pairs": 1, "largest_shift_px": pytest.approx(4.24, abs=0.2),
                                 "windows_on_their_own": 4}
    (tile,) = json.loads((tmp_path / "out" / "run.json").read_text())["tiles"][0]["shift_px"]
    assert not tile["agreed"] and tile["windows"]["moved"] == 4


@pytest.mark.parametrize("rows, cols", [(3, -2), (-5, 4), (0, 3), (2, 0), (0.4, -0.3)])
def test_whole_pixel_shift_repeats_the_edges(rows, cols):
    from scipy import ndimage

    from satcheck.coregister import Shift

    img = np.random.default_rng(1).integers(0, 255, (3, 40, 50)).astype(np.uint8)
    s = Shift(rows, cols, agreed=True)
    ref = ndimage.shift(img, (0, -round(rows), -round(cols)), order=0, mode="nearest")
    assert np.array_equal(shift_array(img, s), ref)
    mask = img[0] > 100
    assert np.array_equal(shift_array(mask, s), ref[0] > 100)
