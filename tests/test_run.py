"""satcheck run end to end through the CLI."""

import json
import re

import geopandas as gpd
import pytest
import rasterio
from shapely.geometry import box
from typer.testing import CliRunner

from satcheck.cli import app
from tests.generate import square_pair, to_geographic

runner = CliRunner()


def _run(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.parametrize("before_crs, before_res", [(None, None), ("EPSG:4326", None), ("EPSG:4548", 2.0),
                                                     ("EPSG:4547", 2.0)])
def test_planted_square_comes_back_at_its_coordinates(tmp_path, before_crs, before_res):
    b, a, bounds = square_pair(tmp_path, before_crs=before_crs, before_res=before_res)
    _run("run", b, a, "--out", tmp_path / "out", "--detector", "cva")
    changes = gpd.read_file(tmp_path / "out" / "changes.gpkg", layer="changes")
    assert changes.crs.to_epsg() == 4547
    target = box(*bounds)
    hit = changes[changes.intersects(target)]
    assert len(hit) == 1
    got = hit.geometry.iloc[0]
    # Every edge within one pixel (1 m) of where the square was planted.
    assert got.hausdorff_distance(target) <= 1.0 + 1e-6, (got.bounds, target.bounds)


def test_tiles_in_degrees_give_changes_in_metres(tmp_path):
    """CGCS2000 lat/lon tiles (EPSG:4490): polygons in the 3-degree Gauss-Krüger zone, areas in m² (not degrees²)."""
    b, a, bounds = square_pair(tmp_path)
    to_geographic(b)
    to_geographic(a)
    _run("run", b, a, "--out", tmp_path / "out", "--detector", "cva")
    changes = gpd.read_file(tmp_path / "out" / "changes.gpkg", layer="changes")
    assert changes.crs.to_epsg() == 4547
    hit = changes[changes.intersects(box(*bounds))]
    assert len(hit) == 1
    assert hit["area_m2"].iloc[0] == pytest.approx(40 * 40, rel=0.1)
    assert hit.geometry.iloc[0].hausdorff_distance(box(*bounds)) <= 2.0


def test_run_outputs_and_json(tmp_path):
    b, a, _ = square_pair(tmp_path)
    r = _run("run", b, a, "--out", tmp_path / "out", "--detector", "cva", "--json")
    summary = json.loads(r.output)
    assert summary["changes"] == 1 and summary["pairs"] == 1
    out = tmp_path / "out"
    assert (out / "config.yaml").exists() and (out / "run.json").exists()
    with rasterio.open(out / "probability" / "T_20261001.tif") as src:
        assert src.crs.to_epsg() == 4547 and src.profile["tiled"] and src.overviews(1) is not None
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_window_size_does_not_change_results(tmp_path):
    """Small windows (many borders through the square) give the same polygon as one big window."""
    b, a, bounds = square_pair(tmp_path, square=(60, 60, 70))
    cfg = tmp_path / "small.yaml"
    cfg.write_text("window:\n  size: 64\n")
    _run("run", b, a, "--out", tmp_path / "big", "--detector", "cva")
    _run("run", b, a, "--out", tmp_path / "small", "--detector", "cva", "--config", cfg)
    g1 = gpd.read_file(tmp_path / "big" / "changes.gpkg").geometry
    g2 = gpd.read_file(tmp_path / "small" / "changes.gpkg").geometry
    assert len(g1) == len(g2) == 1
    assert g1.iloc[0].symmetric_difference(g2.iloc[0]).area <= 0.02 * g1.iloc[0].area


def test_inspect_and_version(tmp_path):
    b, a, _ = square_pair(tmp_path)
    r = _run("inspect", a, "--json")
    assert json.loads(r.output)["date"] == "2026-10-01"
    assert "satcheck" in _run("--version").output


@pytest.mark.parametrize("missing", ["torch", "onnxruntime"])
def test_auto_falls_back_to_the_baseline_only_when_a_runtime_is_missing(monkeypatch, missing):
    import satcheck.detect.learned as learned
    from satcheck.config import DetectConfig
    from satcheck.detect import get_detector
    from satcheck.errors import ConfigError

    def no_runtime(*a, **k):
        raise ImportError(f"No module named '{missing}'", name=missing)

    monkeypatch.setattr(learned, "ModelDetector", no_runtime)
    with pytest.warns(UserWarning, match=f"{missing} is not installed"):
        assert get_detector(DetectConfig(), 4).name == "cva"
    with pytest.raises(ConfigError, match=f"needs {missing}"):
        get_detector(DetectConfig(detector="model"), 4)

    def broken(*a, **k):
        raise ImportError("cannot import name 'x' from 'satcheck.model.runtime'", name="satcheck.model.runtime")

    monkeypatch.setattr(learned, "ModelDetector", broken)
    with pytest.raises(ImportError, match="satcheck.model.runtime"):
        get_detector(DetectConfig(), 4)


def test_reading_windows_ahead_in_several_threads_does_not_change_results(tmp_path):
    b, a, _ = square_pair(tmp_path, square=(60, 60, 70))
    for readers in (1, 3):
        (tmp_path / f"r{readers}.yaml").write_text(f"window:\n  size: 64\n  readers: {readers}\n")
        _run("run", b, a, "--out", tmp_path / f"r{readers}", "--detector", "cva", "--config", tmp_path / f"r{readers}.yaml")
    with rasterio.open(tmp_path / "r1" / "probability" / "T_20261001.tif") as one, \
            rasterio.open(tmp_path / "r3" / "probability" / "T_20261001.tif") as three:
        assert (one.read() == three.read()).all()
    g1 = gpd.read_file(tmp_path / "r1" / "changes.gpkg").geometry
    g3 = gpd.read_file(tmp_path / "r3" / "changes.gpkg").geometry
    assert len(g1) == len(g3) == 1 and g1.iloc[0].equals(g3.iloc[0])


def test_rgba_orthophotos_run_as_rgb_with_the_alpha_as_mask(tmp_path):
    """An alpha band (RGBA deliveries) is the data mask, not a fourth (NIR) band."""
    import numpy as np

    b, a, bounds = square_pair(tmp_path)
    for path in (b, a):
        with rasterio.open(path) as src:
            rgb, profile = src.read([1, 2, 3]), src.profile
        alpha = np.full(rgb.shape[1:], 255, np.uint8)
        alpha[:, :20] = 0  # a transparent margin: no data there
        rgb[:, :, :20] = 0
        profile.update(count=4, photometric="rgb", alpha="yes", nodata=None)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.concatenate([rgb, alpha[None]]))
    info = json.loads(_run("inspect", a, "--json").output)
    assert info["bands"] == 3 and info["nodata_share"] == pytest.approx(20 / 256, abs=1e-3)
    summary = json.loads(_run("run", b, a, "--out", tmp_path / "out", "--detector", "cva", "--json").output)
    assert summary["masked_share"] == 0 and summary["megapixels"] == pytest.approx(256 * 256 / 1e6, abs=1e-3)
    changes = gpd.read_file(tmp_path / "out" / "changes.gpkg")
    hit = changes[changes.intersects(box(*bounds))]
    assert len(hit) == 1 and hit.geometry.iloc[0].hausdorff_distance(box(*bounds)) <= 1.0 + 1e-6
    with rasterio.open(tmp_path / "out" / "probability" / "T_20261001.tif") as src:
        prob = src.read(1)
    assert (prob[:, :20] == 255).all() and (prob[:, 20:] != 255).all()  # the transparent margin is nodata


