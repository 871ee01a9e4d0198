"""Real imagery from ../shared/data: skipped cleanly when it is absent."""

import json

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
