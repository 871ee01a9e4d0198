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

from tests.cli_results import invoke as _run
from tests.cli_results import one_line_error as _one_line_error
from tests.enforcement_data import CRS, jurisdiction, manifest
from tests.generate import ORIGIN, square_pair


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
@pytest.fixture()
def site(tmp_path) -> Path:
    jurisdiction(tmp_path)
    return tmp_path


def _run_site(site: Path, *extra):
    return _run("run", site / "before", site / "after", "--rules", site / "rules", "--out", site / "out",
                "--detector", "cva", *extra)


def test_farmland_of_points_is_an_error_before_any_tile_is_read(site):
    x0, y0 = ORIGIN
    (site / "rules" / "farmland.gpkg").unlink()
    gpd.GeoDataFrame({"DLBM": ["0101", "0101"]}, geometry=[Point(x0 + 20, y0 - 20), Point(x0 + 120, y0 - 20)],
                     crs=CRS).to_file(site / "rules" / "farmland.gpkg")
    _one_line_error(_run_site(site), "farmland.gpkg", "farmland layer", "Point", "Polygon or MultiPolygon")
    assert not (site / "out" / "changes.gpkg").exists()


def test_permits_as_lines_are_an_error(site):
    x0, y0 = ORIGIN
    (site / "rules" / "mining_permits.gpkg").unlink()
    gpd.GeoDataFrame({"permit_no": ["P1"], "holder": ["甲"], "valid_from": ["2020-01-01"], "valid_to": ["2030-12-31"]},
                     geometry=[LineString([(x0 + 110, y0 - 125), (x0 + 130, y0 - 145)])],
                     crs=CRS).to_file(site / "rules" / "mining_permits.shp")
    _one_line_error(_run_site(site), "mining_permits.shp", "LineString", "Polygon or MultiPolygon")


def test_a_point_among_polygons_is_an_error_naming_the_feature(site):
    """A GeoPackage of mixed geometry says 'Unknown' in its header: each feature is checked when the layer is read."""
    x0, y0 = ORIGIN
    gpd.GeoDataFrame({"DLBM": ["0101", "0101"]}, geometry=[box(x0, y0 - 288, x0 + 288, y0), Point(x0 + 5, y0 - 5)],
                     crs=CRS).to_file(site / "rules" / "farmland.gpkg")
    _one_line_error(_run_site(site), "farmland.gpkg", "Point", "feature id 1", "Polygon or MultiPolygon")
    assert not (site / "out" / "patches.gpkg").exists()


def test_all_null_class_codes_are_an_error(site):
    x0, y0 = ORIGIN
    gpd.GeoDataFrame({"DLBM": [None], "DLMC": ["水田"]}, geometry=[box(x0, y0 - 288, x0 + 288, y0)],
                     crs=CRS).to_file(site / "rules" / "farmland.gpkg")
    _one_line_error(_run_site(site), "farmland.gpkg", "'DLBM' is empty in every feature", "rules.farmland.class_code")
    assert not (site / "out" / "changes.gpkg").exists()  # found from the attribute table, before any tile is read
    assert not (site / "out" / "patches.gpkg").exists()


def test_numeric_class_codes_still_count_as_farmland(site):
    """DLBM stored as a number (0101 read as 101) is the land class 0101: the five houses stay farmland construction."""
    x0, y0 = ORIGIN
    gpd.GeoDataFrame({"DLBM": [101], "DLMC": ["水田"]}, geometry=[box(x0, y0 - 288, x0 + 288, y0)],
                     crs=CRS).to_file(site / "rules" / "farmland.gpkg")
    r = _run_site(site, "--json")
    assert r.exit_code == 0, (r.output, r.exception)
    p = gpd.read_file(site / "out" / "patches.gpkg")
    assert (p["class"] == "farmland_construction").sum() == 5
    assert set(p.loc[p["class"] == "farmland_construction", "farmland_class"]) == {"0101"}


def test_empty_rules_folder_is_an_error(site):
    empty = site / "no_layers"
    empty.mkdir()
    (empty / "Farmland_2026.gpkg").write_bytes((site / "rules" / "farmland.gpkg").read_bytes())
    r = _run("run", site / "before", site / "after", "--rules", empty, "--out", site / "out", "--detector", "cva")
    _one_line_error(r, str(empty), "no rule layer found", "Farmland_2026.gpkg", "farmland, basic_farmland")
    assert not (site / "out" / "changes.gpkg").exists()


def _admin(site: Path, codes) -> None:
    x0, y0 = ORIGIN
    gpd.GeoDataFrame({"XZQDM": codes, "XZQMC": ["吉安县", "吉水县"]},
                     geometry=[box(x0 - 1000, y0 - 1000, x0 + 144, y0 + 1000),
                               box(x0 + 144, y0 - 1000, x0 + 2000, y0 + 1000)],
                     crs=CRS).to_file(site / "rules" / "admin.gpkg")


def test_numeric_admin_codes_are_read_as_text(site):
    """XZQDM stored as numbers (a float column, as a survey export with a NULL gives) makes ids 360821-..., not
    360821.0-...; a code stored as text keeps its leading zero."""
    _admin(site, [360821.0, 360822.0])
    r = _run_site(site, "--json")
    assert r.exit_code == 0, (r.output, r.exception)
    p = gpd.read_file(site / "out" / "patches.gpkg")
    assert set(p["admin_code"]) == {"360821", "360822"}
    assert all(pid.split("-")[0] in ("360821", "360822") for pid in p["patch_id"])

    _admin(site, ["036082", "036083"])
    r = _run("run", site / "before", site / "after", "--rules", site / "rules", "--out", site / "out2", "--detector",
             "cva", "--json")
    assert r.exit_code == 0, (r.output, r.exception)
    assert set(gpd.read_file(site / "out2" / "patches.gpkg")["admin_code"]) == {"036082", "036083"}


