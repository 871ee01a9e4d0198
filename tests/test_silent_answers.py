"""Inputs that used to give a wrong answer with exit code 0 and no word (issue 19): each is now a correct answer or a
one-line error, exit code 2, naming the file and the fix. Every case runs through the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import LineString, Point, box
from typer.testing import CliRunner

from satcheck.cli import app
from tests.enforcement_data import CRS, jurisdiction, manifest
from tests.generate import ORIGIN, square_pair

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(result, *needles):
    """Exit code 2 and one line 'error: ...' last (progress lines may come before it), holding each of ``needles``."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert lines and lines[-1].startswith("error:") and sum(ln.startswith("error:") for ln in lines) == 1, lines
    text = lines[-1]
    for n in needles:
        assert n in text, text
    return text


# ------------------------------------------------------------------------------------------- NaN is nodata
def _as_float(src: Path, dst: Path, nan_cols: slice | None) -> Path:
    """``src`` rewritten as float32 reflectance without a nodata tag, NaN in the columns ``nan_cols``."""
    with rasterio.open(src) as s:
        data = s.read().astype(np.float32) * (0.8 / 255)
        profile = s.profile | {"dtype": "float32", "nodata": None}
    if nan_cols is not None:
        data[:, :, nan_cols] = np.nan
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as o:
        o.write(data)
    return dst


def _float_pair(tmp_path: Path, before_nan: slice | None, after_nan: slice | None) -> tuple[Path, Path]:
    b, a, _ = square_pair(tmp_path)  # a roof square at rows 100-140, columns 120-160 of the 256 px later date
    return (_as_float(b, tmp_path / "fb" / b.name, before_nan).parent,
            _as_float(a, tmp_path / "fa" / a.name, after_nan).parent)


@pytest.mark.parametrize("which", ["before", "after"])
def test_all_nan_float_tile_is_an_error_naming_it(tmp_path, which):
    """A float32 tile that is all NaN without a nodata tag is a tile without data, not one without change."""
    nan = slice(None)
    b, a = _float_pair(tmp_path, nan if which == "before" else None, nan if which == "after" else None)
    r = _run("run", b, a, "--out", tmp_path / "out", "--detector", "cva")
    empty = (b if which == "before" else a) / ("T_20260901.tif" if which == "before" else "T_20261001.tif")
    _one_line_error(r, str(empty), "no data", "NaN")
    assert not (tmp_path / "out" / "changes.gpkg").exists()


def test_partly_nan_float_tile_is_read_as_nodata(tmp_path):
    """NaN columns are nodata: the roof is found where the later date has data, and run.json says how much has none."""
    b, a = _float_pair(tmp_path, None, slice(0, 128))  # the later date's western half is NaN
    out = tmp_path / "out"
    r = _run("run", b, a, "--out", out, "--detector", "cva", "--json")
    assert r.exit_code == 0, (r.output, r.exception)
    changes = gpd.read_file(out / "changes.gpkg")
    assert len(changes) == 1
    x0 = ORIGIN[0] + 128  # the roof is at columns 120-160; its part with data starts at column 128
    minx, _, maxx, _ = changes.total_bounds
    assert minx >= x0 - 1.5 and maxx == pytest.approx(ORIGIN[0] + 160, abs=1.5)
    masked = json.loads((out / "run.json").read_text())["tiles"][0]["masked"]
    assert masked["nodata"] == pytest.approx(0.5, abs=0.02)


def test_inspect_counts_nan_as_nodata(tmp_path):
    _, a = _float_pair(tmp_path, None, slice(0, 64))
    r = _run("inspect", a / "T_20261001.tif", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["nodata_share"] == pytest.approx(0.25, abs=0.01)


# ------------------------------------------------------------------------------------------- rule layers


# ------------------------------------------------------------------------------------------- configuration


# ------------------------------------------------------------------------------------------- outputs


