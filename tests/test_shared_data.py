"""Real imagery from ../shared/data: skipped cleanly when it is absent."""

import json

import pytest
from typer.testing import CliRunner

from satcheck.cli import app

runner = CliRunner()


def test_eval_levir_held_out(shared_data):
    r = runner.invoke(app, ["eval", str(shared_data / "levir_cd_samples"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    names = [i["name"] for i in d["images"]]
    assert names and not set(names) & set(d["skipped_trained_on"])
    assert 0 <= d["f1"] <= 1


def test_naip_years_pair_and_run(shared_data, tmp_path):
    """Two real NAIP years (real misregistration, crop change, no construction): the run completes on real tiles."""
    series = sorted((shared_data / "naip_series").glob("*.tif"))
    r = runner.invoke(app, ["run", str(series[0]), str(series[-1]), "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["pairs"] == 1 and s["area_km2"] > 10


def test_oscd_geotiffs_in_epsg4326_on_different_grids(shared_data, tmp_path):
    city = shared_data / "oscd" / "beirut"
    before = next(city.glob("before_*.tif"))
    after = next(city.glob("after_*.tif"))
    r = runner.invoke(app, ["run", str(before), str(after), "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["pairs"] == 1


@pytest.mark.parametrize("years", [(0, 1), (3, 4), (7, 8)])
def test_coregistration_finds_a_shift_between_real_farmland_years(shared_data, years):
    """Two NAIP years (crops changed, real sub-pixel offsets): a planted shift of (3, -2) px is measured on top of
    what the pair has already, within a tenth of a pixel."""
    import numpy as np
    import rasterio

    from satcheck.coregister import measure_arrays

    series = sorted((shared_data / "naip_series").glob("*.tif"))
    imgs = []
    for i in years:
        with rasterio.open(series[i]) as src:
            imgs.append(src.read()[:, :720, :930].astype(np.float32) / 255)
    before, after = imgs
    ok = (before[:3].sum(0) > 0) & (after[:3].sum(0) > 0)
    base = measure_arrays(before, after, ok, 8)
    moved = measure_arrays(np.roll(before, (3, -2), (1, 2)), after, ok, 8)
    assert base.agreed and moved.agreed
    assert moved.rows - base.rows == pytest.approx(3, abs=0.1) and moved.cols - base.cols == pytest.approx(-2, abs=0.1)
