"""Violation classes and patch attributes on hand-made geometries (EPSG:4547, metres)."""

import datetime as dt
import math

import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box

from satcheck.config import M2_PER_MU, PatchConfig, RulesConfig
from satcheck.errors import RuleLayerError
from satcheck.patches import PatchContext, make_patches
from satcheck.rules import load_rules

CRS = "EPSG:4547"
X0, Y0 = 592000.0, 2994000.0
CTX = PatchContext(dt.date(2026, 9, 12), dt.date(2026, 10, 18), ("b.tif",), ("a.tif",), 1.0)


def sq(x, y, w, h=None):
    return box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + (h if h is not None else w))


def changes(*rows):
    return gpd.GeoDataFrame([{"change_type": t, "mean_score": 0.9, "pixels": int(g.area), "geometry": g} for t, g in rows],
                            geometry="geometry", crs=CRS)


@pytest.fixture()
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101", "0103", "0201"], "DLMC": ["水田", "旱地", "果园"]},
                     geometry=[sq(0, 0, 100), sq(100, 0, 100), sq(0, 100, 100)], crs=CRS).to_file(d / "farmland.gpkg")
    gpd.GeoDataFrame({"id": [1]}, geometry=[sq(0, 0, 50)], crs=CRS).to_file(d / "basic_farmland.gpkg")
    gpd.GeoDataFrame({"permit_no": ["P-OK", "P-OLD"], "holder": ["甲矿业", "乙石场"],
                      "valid_from": ["2020-01-01", "2015-01-01"], "valid_to": ["2030-12-31", "2026-10-17"]},
                     geometry=[sq(300, 0, 100), sq(500, 0, 100)], crs=CRS).to_file(d / "mining_permits.gpkg")
    gpd.GeoDataFrame({"approval_no": ["赣2026-1"], "approved_on": ["2026-05-01"]},
                     geometry=[sq(200, 100, 60)], crs=CRS).to_file(d / "approved_land.gpkg")
    gpd.GeoDataFrame({"XZQDM": ["360821", "360822"], "XZQMC": ["吉安县", "吉水县"]},
                     geometry=[sq(-1000, -1000, 1400, 3000), sq(400, -1000, 2000, 3000)], crs=CRS).to_file(d / "admin.gpkg")
    return d


def run(rules_dir, *rows, cfg=PatchConfig()):
    rules = load_rules(rules_dir, CRS, RulesConfig())
    return make_patches(changes(*rows), rules, CTX, RulesConfig(), cfg)


def test_farmland_construction_straddling_boundary(rules_dir):
    # 30 x 20 m house: 10 m on paddy (0101) at x 90..100 ... and 20 m on non-farmland orchard? no: place across y=100.
    g = sq(10, 90, 30, 20)  # 600 m²; y 90..100 on paddy (300 m²), 100..110 on orchard 0201 (not farmland)
    p = run(rules_dir, ("construction", g))
    assert list(p["class"]) == ["farmland_construction"]
    r = p.iloc[0]
    assert r["area_m2"] == pytest.approx(600)
    assert r["farmland_area_m2"] == pytest.approx(300)
    assert r["area_mu"] == pytest.approx(round(600 / M2_PER_MU, 3))
    assert r["basic_farmland_area_m2"] == 0 and not r["on_basic_farmland"]
    assert r["farmland_class"] == "0101"


def test_farmland_mmu_counts_only_the_farmland_part(rules_dir):
    g = sq(10, 95, 30, 15)  # 450 m² of which 150 m² on farmland: under the 200 m² MMU
    assert len(run(rules_dir, ("construction", g))) == 0


def test_basic_farmland_area_and_flag(rules_dir):
    g = sq(40, 10, 20, 20)  # half on basic farmland (x < 50)
    r = run(rules_dir, ("construction", g)).iloc[0]
    assert r["basic_farmland_area_m2"] == pytest.approx(200) and r["on_basic_farmland"]


def test_construction_off_farmland_is_other_change(rules_dir):
    g = sq(20, 120, 25)  # orchard 0201: not in farmland_codes
    assert list(run(rules_dir, ("construction", g))["class"]) == ["other_change"]


def test_approved_land(rules_dir):
    r = run(rules_dir, ("construction", sq(210, 110, 30))).iloc[0]
    assert r["class"] == "approved" and r["approval_no"] == "赣2026-1"


def test_mining_classes(rules_dir):
    p = run(rules_dir,
            ("excavation", sq(700, 0, 40)),          # no permit anywhere
            ("excavation", sq(320, 20, 40)),         # inside the valid permit: legal
            ("excavation", sq(380, 20, 40)),         # crosses the valid permit: 20 x 40 outside
            ("excavation", sq(520, 20, 40)))         # inside the permit that expired the day before
    by = {round(r.centroid_x - X0): r for _, r in p.iterrows()}
    assert by[720]["class"] == "illegal_mining" and by[720]["outside_permit_area_m2"] == pytest.approx(1600)
    assert by[340]["class"] == "other_change" and by[340]["permit_no"] == "P-OK"
    assert by[400]["class"] == "out_of_bounds_mining" and by[400]["outside_permit_area_m2"] == pytest.approx(800)
    assert by[400]["permit_holder"] == "甲矿业"
    assert by[540]["class"] == "expired_permit_mining" and by[540]["permit_no"] == "P-OLD"