def test_nir_band_that_gdal_calls_alpha_stays_a_band(tmp_path):
    """GDAL writes 4-band 8-bit GeoTIFFs as RGBA by default: a band with real values is NIR, not a mask."""
    b, a, _ = square_pair(tmp_path)
    with rasterio.open(a) as src:
        data, profile = src.read(), src.profile
    profile.pop("photometric", None)
    with rasterio.open(a, "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(a) as src:
        assert src.colorinterp[3] == rasterio.enums.ColorInterp.alpha
    assert json.loads(_run("inspect", a, "--json").output)["bands"] == 4


def test_gf_named_tiles_read_in_file_order_are_warned_about(tmp_path):
    b, a, _ = square_pair(tmp_path)
    b = b.rename(b.with_name("GF2_PMS1_E115.5_N28.3_20260901_L1A0001.tif"))
    r = _run("run", b, a, "--out", tmp_path / "out", "--detector", "cva", "--json")
    (warning,) = json.loads(r.output)["warnings"]
    assert warning.startswith("GF2_PMS1_E115.5_N28.3_20260901_L1A0001.tif: named like a GF/ZY product")
    r = _run("run", b, a, "--out", tmp_path / "out2", "--detector", "cva")
    assert "bands.after to [3, 2, 1, 4]" in r.output.replace("\n", " ")


def test_later_imagery_without_earlier_imagery_is_reported(tmp_path):
    """A later tile no earlier tile overlaps, and one half covered: the user learns what was not compared."""
    from affine import Affine
    from rasterio.windows import Window

    b, a, _ = square_pair(tmp_path)
    with rasterio.open(a) as src:
        data, profile = src.read(), src.profile
    far = profile | {"transform": profile["transform"] * Affine.translation(9000, 0)}
    with rasterio.open(a.with_name("T_20261001_far.tif"), "w", **far) as dst:
        dst.write(data)
    with rasterio.open(b) as src:
        left, profile = src.read(window=Window(0, 0, 128, 256)), src.profile | {"width": 128}
    with rasterio.open(b, "w", **profile) as dst:
        dst.write(left)
    r = _run("run", b, a.parent, "--out", tmp_path / "out", "--detector", "cva", "--json")
    warnings = json.loads(r.output)["warnings"]
    assert warnings == ["no earlier tile overlaps 1 later tile, not compared: T_20261001_far.tif; add the earlier "
                        "imagery of that area", "T_20261001.tif: 50% of it lies outside the earlier imagery and is not "
                        "compared"]


def test_run_off_a_terminal_prints_a_line_as_each_stage_starts_and_ends(tmp_path):
    """Issue 18 (progress): piped, in cron or a log, a run says what it is doing as it goes, every stage (not only
    detection), one line as each starts and ends and none in between (the run is far shorter than 10 s); the
    summary's counts are the files'."""
    b, a, bounds = square_pair(tmp_path)
    (tmp_path / "rules").mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[box(*bounds).buffer(30)], crs="EPSG:4547").to_file(
        tmp_path / "rules" / "farmland.gpkg")
    r = runner.invoke(app, ["run", str(b), str(a), "--rules", str(tmp_path / "rules"), "--out", str(tmp_path / "out"),
                            "--detector", "cva"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    stages = [m.group(1) for m in map(re.compile(r"^(\w+): (started \(|done, )").match, lines) if m]
    assert stages == [s for s in ("detection", "changes", "patches", "chips", "sheets") for _ in (0, 1)], lines
    assert "detection: started (0.07 Mpx)" in lines and "chips: started (1 patch)" in lines
    assert lines.index("sheets: started (2 files)") < next(i for i, ln in enumerate(lines) if "satcheck run" in ln)
    out = tmp_path / "out"
    rows = len((out / "patches.csv").read_text(encoding="utf-8-sig").splitlines()) - 1
    assert rows == 1 and "1 in the field files" in r.output
    assert (out / "field_sheet.pdf").exists() and (out / "field_sheet.html").exists()


def test_plain_progress_says_how_far_a_long_stage_has_got_every_ten_seconds():
    """Between its start and end a stage gets a line at most every 10 s, not one per window."""
    import io

    from rich.console import Console

    from satcheck.cli_progress import PlainProgress

    now = [0.0]
    console = Console(record=True, width=200, file=io.StringIO())
    p = PlainProgress(console, clock=lambda: now[0])
    for k in range(101):  # 100 windows of 1 Mpx, one every 0.5 s
        p("detection", k * 1_000_000, 100_000_000)
        now[0] += 0.5
    lines = console.export_text().splitlines()
    assert lines[0] == "detection: started (100.00 Mpx)" and lines[-1] == "detection: done, 100.00 Mpx in 50.0 s"
    assert lines[1:-1] == [f"detection: {k}.00 Mpx of 100.00 Mpx ({k}%)" for k in (20, 40, 60, 80)]