def test_admin_code_that_is_no_code_is_an_error(site):
    _admin(site, [12, 360822])
    _one_line_error(_run_site(site), "admin.gpkg", "'XZQDM' of feature id 0 is '12'", "6-, 9- or 12-digit",
                    "leading zeros")
    assert not (site / "out" / "changes.gpkg").exists()


# ------------------------------------------------------------------------------------------- configuration
def test_no_rejection_reasons_is_a_config_error(tmp_path):
    b, a, _ = square_pair(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("review:\n  reasons: []\n")
    _one_line_error(_run("run", b, a, "--out", tmp_path / "out", "--config", cfg), "c.yaml", "'review.reasons'",
                    "no patch could be rejected")
    cfg.write_text("review:\n  reasons:\n    - {key: other, label: other}\n    - {key: other, label: again}\n")
    _one_line_error(_run("run", b, a, "--out", tmp_path / "out", "--config", cfg), "'other' is listed twice")
    assert not (tmp_path / "out").exists()


def test_same_folder_as_both_dates_is_an_error(tmp_path):
    _, a, _ = square_pair(tmp_path)
    _one_line_error(_run("run", a.parent, a.parent, "--out", tmp_path / "out", "--detector", "cva"),
                    str(a.parent), "both the earlier and the later date", "BEFORE")
    link = tmp_path / "also_after"
    os.symlink(a.parent, link)
    _one_line_error(_run("run", link, a.parent, "--out", tmp_path / "out", "--detector", "cva"),
                    "both the earlier and the later date")
    assert not (tmp_path / "out").exists()


def test_manifest_period_that_is_not_the_imagery_month_is_an_error(tmp_path):
    """The later tiles are of 2026-10 (S_20261001_*): a manifest for 2026-09 would put their patches in another
    period than it says."""
    jurisdiction(tmp_path)
    m = manifest(tmp_path, period="2026-09")
    _one_line_error(_run("batch", m), "batch.yaml", "period 2026-09", "2026-10", "S_20261001_r", "'period:'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "ledger.sqlite").exists()


def test_manifest_period_is_checked_against_tag_dates(tmp_path):
    """Tiles without a date in their names are dated by their TIFF tags, as a run reads them."""
    jurisdiction(tmp_path)
    for t in sorted((tmp_path / "after").iterdir()):
        with rasterio.open(t, "r+") as dst:
            dst.update_tags(TIFFTAG_DATETIME="2026:11:02 10:30:00")
        t.rename(t.with_name(t.name.replace("S_20261001_", "S_")))
    _one_line_error(_run("batch", manifest(tmp_path)), "period 2026-10", "2026-11", "2026-11-02")


# ------------------------------------------------------------------------------------------- outputs
def test_export_name_cannot_leave_the_output_folder(site):
    assert _run_site(site).exit_code == 0
    out = site / "export"
    for name in ("../../x", "../x", "sub/x", "..", ""):
        _one_line_error(_run("export", site / "out" / "patches.gpkg", "--out", out, "--name", name, "-f", "csv"),
                        "not a file name", "--name")
    assert not list(site.parent.glob("x.*")) and not list(site.glob("x.*")) and not out.exists()
    r = _run("export", site / "out" / "patches.gpkg", "--out", out, "--name", "patches_2026_10", "-f", "csv")
    assert r.exit_code == 0 and (out / "patches_2026_10.csv").is_file()


def test_nan_weights_are_refused_at_load(tmp_path):
    import torch

    from satcheck.model.network import ChangeNet
    from satcheck.model.weights import save_weights

    m = ChangeNet(widths=(8, 16, 16, 24), decoder=16).eval()
    with torch.no_grad():
        next(m.parameters()).fill_(float("nan"))
    weights = save_weights(m, tmp_path / "diverged.pt", {"bands": [3, 4]})
    b, a, _ = square_pair(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"detect:\n  detector: model\n  model:\n    weights: {weights}\n    engine: torch\n")
    _one_line_error(_run("run", b, a, "--out", tmp_path / "out", "--config", cfg, "--device", "cpu"),
                    "diverged.pt", "NaN or infinity", "retrain")
    assert not (tmp_path / "out" / "changes.gpkg").exists()


def test_rule_layer_text_is_not_markup_on_the_sheets(site):
    """A permit holder is shown as written on the PDF and HTML sheets: no markup, no local file embedded."""
    import pypdfium2 as pdfium
    from PIL import Image

    secret = site / "secret.png"
    Image.new("RGB", (7, 13), (255, 0, 0)).save(secret)
    holder = f'Zhang & Sons <b>Ltd <img src="{secret}" width="7" height="13"/>'
    permits = gpd.read_file(site / "rules" / "mining_permits.gpkg")
    permits["holder"] = [holder]
    permits.to_file(site / "rules" / "mining_permits.gpkg")
    r = _run_site(site)
    assert r.exit_code == 0, (r.output, r.exception)
    out = site / "out"
    assert (out / "run.json").is_file()
    doc = pdfium.PdfDocument(str(out / "field_sheet.pdf"))
    try:
        text = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc))).replace("\r", "")
        sizes = {tuple(im.get_px_size()) for i in range(len(doc))
                 for im in doc[i].get_objects(filter=(pdfium.raw.FPDF_PAGEOBJ_IMAGE,))}
    finally:
        doc.close()
    assert holder.replace(" ", "") in text.replace("\n", "").replace(" ", "")
    assert sizes and (7, 13) not in sizes  # the chips, and not the local file
    html = (out / "field_sheet.html").read_text(encoding="utf-8")
    assert holder not in html and holder.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace('"', "&#34;") in html