def test_attributes_by_hand(rules_dir):
    from pyproj import Transformer

    g = sq(10, 10, 20, 30)
    r = run(rules_dir, ("construction", g)).iloc[0]
    assert r["centroid_x"] == pytest.approx(X0 + 20) and r["centroid_y"] == pytest.approx(Y0 + 25)
    lon, lat = Transformer.from_crs(CRS, "EPSG:4490", always_xy=True).transform(X0 + 20, Y0 + 25)
    assert r["centroid_lon"] == pytest.approx(lon, abs=1e-7) and r["centroid_lat"] == pytest.approx(lat, abs=1e-7)
    assert (r["admin_code"], r["admin_name"], r["period"], r["status"]) == ("360821", "吉安县", "2026-10", "pending")
    assert r["patch_id"] == "360821-202610-0001"
    assert r["before_date"] == "2026-09-12" and r["after_date"] == "2026-10-18"


def test_ids_are_deterministic_and_ordered_by_location(rules_dir):
    rows = [("construction", sq(10, 10, 20)), ("construction", sq(60, 60, 20)), ("construction", sq(150, 40, 20))]
    a = run(rules_dir, *rows)
    b = run(rules_dir, *reversed(rows))
    assert list(a["patch_id"]) == list(b["patch_id"])
    north_first = a.sort_values("centroid_y", ascending=False)["patch_id"].tolist()
    assert north_first == sorted(north_first)


def test_fragments_within_gap_merge(rules_dir):
    p = run(rules_dir, ("construction", sq(10, 10, 15)), ("construction", sq(28, 10, 15)))  # 3 m apart
    assert len(p) == 1 and p.iloc[0]["area_m2"] == pytest.approx(450)
    p = run(rules_dir, ("construction", sq(10, 10, 15)), ("construction", sq(40, 10, 15)),
            cfg=PatchConfig(mmu_m2={"farmland_construction": 100}))
    assert len(p) == 2


def test_simplification_moves_boundary_at_most_one_pixel(rules_dir):
    import numpy as np

    ang = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    circle = Polygon(np.c_[X0 + 50 + 30 * np.cos(ang), Y0 + 50 + 30 * np.sin(ang)])
    g = run(rules_dir, ("construction", circle)).geometry.iloc[0]
    assert g.hausdorff_distance(circle) <= 1.0 + 1e-9
    assert len(g.exterior.coords) < 400


def test_rule_layer_in_another_crs(rules_dir):
    f = gpd.read_file(rules_dir / "farmland.gpkg").to_crs("EPSG:4490")
    f.to_file(rules_dir / "farmland.gpkg")
    r = run(rules_dir, ("construction", sq(10, 90, 30, 20))).iloc[0]
    assert r["farmland_area_m2"] == pytest.approx(300, rel=1e-3)


def test_invalid_rule_polygon_is_repaired_and_reported(rules_dir):
    bow = Polygon([(X0 + 300, Y0), (X0 + 400, Y0 + 100), (X0 + 400, Y0), (X0 + 300, Y0 + 100)])  # self-intersecting
    gpd.GeoDataFrame({"permit_no": ["P-BOW"], "holder": ["丙"], "valid_from": ["2020-01-01"], "valid_to": ["2030-01-01"]},
                     geometry=[bow], crs=CRS).to_file(rules_dir / "mining_permits.gpkg")
    rules = load_rules(rules_dir, CRS, RulesConfig())
    assert any("invalid" in m and "mining_permits.gpkg" in m for m in rules.problems)
    assert rules.mining_permits.geometry.is_valid.all()


def test_empty_and_missing_layers(rules_dir):
    gpd.GeoDataFrame({"permit_no": [], "holder": [], "valid_from": [], "valid_to": []}, geometry=[],
                     crs=CRS).to_file(rules_dir / "mining_permits.gpkg")
    (rules_dir / "approved_land.gpkg").unlink()
    p = run(rules_dir, ("excavation", sq(700, 0, 40)), ("construction", sq(210, 110, 30)))
    assert sorted(p["class"]) == ["illegal_mining", "other_change"]


def test_missing_attribute_names_the_config_key(rules_dir):
    gpd.GeoDataFrame({"CODE": ["0101"]}, geometry=[sq(0, 0, 10)], crs=CRS).to_file(rules_dir / "farmland.gpkg")
    with pytest.raises(RuleLayerError, match=r"farmland.gpkg: no attribute 'DLBM'.*rules.farmland.class_code"):
        load_rules(rules_dir, CRS, RulesConfig())
    mapped = RulesConfig(farmland={"class_code": "CODE"})
    assert len(load_rules(rules_dir, CRS, mapped).farmland) == 1


def test_area_mu_constant():
    assert math.isclose(M2_PER_MU, 666.6666666, rel_tol=1e-9)
