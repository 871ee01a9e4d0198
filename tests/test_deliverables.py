"""What a run delivers: each patch's own tiles, the CRS of the files, counts that match the files."""

import json
import re

import geopandas as gpd
import numpy as np
import pytest
import yaml
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import box
from typer.testing import CliRunner

from satcheck.cli import app
from satcheck.review.ledger import Ledger
from tests.enforcement_data import TILE_PX, jurisdiction, place
from tests.generate import textured, write

runner = CliRunner()


def test_patches_list_only_the_tiles_they_lie_on(tmp_path):
    """Issue 18.6: before_tiles/after_tiles name the tiles under each patch, not all nine of the run."""
    m = jurisdiction(tmp_path)
    r = runner.invoke(app, ["batch", str(m), "--json", "--workers", "1"])
    assert r.exit_code == 0, r.output
    p = gpd.read_file(tmp_path / "out" / "patches.gpkg")
    assert len(p) >= 5
    tiles = {f"S_20261001_r{i}c{j}.tif": box(592000 + j * TILE_PX, 2994000 - (i + 1) * TILE_PX,
                                              592000 + (j + 1) * TILE_PX, 2994000 - i * TILE_PX)
             for i in range(3) for j in range(3)}
    for _, row in p.iterrows():
        under = sorted(n for n, t in tiles.items() if row.geometry.intersection(t).area > 0)
        assert row["after_tiles"].split(";") == under
        assert row["before_tiles"] == "S_20260901.tif"
    (e,) = p[p.intersects(place("E"))]["after_tiles"]
    assert e == "S_20261001_r1c1.tif;S_20261001_r1c2.tif"
    shp = gpd.read_file(tmp_path / "out" / "patches.shp")
    assert set(shp["after_img"]) <= set(p["after_tiles"])  # nothing cut at 254 characters


def _pair(folder, crs: str, x: float, y: float, size: int = 256):
    """A square pair at (x, y) of ``crs`` (1 m pixels): a roof of 40 m planted at rows/cols 100..140."""
    t = from_origin(x, y, 1.0, 1.0)
    before = textured(3, (size, size))
    after = before.copy()
    after[:, 100:140, 100:140] = np.asarray([0.50, 0.50, 0.50, 0.45], np.float32)[:, None, None]
    b = write(folder / "before" / "T_20260901.tif", before, t, crs=CRS.from_user_input(crs))
    a = write(folder / "after" / "T_20261001.tif", after, t, crs=CRS.from_user_input(crs))
    rules = folder / "rules"
    rules.mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[box(x, y - size, x + size, y)], crs=crs).to_file(
        rules / "farmland.gpkg")
    return b, a, rules


@pytest.mark.parametrize("crs, x, y, configured, expected", [
    ("EPSG:32650", 208400.0, 2468800.0, None, 4547),         # Hong Kong, WGS 84 / UTM 50N: CGCS2000 GK CM 114°E
    ("EPSG:32650", 208400.0, 2468800.0, "EPSG:32650", 32650),  # output.crs says otherwise
    ("EPSG:32610", 551000.0, 4180000.0, None, 32610),         # California: the tile's own
])
def test_deliverables_in_china_are_cgcs2000(tmp_path, crs, x, y, configured, expected):
    """Issue 18.7: WGS 84 / UTM imagery inside China gives changes and patches in the CGCS2000 3-degree
    Gauss-Krüger zone; output.crs overrides; elsewhere the later tile's projected CRS."""
    b, a, rules = _pair(tmp_path, crs, x, y)
    args = ["run", str(b), str(a), "--rules", str(rules), "--out", str(tmp_path / "out"), "--detector", "cva", "--json"]
    if configured:
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({"output": {"crs": configured}}))
        args += ["--config", str(tmp_path / "c.yaml")]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    for name in ("changes.gpkg", "patches.gpkg"):
        g = gpd.read_file(tmp_path / "out" / name)
        assert g.crs.to_epsg() == expected and len(g) == 1
        assert g.geometry.area.iloc[0] == pytest.approx(1600, rel=0.08)
    p = gpd.read_file(tmp_path / "out" / "patches.gpkg").iloc[0]
    assert (p["centroid_x"], p["centroid_y"]) == pytest.approx((p.geometry.centroid.x, p.geometry.centroid.y), abs=0.01)


def test_a_configured_crs_in_degrees_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("output:\n  crs: EPSG:4490\n")
    r = runner.invoke(app, ["run", "b", "a", "--out", str(tmp_path / "o"), "--config", str(tmp_path / "c.yaml")])
    assert r.exit_code == 2 and "output.crs" in r.output and "metres" in r.output, r.output


def test_summary_counts_match_the_files_and_the_counter_its_total(tmp_path):
    """Issue 18 (progress): the summary says how many patches the field files and the ledger hold, not every
    patch as 'for review'; with a corrupt tile the counter never passes its total."""
    m = jurisdiction(tmp_path)
    (tmp_path / "after" / "S_20261001_r2c1.tif").write_bytes(b"II*\x00garbage" * 10)
    r = runner.invoke(app, ["batch", str(m), "--workers", "1"], env={"COLUMNS": "200"})
    assert r.exit_code == 3, r.output
    counters = [tuple(map(int, c)) for c in re.findall(r"^\[(\d+)/(\d+)\]", r.output, re.M)]
    assert len(counters) == 9 and all(k <= n == 9 for k, n in counters), counters
    assert counters[-1] == (9, 9)
    out = tmp_path / "out"
    csv_rows = len((out / "patches.csv").read_text(encoding="utf-8-sig").splitlines()) - 1
    every = len(gpd.read_file(out / "patches.gpkg"))
    with Ledger(tmp_path / "ledger.sqlite") as lg:
        in_ledger = len(lg.patches(period="2026-10"))
    assert csv_rows == in_ledger < every  # G, on approved land, is kept in patches.gpkg only
    text = " ".join(r.output.split())
    assert f"{csv_rows} in the field files, {every - csv_rows} more in patches.gpkg only" in text
    assert f"{in_ledger} new" in text
    s = json.loads((out / "run.json").read_text())
    assert (s["patches"]["count"], s["patches"]["exported"]) == (every, csv_rows)
