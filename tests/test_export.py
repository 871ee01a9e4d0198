"""Every export is read back and compared with the GeoPackage; runs are reproducible."""

import csv
import filecmp
import xml.etree.ElementTree as ET

import geopandas as gpd
import numpy as np
import pytest
from typer.testing import CliRunner

from satcheck.cli import app
from satcheck.export import SHP_NAMES
from satcheck.patches import CLASS_ZH, PATCH_FIELDS

runner = CliRunner()
KML = "{http://www.opengis.net/kml/2.2}"


@pytest.fixture(scope="module")
def run_out(small_scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    r = runner.invoke(app, ["run", str(small_scene / "before"), str(small_scene / "after"), "--rules",
                            str(small_scene / "rules"), "--out", str(out), "--detector", "cva"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def exported(run_out, tmp_path_factory):
    """All patches (every class) re-exported in every format."""
    out = tmp_path_factory.mktemp("export")
    r = runner.invoke(app, ["export", str(run_out / "patches.gpkg"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return gpd.read_file(run_out / "patches.gpkg", layer="patches"), out


def test_gpkg_schema(exported):
    gpkg, _ = exported
    assert len(gpkg) > 0
    assert list(gpkg.columns) == list(PATCH_FIELDS) + ["geometry"]
    assert gpkg.crs.to_epsg() == 4547
    assert gpkg["patch_id"].is_unique


def test_geojson_roundtrip(exported):
    gpkg, out = exported
    gj = gpd.read_file(out / "patches.geojson")
    assert gj.crs.to_epsg() == 4326
    assert list(gj["patch_id"]) == list(gpkg["patch_id"])
    back = gj.to_crs(gpkg.crs)
    for a, b in zip(back.geometry, gpkg.geometry):
        assert a.symmetric_difference(b).area < 0.01 * b.area + 1.0


def test_shapefile_roundtrip(exported):
    gpkg, out = exported
    shp = gpd.read_file(out / "patches.shp")
    assert all(len(c) <= 10 for c in shp.columns)
    assert (out / "patches.cpg").read_text().strip().upper() in ("UTF-8", "UTF8")
    assert list(shp[SHP_NAMES["patch_id"]]) == list(gpkg["patch_id"])
    assert list(shp[SHP_NAMES["admin_name"]]) == list(gpkg["admin_name"])  # Chinese survives
    assert np.allclose(shp[SHP_NAMES["area_m2"]], gpkg["area_m2"])


def test_csv_roundtrip_with_bom(exported, tmp_path, run_out):
    gpkg, out = exported
    raw = (out / "patches.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with open(out / "patches.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["patch_id"] for r in rows] == list(gpkg["patch_id"])
    assert [float(r["area_m2"]) for r in rows] == pytest.approx(list(gpkg["area_m2"]))
    zh = tmp_path / "zh"
    r = runner.invoke(app, ["export", str(run_out / "patches.gpkg"), "--out", str(zh), "-f", "csv", "--lang", "zh"])
    assert r.exit_code == 0, r.output
    with open(zh / "patches.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "图斑编号" in rows[0] and rows[0]["图斑类型"] in CLASS_ZH.values()


def test_kml_roundtrip(exported):
    gpkg, out = exported
    root = ET.parse(out / "patches.kml").getroot()
    marks = root.findall(f".//{KML}Placemark")
    assert [m.find(f"{KML}name").text for m in marks] == list(gpkg["patch_id"])
    geo = gpkg.to_crs("EPSG:4326")
    for m, g in zip(marks, geo.geometry):
        coords = m.find(f".//{KML}outerBoundaryIs/{KML}LinearRing/{KML}coordinates").text.split()
        lon, lat = map(float, coords[0].split(",")[:2])
        assert g.buffer(1e-6).contains(gpd.points_from_xy([lon], [lat])[0])
        assert m.find(f"{KML}styleUrl").text.lstrip("#") in CLASS_ZH


def test_export_filters(run_out, tmp_path):
    gpkg = gpd.read_file(run_out / "patches.gpkg", layer="patches")
    cls = gpkg["class"].iloc[0]
    r = runner.invoke(app, ["export", str(run_out / "patches.gpkg"), "--out", str(tmp_path), "-f", "geojson",
                            "--class", cls, "--min-area", "300"])
    assert r.exit_code == 0, r.output
    sub = gpd.read_file(tmp_path / "patches.geojson")
    assert set(sub["class"]) <= {cls} and (sub["area_m2"] >= 300).all()
    bad = runner.invoke(app, ["export", str(run_out / "patches.gpkg"), "--out", str(tmp_path), "--class", "nope"])
    assert bad.exit_code != 0


def test_two_runs_are_identical(small_scene, run_out, tmp_path):
    r = runner.invoke(app, ["run", str(small_scene / "before"), str(small_scene / "after"), "--rules",
                            str(small_scene / "rules"), "--out", str(tmp_path), "--detector", "cva"])
    assert r.exit_code == 0, r.output
    a = gpd.read_file(run_out / "patches.gpkg", layer="patches")
    b = gpd.read_file(tmp_path / "patches.gpkg", layer="patches")
    assert list(a["patch_id"]) == list(b["patch_id"])
    assert all(x.equals_exact(y, 1e-6) for x, y in zip(a.geometry, b.geometry))
    for name in ("patches.csv", "patches.kml", "patches.geojson"):
        assert filecmp.cmp(run_out / name, tmp_path / name, shallow=False), name


def _need_cjk_font():
    from satcheck.errors import OutputError
    from satcheck.report.sheets import find_cjk_font

    try:
        find_cjk_font()
    except OutputError as exc:
        pytest.skip(str(exc))


def test_field_sheets(run_out):
    html = (run_out / "field_sheet.html").read_text(encoding="utf-8")
    assert "卫片执法图斑外业核查表" in html and "data:image/jpeg;base64," in html and "核查人" in html
    _need_cjk_font()
    assert (run_out / "field_sheet.pdf").read_bytes().startswith(b"%PDF")


def test_pdf_renders_chinese_glyphs(run_out):
    """Rasterise the PDF title and check each Chinese character is a distinct glyph, not an empty box."""
    _need_cjk_font()
    pdfium = pytest.importorskip("pypdfium2")
    page = pdfium.PdfDocument(str(run_out / "field_sheet.pdf"))[0]
    img = np.asarray(page.render(scale=3).to_pil().convert("L"), dtype=np.float32)
    ink_rows = np.where((img < 128).sum(axis=1) > 0)[0]
    top = ink_rows[0]
    band = img[top: top + int(18 * 3 * 1.1)]  # the 18 pt title line
    cols = np.where((band < 128).any(axis=0))[0]
    # Split the line into glyphs at empty columns.
    glyphs, start = [], cols[0]
    for a, b in zip(cols[:-1], cols[1:]):
        if b - a > 2:
            glyphs.append(band[:, start: a + 1])
            start = b
    glyphs.append(band[:, start: cols[-1] + 1])
    assert len(glyphs) >= 8  # 卫片执法图斑外业核查表 has 11
    inks = [(g < 128).mean() for g in glyphs]
    assert min(inks) > 0.05
    # Tofu boxes are identical hollow rectangles; real glyphs differ from one another.
    sigs = {tuple(np.round((g < 128).mean(axis=0)[:20], 1)) for g in glyphs}
    assert len(sigs) >= len(glyphs) - 2


def test_run_sheets_say_they_are_for_review_and_stay_small(run_out):
    """Issue 18 (8, 9): the run's sheets are for review, not the field; at most 200 KB per patch (JPEG chips)."""
    html = (run_out / "field_sheet.html").read_text(encoding="utf-8")
    assert "审核用" in html and "satcheck review package" in html
    n = len(gpd.read_file(run_out / "patches.geojson"))
    assert n > 0
    assert (run_out / "field_sheet.html").stat().st_size <= 200_000 * n
    if (run_out / "field_sheet.pdf").exists():
        assert (run_out / "field_sheet.pdf").stat().st_size <= 200_000 * n


def test_zh_export_values_are_chinese_and_never_nan(run_out, tmp_path):
    """Issue 18 (8): with --lang zh every value a person reads is Chinese; no nan in KML descriptions."""
    r = runner.invoke(app, ["export", str(run_out / "patches.gpkg"), "--out", str(tmp_path), "-f", "csv", "-f", "kml",
                            "-f", "xlsx", "--lang", "zh"])
    assert r.exit_code == 0, r.output
    with open(tmp_path / "patches.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["变化类型"] for r in rows} <= {"建筑", "硬化地面", "挖损", "建设"}
    assert {r["涉及永久基本农田"] for r in rows} <= {"是", "否", ""}
    assert {r["状态"] for r in rows} == {"待审核"}
    kml = (tmp_path / "patches.kml").read_text(encoding="utf-8")
    for word in (">nan<", ">None<", ">True<", ">False<", ">pending<"):
        assert word not in kml, word
    assert (tmp_path / "patches.xlsx").stat().st_size > 0
