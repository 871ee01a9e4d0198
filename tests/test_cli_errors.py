"""Each bad input exits non-zero with one line naming the file, and leaves no output under a final name."""

import shutil

import numpy as np
from typer.testing import CliRunner

from satcheck.cli import app
from tests.generate import square_pair, textured, write

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    assert text.startswith("error:"), text
    for n in needles:
        assert n in text, text


def test_missing_file(tmp_path):
    b, a, _ = square_pair(tmp_path)
    r = _run("run", tmp_path / "missing.tif", a, "--out", tmp_path / "out", "--detector", "cva")
    _one_line_error(r, "missing.tif", "not found")
    assert not (tmp_path / "out" / "changes.gpkg").exists()


def test_not_a_raster(tmp_path):
    b, a, _ = square_pair(tmp_path)
    bad = tmp_path / "junk.tif"
    bad.write_bytes(b"\x00" * 100)
    _one_line_error(_run("run", bad, a, "--out", tmp_path / "out"), "junk.tif", "not a readable raster")


def test_no_crs(tmp_path):
    b, a, _ = square_pair(tmp_path)
    nocrs = write(tmp_path / "nocrs.tif", textured(1, (64, 64)), transform=None, crs=None)
    _one_line_error(_run("run", nocrs, a, "--out", tmp_path / "out"), "nocrs.tif", "no CRS")


def test_no_overlap(tmp_path):
    from rasterio.transform import from_origin

    b, a, _ = square_pair(tmp_path)
    far = write(tmp_path / "far" / "F_20260901.tif", textured(2, (64, 64)), from_origin(700000, 3100000, 1, 1))
    _one_line_error(_run("run", far, a, "--out", tmp_path / "out"), "no earlier tile overlaps")


def test_swapped_dates(tmp_path):
    """BEFORE dated after AFTER: the model would see construction backwards and flag nothing."""
    b, a, _ = square_pair(tmp_path)
    r = _run("run", a, b, "--out", tmp_path / "out", "--detector", "cva")
    _one_line_error(r, "T_20261001.tif", "2026-10-01", "swapped", "BEFORE AFTER")
    assert not (tmp_path / "out" / "changes.gpkg").exists()


def test_band_order_that_does_not_fit(tmp_path):
    b, a, _ = square_pair(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("bands:\n  after: [3, 2, 5]\n")
    r = _run("run", b, a, "--out", tmp_path / "out", "--config", cfg)
    _one_line_error(r, "T_20261001.tif", "[3, 2, 5]", "bands.after")


def test_band_mismatch(tmp_path):
    from rasterio.transform import from_origin

    from tests.generate import ORIGIN

    b, a, _ = square_pair(tmp_path)
    pan = write(tmp_path / "pan" / "R_20260901.tif", textured(2, (64, 64), bands=1), from_origin(*ORIGIN, 1, 1))
    _one_line_error(_run("run", pan, a, "--out", tmp_path / "out"), "R_20260901.tif", "has 1 band but")


def test_unknown_config_key(tmp_path):
    b, a, _ = square_pair(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detect:\n  treshold: 0.3\n")
    _one_line_error(_run("run", b, a, "--out", tmp_path / "out", "--config", cfg), "c.yaml", "unknown key 'detect.treshold'")


def test_bad_device_option(tmp_path):
    b, a, _ = square_pair(tmp_path)
    r = _run("run", b, a, "--out", tmp_path / "out", "--device", "tpu")
    assert r.exit_code != 0 and "--device" in r.output


def test_inspect_missing(tmp_path):
    _one_line_error(_run("inspect", tmp_path / "nope.tif"), "nope.tif")


def test_failed_run_keeps_previous_results(tmp_path, monkeypatch):
    """A run that fails half-way leaves the earlier changes.gpkg untouched and no temporary files."""
    b, a, _ = square_pair(tmp_path)
    out = tmp_path / "out"
    assert _run("run", b, a, "--out", out, "--detector", "cva").exit_code == 0
    before_bytes = (out / "changes.gpkg").read_bytes()

    import satcheck.detect.polygons as polygons

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(polygons.gpd.GeoDataFrame, "to_file", boom)
    r = _run("run", b, a, "--out", out, "--detector", "cva")
    assert r.exit_code != 0
    assert (out / "changes.gpkg").read_bytes() == before_bytes
    assert not [p for p in out.rglob("*") if ".part" in p.name or "scratch" in p.name]
    shutil.rmtree(out)
    _ = np
