"""Fault catalogue rows (tests/fault_catalogue.py): tiles, run configuration, rule layers, batch manifests, STAC."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point, box

from tests.cli_results import invoke
from tests.enforcement_data import CRS, manifest
from tests.fault_catalogue import (
    Case,
    Inputs,
    as_float,
    cfg,
    float_pair,
    last,
    nothing_written,
    numeric_admin,
    numeric_dlbm,
    one_change,
    partly_nan,
    run_pair,
    run_site,
    site_copy,
)
from tests.generate import ORIGIN, mosaic_pair, square_pair, textured, to_geographic, write


def _same_name_after(tmp: Path, inp: Inputs) -> Path:
    """Two later tiles of one name in two folders of one name: no name to keep them apart by."""
    m = site_copy(tmp, inp, after=str(tmp / "after" / "**" / "*.tif"))
    first = sorted((tmp / "after").glob("*.tif"))[0]
    for side in ("a", "b"):
        (tmp / "after" / side / "east").mkdir(parents=True)
        shutil.copy(first, tmp / "after" / side / "east" / first.name)
    return m


def _layer(tmp: Path, name: str, data: dict, geoms, suffix: str = ".gpkg") -> None:
    for old in (tmp / "rules").glob(f"{name}.*"):
        old.unlink()
    gpd.GeoDataFrame(data, geometry=geoms, crs=CRS).to_file(tmp / "rules" / f"{name}{suffix}")


X0, Y0 = ORIGIN
WHOLE = box(X0, Y0 - 288, X0 + 288, Y0)  # the site's later imagery


def _farmland(tmp, inp, data, geoms=(WHOLE,)):
    site_copy(tmp, inp)
    _layer(tmp, "farmland", data, list(geoms))
    return run_site(tmp)


def _admin(tmp, inp, codes):
    site_copy(tmp, inp)
    _layer(tmp, "admin", {"XZQDM": codes, "XZQMC": ["吉安县", "吉水县"]},
           [box(X0 - 1000, Y0 - 1000, X0 + 144, Y0 + 1000), box(X0 + 144, Y0 - 1000, X0 + 2000, Y0 + 1000)])
    return run_site(tmp, "--json")


def _recrs(tmp: Path, crs) -> None:
    """The farmland layer rewritten in ``crs`` (None: its CRS left out)."""
    path = tmp / "rules" / "farmland.gpkg"
    g = gpd.read_file(path)
    path.unlink()
    (g.set_crs(None, allow_override=True) if crs is None else g.to_crs(crs)).to_file(path)


def _stac(tmp: Path, inp: Inputs, hrefs: list[str]) -> Path:
    items = [{"type": "Feature", "stac_version": "1.0.0", "id": f"item{i}", "geometry": None, "bbox": None,
              "properties": {"datetime": "2026-09-01T00:00:00Z"}, "links": [],
              "assets": {"image": {"href": h, "type": "image/tiff; application=geotiff"}}} for i, h in enumerate(hrefs)]
    (tmp / "stac.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return site_copy(tmp, inp, before="stac.json")


def _stac_text(tmp: Path, inp: Inputs, text: str) -> list:
    (tmp / "stac.json").write_text(text, encoding="utf-8")
    return ["batch", site_copy(tmp, inp, before="stac.json")]


def _retag(tmp: Path, inp: Inputs) -> list:
    """Later tiles without a date in their names, dated 2026-11-02 by their TIFF tags."""
    m = site_copy(tmp, inp)
    for t in sorted((tmp / "after").iterdir()):
        with rasterio.open(t, "r+") as dst:
            dst.update_tags(TIFFTAG_DATETIME="2026:11:02 10:30:00")
        t.rename(t.with_name(t.name.replace("S_20261001_", "S_")))
    return ["batch", m]


def _truncated(tmp: Path, inp: Inputs, keep: int) -> Path:
    (tmp / "T_20261001.tif").write_bytes(inp.after.read_bytes()[:keep])
    return tmp / "T_20261001.tif"


def _vrt(tmp: Path) -> Path:
    (tmp / "x.vrt").write_text(
        f'<VRTDataset rasterXSize="64" rasterYSize="64"><SRS>EPSG:4547</SRS><GeoTransform>{ORIGIN[0]}, 1, 0, '
        f'{ORIGIN[1]}, 0, -1</GeoTransform><VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename>'
        f'{tmp / "gone.tif"}</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>')
    return tmp / "x.vrt"


def _no_scheduler(tmp: Path, inp: Inputs, mp) -> list:
    import satcheck.batch.run as run_mod

    mp.setattr(run_mod, "SCHEDULER_TIMEOUT_S", 2.0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ["batch", site_copy(tmp, inp), "--scheduler", f"tcp://127.0.0.1:{port}"]


def _damaged_batch_json(tmp: Path, damaged: str) -> list:
    """batch.json only says that the merge finished; each tile's done.json says what is done. Damaged (cut short by
    a full disk), it failed every rerun until deleted by hand: now the rerun redoes the merge (cheap), no tile."""
    mosaic_pair(tmp)
    m = manifest(tmp, ledger=None, rules=None)
    assert invoke("batch", m, "--json", "--workers", "1").exit_code == 0
    (tmp / "good.json").write_bytes((tmp / "out" / "batch.json").read_bytes())
    (tmp / "out" / "batch.json").write_text(damaged)
    return ["batch", m, "--json", "--workers", "1"]


def _batch_json_rebuilt(tmp: Path, r) -> None:
    s = json.loads(r.output)
    assert s["processed"] == 0 and s["skipped"] == 4 and not s["already_complete"]
    fingerprint = json.loads((tmp / "good.json").read_text())["fingerprint"]
    assert json.loads((tmp / "out" / "batch.json").read_text())["fingerprint"] == fingerprint
    again = invoke("batch", tmp / "batch.yaml", "--json", "--workers", "1")
    assert json.loads(again.output)["already_complete"], again.output


def _far_tile(tmp: Path, crs_epsg: int) -> Path:
    from rasterio.crs import CRS as RCRS

    return write(tmp / "far" / "F_20260901.tif", textured(2, (64, 64)), from_origin(500000, 4000000, 1, 1),
                 crs=RCRS.from_epsg(crs_epsg))


def _reprojected_before(tmp: Path, crs: str) -> list:
    b, a, _ = square_pair(tmp / "p", before_crs=crs)
    return ["run", b, a, "--out", tmp / "out", "--detector", "cva", "--json"]


def _geographic_before(tmp: Path, inp: Inputs) -> list:
    b = tmp / "b" / inp.before.name
    b.parent.mkdir()
    shutil.copy(inp.before, b)
    to_geographic(b)
    return run_pair(tmp, inp, "--json", before=b)


def _three_bands(tmp: Path, inp: Inputs) -> list:
    with rasterio.open(inp.after) as s:
        data, t = s.read([1, 2, 3]), s.transform
    return run_pair(tmp, inp, "--json", after=write(tmp / "a3" / inp.after.name, data, t))


def _nocrs(tmp: Path, name: str) -> Path:
    return write(tmp / "nocrs" / name, textured(1, (64, 64)), transform=None, crs=None)


def _symlink_both(tmp: Path, inp: Inputs) -> list:
    os.symlink(inp.after.parent, tmp / "also_after")
    return run_pair(tmp, inp, before=tmp / "also_after", after=inp.after.parent)


# ------------------------------------------------------------------------------------------- the table
CASES: list[Case] = [
    # ---- tiles
    Case("tile-missing", "an earlier tile that is not there",
         lambda t, i, m: run_pair(t, i, before=t / "missing.tif"), says=("not found",), names="missing.tif",
         check=nothing_written),
    Case("tile-after-missing", "a later folder that is not there",
         lambda t, i, m: run_pair(t, i, after=t / "nope"), says=("not found", "pass a GeoTIFF"), names="nope"),
    Case("tile-zero-bytes", "a zero-byte GeoTIFF",
         lambda t, i, m: last((t / "e.tif").write_bytes(b""), run_pair(t, i, before=t / "e.tif")),
         says=("not a readable raster",), names="e.tif"),
    Case("tile-junk", "a .tif of NUL bytes",
         lambda t, i, m: last((t / "junk.tif").write_bytes(b"\0" * 100), run_pair(t, i, before=t / "junk.tif")),
         says=("not a readable raster", "is the file complete"), names="junk.tif"),
    Case("tile-truncated", "a GeoTIFF cut short (its header whole, its last blocks missing)",
         lambda t, i, m: run_pair(t, i, after=_truncated(t, i, 20000)),
         says=("cut short", "copy or download it again"), names="T_20261001.tif", check=nothing_written),
    Case("inspect-vrt-missing-source", "inspect a VRT whose source file is gone",
         lambda t, i, m: ["inspect", _vrt(t)], says=("cannot be read to its end", "a file it refers to is missing"),
         names="x.vrt"),
    Case("inspect-truncated", "inspect a GeoTIFF cut short",
         lambda t, i, m: ["inspect", _truncated(t, i, 5000)], says=("cut short",), names="T_20261001.tif"),
    Case("tile-no-crs", "an earlier tile without a CRS",
         lambda t, i, m: run_pair(t, i, before=_nocrs(t, "nocrs.tif")), says=("has no CRS", "gdal_edit.py -a_srs"),
         names="nocrs.tif"),
    Case("tile-after-no-crs", "a later tile without a CRS",
         lambda t, i, m: run_pair(t, i, after=_nocrs(t, "T_20261001.tif")), says=("has no CRS",),
         names="nocrs/T_20261001.tif"),
    Case("tile-empty-folder", "a folder without tiles as the earlier date",
         lambda t, i, m: last((t / "before").mkdir(), run_pair(t, i, before=t / "before")),
         says=("holds no .tif tiles",), names="before"),
    Case("tile-1x1", "a 1 x 1 px earlier tile",
         lambda t, i, m: run_pair(t, i, before=write(t / "one" / "T_20260901.tif", textured(1, (1, 1)),
                                                     from_origin(*ORIGIN, 1, 1)).parent),
         says=("overlap by only", "too few to compare"), names="T_20261001.tif"),
    Case("tile-km-pixels", "a later tile of 1 km pixels over a 256 m earlier one (used to say the earlier had no data)",
         lambda t, i, m: run_pair(t, i, after=write(t / "a" / "T_20261001.tif", textured(3, (64, 64)),
                                                    from_origin(*ORIGIN, 1000, 1000))),
         says=("overlap by only", "similar pixel size"), names="a/T_20261001.tif"),
    Case("tile-far-other-crs", "an earlier tile in another CRS (UTM 50N) far from the later one",
         lambda t, i, m: run_pair(t, i, before=_far_tile(t, 32650).parent),
         says=("no earlier tile overlaps", "same place"), names="far"),
    Case("tile-far-same-crs", "an earlier tile in the same CRS 100 km away",
         lambda t, i, m: run_pair(t, i, before=write(t / "far" / "F_20260901.tif", textured(2, (64, 64)),
                                                     from_origin(700000, 3100000, 1, 1))),
         says=("no earlier tile overlaps",), names="far"),
    Case("tile-other-crs-overlapping", "an earlier tile in UTM 50N over the same place: reprojected, roof found",
         lambda t, i, m: _reprojected_before(t, "EPSG:32650"), code=0, check=one_change),
    Case("tile-degrees", "an earlier tile in CGCS2000 degrees over the same place: reprojected, roof found",
         lambda t, i, m: _geographic_before(t, i), code=0, check=one_change),
    Case("tile-dates-swapped", "BEFORE dated after AFTER",
         lambda t, i, m: run_pair(t, i, before=i.after, after=i.before),
         says=("2026-10-01", "swapped", "BEFORE AFTER"), names="T_20261001.tif", check=nothing_written),
    Case("tile-same-folder", "the same folder as both dates",
         lambda t, i, m: run_pair(t, i, before=i.after.parent, after=i.after.parent),
         says=("both the earlier and the later date", "BEFORE"), names="after",
         check=lambda t, r: not (t / "out").exists() or pytest.fail("out made")),
    Case("tile-same-folder-symlink", "the later folder, and a link to it as the earlier",
         lambda t, i, m: _symlink_both(t, i), says=("both the earlier and the later date",), names="after"),
    Case("tile-one-band", "a 1-band earlier tile against a 4-band later one",
         lambda t, i, m: run_pair(t, i, before=write(t / "pan" / "R_20260901.tif", textured(2, (64, 64), bands=1),
                                                     from_origin(*ORIGIN, 1, 1))),
         says=("has 1 band but",), names="R_20260901.tif"),
    Case("tile-three-bands", "a 3-band later tile against a 4-band earlier one: compared on R, G, B, and said",
         lambda t, i, m: _three_bands(t, i), code=0, says=("compared on the first 3",), check=one_change),
    Case("tile-nan-before", "a float32 earlier tile all NaN without a nodata tag",
         lambda t, i, m: float_pair(t, i, slice(None), None), says=("no data", "NaN"), names="fb/T_20260901.tif",
         check=nothing_written),
    Case("tile-nan-after", "a float32 later tile all NaN without a nodata tag",
         lambda t, i, m: float_pair(t, i, None, slice(None)), says=("no data", "NaN"), names="fa/T_20261001.tif",
         check=nothing_written),
    Case("tile-nan-half", "a float32 later tile NaN in its western half: nodata there, the roof found in the rest",
         lambda t, i, m: float_pair(t, i, None, slice(0, 128)), code=0, check=partly_nan),
    Case("inspect-nan", "inspect counts NaN as nodata",
         lambda t, i, m: ["inspect", as_float(i.after, t / "f.tif", slice(0, 64)), "--json"], code=0,
         check=lambda t, r: json.loads(r.output)["nodata_share"] == pytest.approx(0.25, abs=0.01)
         or pytest.fail(r.output)),
    Case("inspect-folder", "inspect a folder", lambda t, i, m: ["inspect", t], says=("is a folder",), names="{tmp}"),
    Case("inspect-missing", "inspect a file that is not there", lambda t, i, m: ["inspect", t / "nope.tif"],
         says=("not found",), names="nope.tif"),
    Case("inspect-dangling-link", "inspect a link to nothing",
         lambda t, i, m: last((t / "x.tif").symlink_to(t / "gone.tif"), ["inspect", t / "x.tif"]), says=("not found",),
         names="x.tif"),
    # ---- configuration
    Case("config-not-utf8", "a run configuration saved as GBK",
         lambda t, i, m: last((t / "cfg.yaml").write_bytes("# 本月\ndetect:\n  detector: cva\n".encode("gbk")),
                              run_pair(t, i, "--config", t / "cfg.yaml")),
         says=("not UTF-8", "save it as UTF-8"), names="cfg.yaml"),
    Case("config-missing", "--config of a file that is not there",
         lambda t, i, m: run_pair(t, i, "--config", t / "nope.yaml"), says=("config file not found",),
         names="nope.yaml"),
    Case("config-folder", "--config of a folder", lambda t, i, m: run_pair(t, i, "--config", t),
         says=("is a folder", "pass the file itself"), names="{tmp}"),
    Case("config-bad-yaml", "YAML that does not parse",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "detect:\n  cva: [0.3\n")),
         says=("not valid YAML at line", "fix the syntax"), names="c.yaml"),
    Case("config-a-list", "a configuration that is a list",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "- 1\n- 2\n")), says=("(top level)", "configs/default.yaml"),
         names="c.yaml"),
    Case("config-unknown-key", "a misspelt key",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "detect:\n  treshold: 0.3\n")),
         says=("unknown key 'detect.treshold'",), names="c.yaml"),
    Case("config-negative-area", "a negative minimum area",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "cleanup:\n  min_area_m2: -5\n")),
         says=("'cleanup.min_area_m2'", "greater than or equal to 0"), names="c.yaml"),
    Case("config-wrong-type", "text where a number goes",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "window:\n  size: big\n")),
         says=("'window.size'", "valid integer"), names="c.yaml"),
    Case("config-crs-degrees", "an output CRS in degrees (areas would not be m²)",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "output:\n  crs: EPSG:4326\n")),
         says=("not projected in metres", "EPSG:4534-4554"), names="c.yaml"),
    Case("config-detector", "an unknown detector in the configuration",
         lambda t, i, m: ["run", i.before, i.after, "--out", t / "out", "--config", cfg(t, "detect:\n  detector: magic\n")],
         says=("'detect.detector'", "'auto', 'model' or 'cva'"), names="c.yaml"),
    Case("config-no-reasons", "review.reasons: [] (no patch could be rejected)",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "review:\n  reasons: []\n")),
         says=("'review.reasons'", "no patch could be rejected"), names="c.yaml",
         check=lambda t, r: not (t / "out").exists() or pytest.fail("out made")),
    Case("config-reason-twice", "a rejection reason listed twice",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "review:\n  reasons:\n    - {key: other, label: a}\n"
                                                            "    - {key: other, label: b}\n")),
         says=("'other' is listed twice",), names="c.yaml"),
    Case("config-empty", "an empty configuration file is the defaults",
         lambda t, i, m: ["review", "list", i.ledger, "--config", cfg(t, ""), "--json"], code=0,
         check=lambda t, r: len(json.loads(r.output)["patches"]) == 6 or pytest.fail(r.output)),
    Case("config-band-order", "bands.after that do not fit the later tile",
         lambda t, i, m: run_pair(t, i, "--config", cfg(t, "bands:\n  after: [3, 2, 5]\n")),
         says=("[3, 2, 5]", "bands.after"), names="T_20261001.tif"),
    Case("option-detector", "--detector magic", lambda t, i, m: run_pair(t, i, "--detector", "magic"),
         usage=True, says=("'magic' is not one of auto, model, cva",), names="--detector"),
    Case("option-device", "--device tpu", lambda t, i, m: run_pair(t, i, "--device", "tpu"),
         usage=True, says=("'tpu' is not one of auto, cpu, cuda",), names="--device"),
    # ---- rule layers
    Case("rules-missing", "--rules of a folder that is not there: found before any tile is read",
         lambda t, i, m: run_pair(t, i, "--rules", t / "nope"), says=("rules folder not found", "farmland"),
         names="nope", check=nothing_written),
    Case("rules-a-file", "--rules of a file", lambda t, i, m: run_pair(t, i, "--rules", i.site / "rules" / "admin.gpkg"),
         says=("rules folder not found",), names="admin.gpkg", check=nothing_written),
    Case("rules-no-layer", "a rules folder whose layers are misnamed",
         lambda t, i, m: last((t / "rules").mkdir(), shutil.copy(i.site / "rules" / "farmland.gpkg",
                                                                 t / "rules" / "Farmland_2026.gpkg"),
                              run_pair(t, i, "--rules", t / "rules")),
         says=("no rule layer found", "Farmland_2026.gpkg", "farmland, basic_farmland"), names="rules",
         check=nothing_written),
    Case("rules-farmland-points", "a farmland layer of points",
         lambda t, i, m: _farmland(t, i, {"DLBM": ["0101"] * 2}, [Point(X0 + 20, Y0 - 20), Point(X0 + 120, Y0 - 20)]),
         says=("farmland layer", "Point", "Polygon or MultiPolygon"), names="farmland.gpkg", check=nothing_written),
    Case("rules-point-among-polygons", "one point among the farmland polygons",
         lambda t, i, m: _farmland(t, i, {"DLBM": ["0101"] * 2}, [WHOLE, Point(X0 + 5, Y0 - 5)]),
         says=("Point", "feature id 1", "Polygon or MultiPolygon"), names="farmland.gpkg",
         check=lambda t, r: not (t / "out" / "patches.gpkg").exists() or pytest.fail("patches written")),
    Case("rules-permits-lines", "mining permits as lines",
         lambda t, i, m: last(site_copy(t, i), _layer(t, "mining_permits", {
             "permit_no": ["P1"], "holder": ["甲"], "valid_from": ["2020-01-01"], "valid_to": ["2030-12-31"]},
             [LineString([(X0 + 110, Y0 - 125), (X0 + 130, Y0 - 145)])], ".shp"), run_site(t)),
         says=("LineString", "Polygon or MultiPolygon"), names="mining_permits.shp"),
    Case("rules-dlbm-null", "DLBM empty in every farmland feature",
         lambda t, i, m: _farmland(t, i, {"DLBM": [None], "DLMC": ["水田"]}),
         says=("'DLBM' is empty in every feature", "rules.farmland.class_code"), names="farmland.gpkg",
         check=nothing_written),
    Case("rules-dlbm-missing", "a farmland layer without the DLBM column",
         lambda t, i, m: _farmland(t, i, {"CODE": ["0101"]}),
         says=("no attribute 'DLBM'", "rules.farmland.class_code"), names="farmland.gpkg", check=nothing_written),
    Case("rules-dlbm-number", "DLBM stored as a number: still the land class 0101",
         lambda t, i, m: _farmland(t, i, {"DLBM": [101], "DLMC": ["水田"]}) + ["--json"], code=0, check=numeric_dlbm),
    Case("rules-xzqdm-float", "XZQDM stored as float numbers: ids keep the 6-digit code",
         lambda t, i, m: _admin(t, i, [360821.0, 360822.0]), code=0, check=numeric_admin),
    Case("rules-xzqdm-leading-zero", "XZQDM as text with a leading zero keeps it",
         lambda t, i, m: _admin(t, i, ["036082", "036083"]), code=0,
         check=lambda t, r: set(gpd.read_file(t / "out" / "patches.gpkg")["admin_code"]) == {"036082", "036083"}
         or pytest.fail("codes changed")),
    Case("rules-xzqdm-no-code", "an XZQDM that is no admin code (12)",
         lambda t, i, m: _admin(t, i, [12, 360822]), says=("'XZQDM' of feature id 0 is '12'", "leading zeros"),
         names="admin.gpkg", check=nothing_written),
    Case("rules-no-crs", "a farmland layer without a CRS",
         lambda t, i, m: last(site_copy(t, i), _recrs(t, None), run_site(t)), says=("has no CRS", "define it"),
         names="farmland.gpkg", check=nothing_written),
    Case("rules-in-degrees", "a farmland layer in EPSG:4326 over imagery in EPSG:4547: reprojected, the same patches",
         lambda t, i, m: last(site_copy(t, i), _recrs(t, 4326), run_site(t, "--json")), code=0, check=numeric_dlbm),
    Case("rules-not-vector", "a farmland.gpkg that is text",
         lambda t, i, m: last(site_copy(t, i), (t / "rules" / "farmland.gpkg").write_text("not a GeoPackage"),
                              run_site(t)), says=("farmland.gpkg",), names="farmland.gpkg", check=nothing_written),
    Case("rules-permit-date", "a permit valid until 'soon'",
         lambda t, i, m: last(site_copy(t, i), _layer(t, "mining_permits", {
             "permit_no": ["P1"], "valid_from": ["2020-01-01"], "valid_to": ["soon"]},
             [box(X0 + 110, Y0 - 145, X0 + 130, Y0 - 125)]), run_site(t)),
         says=("'soon' in 'valid_to' is not a date", "YYYY-MM-DD"), names="mining_permits.gpkg", check=nothing_written),
    # ---- batch manifests
    Case("manifest-not-utf8", "a manifest saved as GBK",
         lambda t, i, m: last(site_copy(t, i).write_bytes("period: 2026-10  # 十月\nbefore: before\nafter: after\n"
                                                           "out: out\n".encode("gbk")), ["batch", t / "batch.yaml"]),
         says=("not UTF-8",), names="batch.yaml"),
    Case("manifest-missing", "a manifest that is not there", lambda t, i, m: ["batch", t / "m.yaml"],
         says=("not found",), names="m.yaml"),
    Case("manifest-folder", "a folder as the manifest", lambda t, i, m: ["batch", t], says=("is a folder",),
         names="{tmp}"),
    Case("manifest-empty", "an empty manifest", lambda t, i, m: last((t / "m.yaml").write_text(""), ["batch", t / "m.yaml"]),
         says=("'period': Field required",), names="m.yaml"),
    Case("manifest-period-number", "period: 202610 (a number)",
         lambda t, i, m: ["batch", site_copy(t, i, period=202610)], says=("'period'", "valid string"), names="batch.yaml"),
    Case("manifest-period-mismatch", "period 2026-09 for imagery of 2026-10",
         lambda t, i, m: ["batch", site_copy(t, i, period="2026-09")],
         says=("period 2026-09", "2026-10", "S_20261001_r", "'period:'"), names="batch.yaml",
         check=lambda t, r: not (t / "out").exists() and not (t / "ledger.sqlite").exists() or pytest.fail("written")),
    Case("manifest-period-tags", "the imagery's month from TIFF tags, not the names",
         lambda t, i, m: _retag(t, i), says=("period 2026-10", "2026-11", "2026-11-02"), names="batch.yaml"),
    Case("manifest-before-missing", "before: a folder that is not there",
         lambda t, i, m: ["batch", site_copy(t, i, before="nowhere")], says=("before tiles", "'before:'"),
         names="batch.yaml"),
    Case("manifest-same-folders", "before: and after: the same folder",
         lambda t, i, m: ["batch", site_copy(t, i, before="after")], says=("both the earlier and the later date",),
         names="after"),
    Case("manifest-glob-same-name", "a glob that finds two later tiles of one name in two folders of one name",
         lambda t, i, m: ["batch", _same_name_after(t, i)], says=("has the name of the later tile", "rename one"),
         names="east", check=nothing_written),
    Case("manifest-glob-nothing", "a glob that matches no tile",
         lambda t, i, m: ["batch", site_copy(t, i, before="before/*.jp2")], says=("matches no .tif",), names="*.jp2"),
    Case("manifest-rules-missing", "rules: a folder that is not there",
         lambda t, i, m: ["batch", site_copy(t, i, rules="nope")], says=("rules folder", "'rules:'"), names="batch.yaml"),
    Case("manifest-detector", "detector: magic, found before any tile is processed",
         lambda t, i, m: ["batch", site_copy(t, i, detector="magic")], says=("'detector'", "'auto', 'model' or 'cva'"),
         names="batch.yaml", check=lambda t, r: not (t / "out").exists() or pytest.fail("out made")),
    Case("manifest-device", "device: tpu", lambda t, i, m: ["batch", site_copy(t, i, device="tpu")],
         says=("'device'", "'auto', 'cpu' or 'cuda'"), names="batch.yaml"),
    Case("manifest-ledger-folder", "ledger: a folder, found before any tile is processed",
         lambda t, i, m: ["batch", site_copy(t, i, ledger="before")], says=("is a folder", "'ledger:'"),
         names="batch.yaml", check=lambda t, r: not (t / "out").exists() or pytest.fail("out made")),
    Case("manifest-ledger-under-a-file", "ledger: under a file, so its folder cannot be made",
         lambda t, i, m: ["batch", site_copy(t, i, ledger="batch.yaml/ledger.sqlite")],
         says=("cannot be written", "'ledger:'"), names="batch.yaml",
         check=lambda t, r: not (t / "out").exists() or pytest.fail("out made")),
    Case("manifest-ledger-not-a-ledger", "ledger: a text file",
         lambda t, i, m: last((t / "notes.sqlite").write_text("hello"), ["batch", site_copy(t, i, ledger="notes.sqlite")]),
         says=("not a satcheck ledger",), names="notes.sqlite",
         check=lambda t, r: not (t / "out").exists() or pytest.fail("out made")),
    Case("manifest-out-a-file", "out: a file, in a manifest (no --out in a batch)",
         lambda t, i, m: ["batch", site_copy(t, i, out="batch.yaml")], says=("cannot create the output folder", "'out:'"),
         names="batch.yaml"),
    Case("manifest-unreachable-dask", "--scheduler where nobody listens",
         _no_scheduler, says=("cannot reach the Dask scheduler", "leave out --scheduler"), names="--scheduler tcp://"),
    Case("manifest-workers-0", "--workers 0", lambda t, i, m: ["batch", site_copy(t, i), "--workers", "0"], usage=True,
         says=("must be at least 1",), names="--workers"),
    *[Case(f"batch-json-{kind}", f"a batch.json {kind}: the rerun rebuilds it from the tiles' records",
           lambda t, i, m, text=text: _damaged_batch_json(t, text), code=0, check=_batch_json_rebuilt)
      for kind, text in (("cut-short", '{"state": "compl'), ("a-list", "[]"))],
    # ---- STAC
    Case("stac-truncated", "a STAC file cut short",
         lambda t, i, m: _stac_text(t, i, '{"type": "FeatureCollection", "features": [{"type": "Feature", "id": "S2'),
         says=("looks truncated",), names="stac.json"),
    Case("stac-a-list", "a STAC file that is a JSON list", lambda t, i, m: _stac_text(t, i, "[1, 2]"),
         says=("not a STAC",), names="stac.json"),
    Case("stac-bare-feature", "a Feature without the STAC fields",
         lambda t, i, m: _stac_text(t, i, '{"type": "Feature", "stac_version": "1.0.0"}'), says=("not a STAC",),
         names="stac.json"),
    Case("stac-asset-key", "asset: a key the items do not have",
         lambda t, i, m: last(_stac(t, i, ["before/S_20260901.tif"]), ["batch", manifest(t, before={
             "path": "stac.json", "asset": "visual"})]), says=("has no asset 'visual'", "'asset:'"), names="stac.json"),
    Case("stac-no-items", "an item collection of nothing",
         lambda t, i, m: _stac_text(t, i, '{"type": "FeatureCollection", "features": []}'), says=("lists no items",),
         names="stac.json"),
    Case("stac-missing-asset", "an item whose GeoTIFF is not there: found before any tile is processed",
         lambda t, i, m: ["batch", _stac(t, i, ["before/S_20260901.tif", "missing.tif"])],
         says=("item 'item1'", "missing.tif", "not there"), names="stac.json",
         check=lambda t, r: not list((t / "out").rglob("done.json")) or pytest.fail("a tile was processed")),
]
