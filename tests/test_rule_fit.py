"""Rule layers must fit the imagery; patches outside every admin unit are said; slivers do not count."""

import datetime as dt
import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box
from typer.testing import CliRunner

from satcheck.cli import app
from tests.generate import ORIGIN, square_pair

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def relabel(folder: Path, crs: str) -> None:
    """Rewrite every layer with the same coordinates under another CRS (a wrong .prj, a wrong export setting)."""
    for f in folder.glob("*.gpkg"):
        g = gpd.read_file(f)
        f.unlink()
        g.set_crs(crs, allow_override=True).to_file(f)


def test_sample_rules_in_the_wrong_zone_are_refused(tmp_path):
    """Issue 18.2: the sample rules written as EPSG:4549 (zone of 120°E) over imagery in EPSG:4547 (114°E): a
    one-line error naming the layer, both CRSs and the likely fix, before any tile is read."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "sample_tiles" / "rules", rules)
    relabel(rules, "EPSG:4549")
    r = runner.invoke(app, ["run", str(ROOT / "sample_tiles" / "before"), str(ROOT / "sample_tiles" / "after"),
                            "--rules", str(rules), "--out", str(tmp_path / "out"), "--detector", "cva"])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error:")
    assert "farmland.gpkg" in line and "EPSG:4549" in line and "EPSG:4547" in line
    assert "another zone" in line and "--allow-partial-rules" in line
    assert not (tmp_path / "out" / "changes.gpkg").exists()  # refused before detection


def test_batch_refuses_a_misfit_layer_before_detecting(tmp_path):
    b, a, _ = square_pair(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[box(ORIGIN[0], ORIGIN[1] - 256, ORIGIN[0] + 256, ORIGIN[1])],
                     crs="EPSG:4547").to_file(rules / "farmland.gpkg")
    relabel(rules, "EPSG:4548")
    (tmp_path / "m.yaml").write_text("period: 2026-10\nbefore: before\nafter: after\nrules: rules\nout: out\n"
                                     "detector: cva\n", encoding="utf-8")
    r = runner.invoke(app, ["batch", str(tmp_path / "m.yaml"), "--json"])
    assert r.exit_code == 2 and "farmland.gpkg" in r.output and "EPSG:4548" in r.output, r.output
    assert not (tmp_path / "out" / "tiles").exists()


def test_allow_partial_rules_warns_and_numbers_outside_admin_as_000000_with_a_warning(tmp_path):
    """--allow-partial-rules: a layer covering another part of the jurisdiction is a warning. A patch outside
    every admin unit is numbered 000000 and said so (run.json rule_problems, the terminal)."""
    b, a, bounds = square_pair(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    x0, y0 = ORIGIN
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[box(x0, y0 - 256, x0 + 256, y0)], crs="EPSG:4547").to_file(
        rules / "farmland.gpkg")
    far = box(x0 + 50_000, y0, x0 + 60_000, y0 + 10_000)  # permits of another part of the county, 50 km east
    gpd.GeoDataFrame({"permit_no": ["P9"], "holder": ["乙"], "valid_from": ["2020-01-01"], "valid_to": ["2030-01-01"]},
                     geometry=[far], crs="EPSG:4547").to_file(rules / "mining_permits.gpkg")
    gpd.GeoDataFrame({"XZQDM": ["360821"], "XZQMC": ["吉安县"]}, geometry=[box(x0, y0 - 256, x0 + 60, y0)],
                     crs="EPSG:4547").to_file(rules / "admin.gpkg")  # the western strip only
    args = ["run", str(b), str(a), "--rules", str(rules), "--out", str(tmp_path / "out"), "--detector", "cva"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "mining_permits.gpkg" in r.output and "not within 20 km" in r.output, r.output
    r = runner.invoke(app, [*args, "--allow-partial-rules", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert any("mining_permits.gpkg" in p and "--allow-partial-rules" in p for p in s["rule_problems"])
    (outside,) = [p for p in s["rule_problems"] if "admin unit" in p]
    assert "000000-202610-0001" in outside and "admin.gpkg" in outside
    p = gpd.read_file(tmp_path / "out" / "patches.gpkg")
    assert list(p["patch_id"]) == ["000000-202610-0001"]
    r = runner.invoke(app, [*args, "--allow-partial-rules"])  # the terminal says it too
    assert "warning:" in r.output and "outside every admin unit" in r.output


@pytest.mark.parametrize("strip_m2, expected", [(6, False), (800, True)])
def test_a_sliver_of_basic_farmland_does_not_set_on_basic_farmland(tmp_path, strip_m2, expected):
    """Issue 18.9: a few m² along the edge of a 1600 m² house on basic farmland is a sliver (under 1 % of the patch),
    not a patch on permanent basic farmland; half of it is."""
    b, a, (x0, y0, x1, y1) = square_pair(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[box(x0 - 50, y0 - 50, x1 + 50, y1 + 50)],
                     crs="EPSG:4547").to_file(rules / "farmland.gpkg")
    width = strip_m2 / (y1 - y0)
    gpd.GeoDataFrame({"id": [1]}, geometry=[box(x1 - width, y0, x1 + 30, y1)], crs="EPSG:4547").to_file(
        rules / "basic_farmland.gpkg")
    r = runner.invoke(app, ["run", str(b), str(a), "--rules", str(rules), "--out", str(tmp_path / "out"),
                            "--detector", "cva", "--json"])
    assert r.exit_code == 0, r.output
    (p,) = gpd.read_file(tmp_path / "out" / "patches.gpkg").itertuples()
    assert p.basic_farmland_area_m2 > 0
    assert bool(p.on_basic_farmland) is expected


@pytest.mark.parametrize("change_type", ["building", "hardened", "construction"])
def test_building_and_hardened_follow_the_construction_rules(change_type):
    """The detector's building and hardened ground (and the baseline's construction) on farmland are
    farmland_construction; excavation stays mining; change_type is kept as given."""
    from satcheck.config import PatchConfig, RulesConfig
    from satcheck.patches import PatchContext, make_patches
    from satcheck.rules import RuleLayers

    x0, y0 = ORIGIN
    farmland = gpd.GeoDataFrame({"class_code": ["0101"], "class_name": ["水田"]},
                                geometry=[box(x0, y0, x0 + 100, y0 + 100)], crs="EPSG:4547")
    rules = RuleLayers(farmland=farmland)
    changes = gpd.GeoDataFrame([
        {"change_type": change_type, "mean_score": 0.9, "pixels": 400, "geometry": box(x0 + 10, y0 + 10, x0 + 30, y0 + 30)},
        {"change_type": "excavation", "mean_score": 0.9, "pixels": 900, "geometry": box(x0 + 60, y0 + 60, x0 + 90, y0 + 90)},
    ], geometry="geometry", crs="EPSG:4547")
    ctx = PatchContext(dt.date(2026, 9, 1), dt.date(2026, 10, 1), ("b.tif",), ("a.tif",), 1.0)
    p = make_patches(changes, rules, ctx, RulesConfig(), PatchConfig()).set_index("change_type")
    assert p.loc[change_type, "class"] == "farmland_construction"
    assert p.loc["excavation", "class"] == "illegal_mining"


def test_building_and_its_hardened_yard_a_metre_apart_are_one_patch():
    """Fragments of building and hardened ground closer than merge_gap_m are one construction patch, typed by most
    of its pixels; the MMU counts them together."""
    from satcheck.config import PatchConfig, RulesConfig
    from satcheck.patches import PatchContext, make_patches
    from satcheck.rules import RuleLayers

    x0, y0 = ORIGIN
    farmland = gpd.GeoDataFrame({"class_code": ["0101"], "class_name": ["水田"]},
                                geometry=[box(x0, y0, x0 + 100, y0 + 100)], crs="EPSG:4547")
    changes = gpd.GeoDataFrame([
        {"change_type": "building", "mean_score": 0.9, "pixels": 120, "geometry": box(x0 + 10, y0 + 10, x0 + 22, y0 + 20)},
        {"change_type": "hardened", "mean_score": 0.8, "pixels": 100, "geometry": box(x0 + 23, y0 + 10, x0 + 33, y0 + 20)},
    ], geometry="geometry", crs="EPSG:4547")
    ctx = PatchContext(dt.date(2026, 9, 1), dt.date(2026, 10, 1), ("b.tif",), ("a.tif",), 1.0)
    p = make_patches(changes, RuleLayers(farmland=farmland), ctx, RulesConfig(), PatchConfig())
    assert len(p) == 1 and p["class"].iloc[0] == "farmland_construction" and p["change_type"].iloc[0] == "building"
