"""Monthly batches: manifest checks, cross-tile merge, kill and resume, parallel and Dask, corrupt tiles."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pytest
import yaml
from shapely.geometry import box
from typer.testing import CliRunner

from satcheck.cli import app
from tests.generate import mosaic_pair, square_pair, to_geographic

runner = CliRunner()


def manifest(folder: Path, **over) -> Path:
    m = {"period": "2026-10", "before": "before", "after": "after", "out": "out", "detector": "cva",
         "ledger": "ledger.sqlite"} | over
    path = folder / "batch.yaml"
    path.write_text(yaml.safe_dump(m, allow_unicode=True), encoding="utf-8")
    return path


def run(path: Path, *extra: str):
    return runner.invoke(app, ["batch", str(path), "--json", *extra])


def outputs(out: Path):
    ch = gpd.read_file(out / "changes.gpkg", layer="changes")
    return [(g.wkb_hex, round(a, 3)) for g, a in zip(ch.geometry, ch["area_m2"])]


@pytest.mark.parametrize("text, needle", [
    ("period: 2026-10\nbefore: b\nafter: a\nout: o\nbogus: 1\n", "unknown key 'bogus'"),
    ("period: 2026-13\nbefore: before\nafter: after\nout: o\n", "YYYY-MM"),
    ("period: 2026-10\nbefore: nowhere\nafter: after\nout: o\n", "before tiles"),
    ("before: before\nafter: after\nout: o\n", "'period'"),
])
def test_manifest_errors(tmp_path, text, needle):
    mosaic_pair(tmp_path)
    m = tmp_path / "m.yaml"
    m.write_text(text)
    r = runner.invoke(app, ["batch", str(m)])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error:") and "m.yaml" in r.output and needle in r.output


def test_change_over_the_tile_corner_is_one_polygon(tmp_path):
    _, _, bounds = mosaic_pair(tmp_path)
    r = run(manifest(tmp_path))
    assert r.exit_code == 0, r.output
    ch = gpd.read_file(tmp_path / "out" / "changes.gpkg")
    hit = ch[ch.intersects(box(*bounds))]
    assert len(hit) == 1
    assert hit.geometry.iloc[0].hausdorff_distance(box(*bounds)) <= 1.0 + 1e-6
    assert set(hit["source"].iloc[0].split(",")) == {f"M_20261001_r{i}c{j}.tif" for i in (0, 1) for j in (0, 1)}


def test_batch_of_tiles_in_degrees(tmp_path):
    """Pieces of tiles in EPSG:4490 are stored in the tile's CRS and merged in metres, each moved once."""
    b, a, bounds = square_pair(tmp_path)
    to_geographic(b)
    to_geographic(a)
    r = run(manifest(tmp_path))
    assert r.exit_code == 0, r.output
    ch = gpd.read_file(tmp_path / "out" / "changes.gpkg")
    assert ch.crs.to_epsg() == 4547
    hit = ch[ch.intersects(box(*bounds))]
    assert len(hit) == 1 and hit["area_m2"].iloc[0] == pytest.approx(1600, rel=0.1)


def test_rgb_earlier_date_against_rgb_nir_later_date(tmp_path):
    """Last year's RGB orthophoto against this month's R, G, B, NIR image: compared in red, green, blue, said once
    (run and batch; the batch's workers open the tiles again and must read the same three bands)."""
    import rasterio

    b, a, bounds = square_pair(tmp_path)
    with rasterio.open(b) as src:
        rgb, profile = src.read([1, 2, 3]), src.profile | {"count": 3}
    with rasterio.open(b, "w", **profile) as dst:
        dst.write(rgb)
    r = runner.invoke(app, ["run", str(b), str(a), "--out", str(tmp_path / "run"), "--detector", "cva", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    r = run(manifest(tmp_path))
    assert r.exit_code == 0, r.output
    for s, out in ((summary, "run"), (json.loads(r.output), "out")):
        (note,) = s["warnings"]
        assert note.startswith("T_20260901.tif has 3 bands, T_20261001.tif 4: compared on the first 3")
        ch = gpd.read_file(tmp_path / out / "changes.gpkg")
        assert len(ch[ch.intersects(box(*bounds))]) == 1


def test_rerun_of_a_finished_batch_changes_nothing(tmp_path):
    mosaic_pair(tmp_path)
    m = manifest(tmp_path)
    assert run(m).exit_code == 0
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file() and "logs" not in p.parts}
    r = run(m)
    assert r.exit_code == 0 and json.loads(r.output)["already_complete"]
    assert stamp == {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file() and "logs" not in p.parts}
    r = run(m, "--force")
    assert json.loads(r.output)["processed"] == 4


def test_one_two_workers_and_dask_agree(tmp_path):
    import distributed
    mosaic_pair(tmp_path, tiles=3, tile_px=96, square=(60, 130, 50))
    results = {}
    for label, extra in (("one", ["--workers", "1"]), ("two", ["--workers", "2"])):
        m = manifest(tmp_path, out=f"out_{label}", ledger=f"{label}.sqlite")
        r = run(m, *extra)
        assert r.exit_code == 0, r.output
        results[label] = outputs(tmp_path / f"out_{label}")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        m = manifest(tmp_path, out="out_dask", ledger="dask.sqlite")
        r = run(m, "--scheduler", cluster.scheduler_address)
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["workers"].startswith("dask")
    results["dask"] = outputs(tmp_path / "out_dask")
    assert results["one"] == results["two"] == results["dask"]
    assert len(results["one"]) >= 1


def test_corrupt_tile_is_reported_and_the_rest_completes(tmp_path):
    mosaic_pair(tmp_path)
    (tmp_path / "after" / "M_20261001_r0c1.tif").write_bytes(b"II*\x00garbage" * 10)
    r = run(manifest(tmp_path))
    assert r.exit_code == 3, r.output
    s = json.loads(r.output)
    assert list(s["failed"]) == ["M_20261001_r0c1"] and "M_20261001_r0c1.tif" in s["failed"]["M_20261001_r0c1"]
    assert s["processed"] == 3 and (tmp_path / "out" / "patches.gpkg").exists() is False  # no --rules: no patches
    assert (tmp_path / "out" / "changes.gpkg").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0, 2, 4])
def test_kill_and_resume(tmp_path, kill_after):
    """kill -9 after N tiles are done (4 = during the merge), rerun: same result as an uninterrupted batch."""
    _, _, bounds = mosaic_pair(tmp_path, tiles=3, tile_px=128, square=(100, 100, 60))
    # Farmland under the square, so the batch makes a patch and imports it into the ledger.
    (tmp_path / "rules").mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[box(*bounds).buffer(20)], crs="EPSG:4547").to_file(
        tmp_path / "rules" / "farmland.gpkg")
    ref = manifest(tmp_path, out="ref", ledger="ref.sqlite", rules="rules")
    assert run(ref, "--workers", "1").exit_code == 0
    m = manifest(tmp_path, out="out", ledger="l.sqlite", rules="rules")
    cmd = [sys.executable, "-m", "satcheck.cli", "batch", str(m), "--workers", "1", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((tmp_path / "out" / "tiles").glob("*/done.json"))) >= kill_after:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    r = run(m, "--workers", "1")
    assert r.exit_code == 0, r.output
    assert outputs(tmp_path / "out") == outputs(tmp_path / "ref")
    from satcheck.review.ledger import Ledger

    with Ledger(tmp_path / "l.sqlite") as a, Ledger(tmp_path / "ref.sqlite") as b:
        count = "SELECT COUNT(*) FROM patches"
        assert a.db.execute(count).fetchone() == b.db.execute(count).fetchone()
        assert b.db.execute(count).fetchone()[0] >= 1
    assert not [p for p in (tmp_path / "out").rglob("*") if ".part" in p.name or "scratch" in p.name]


def test_batch_off_a_terminal_counts_each_tile_once_and_shows_every_stage(tmp_path):
    """Issue 18 (progress): one tile that does not open and one that breaks while it is read: the counter goes up
    once per tile and never past the total, every stage after the tiles has its lines, and the summary's tile
    counts add up."""
    _, _, bounds = mosaic_pair(tmp_path, tiles=3, tile_px=96, square=(110, 110, 40))  # inside the centre tile
    (tmp_path / "rules").mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[box(*bounds).buffer(20)], crs="EPSG:4547").to_file(
        tmp_path / "rules" / "farmland.gpkg")
    (tmp_path / "after" / "M_20261001_r0c0.tif").write_bytes(b"II*\x00garbage" * 10)
    broken = tmp_path / "after" / "M_20261001_r2c2.tif"
    broken.write_bytes(broken.read_bytes()[:3000])  # the header opens, the pixels are gone
    r = runner.invoke(app, ["batch", str(manifest(tmp_path, rules="rules")), "--workers", "1"], env={"COLUMNS": "200"})
    assert r.exit_code == 3, r.output
    lines = r.output.splitlines()
    counters = [(int(k), int(n), tile) for k, n, tile in
                (m.groups() for m in map(re.compile(r"^\[(\d+)/(\d+)\] (\S+): ").match, lines) if m)]
    assert [(k, n) for k, n, _ in counters] == [(k, 9) for k in range(1, 10)], lines
    assert {t for _, _, t in counters} == {f"M_20261001_r{i}c{j}" for i in range(3) for j in range(3)}
    stages = [m.group(1) for m in map(re.compile(r"^(\w+): (started \(|done, )").match, lines) if m]
    assert stages == [s for s in ("tiles", "changes", "patches", "chips", "sheets", "import") for _ in (0, 1)], lines
    assert "import: started (1 patch)" in lines
    assert re.search(r"tiles\W+9 \(7 processed now, 0 already done, 2 failed\)", r.output), r.output
    s = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert s["tiles"] == 9 and sorted(s["failed"]) == ["M_20261001_r0c0", "M_20261001_r2c2"]


def test_an_unopened_file_with_a_later_tile_s_name_does_not_hide_that_tile(tmp_path):
    """Files that fail to open are reported by name, or by path where the batch has another file of that name;
    either way the later tiles of that name are done and merged as usual."""
    mosaic_pair(tmp_path)
    glob = str(tmp_path / "before" / "**" / "*.tif")
    r = run(manifest(tmp_path, before=glob, out="clean"))
    assert r.exit_code == 0, r.output
    (tmp_path / "before" / "old").mkdir()
    for after in sorted((tmp_path / "after").glob("*.tif")):
        (tmp_path / "before" / "old" / after.name).write_bytes(b"II*\x00garbage" * 10)
    r = run(manifest(tmp_path, before=glob, out="out"))
    assert r.exit_code == 3, r.output
    s = json.loads(r.output)
    broken = sorted(str(p) for p in (tmp_path / "before" / "old").glob("*.tif"))
    assert sorted(s["failed"]) == broken and s["processed"] == len(broken)
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean") != []


def test_later_tiles_of_one_name_in_two_folders_are_kept_apart(tmp_path):
    """A STAC collection or a glob over two folders may give later tiles one file name; each pair is named by its
    folder too, so both are done and merged as if they had their own names."""
    _, _, bounds = mosaic_pair(tmp_path)
    (tmp_path / "rules").mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[box(*bounds).buffer(20)], crs="EPSG:4547").to_file(
        tmp_path / "rules" / "farmland.gpkg")
    r = run(manifest(tmp_path, out="clean", rules="rules"))
    assert r.exit_code == 0, r.output
    tiles = sorted((tmp_path / "after").glob("*.tif"))
    for i, tile in enumerate(tiles):  # item0/T.tif, item1/T.tif, ...: every later tile named alike
        (tmp_path / "items" / f"item{i}").mkdir(parents=True)
        tile.rename(tmp_path / "items" / f"item{i}" / "M_20261001_visual.tif")
    r = run(manifest(tmp_path, after=str(tmp_path / "items" / "**" / "*.tif"), out="out", rules="rules"))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out" / "tiles").iterdir()) == [
        f"item{i}_M_20261001_visual" for i in range(len(tiles))]
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean") != []
    # Each patch names the later tiles it lies on by folder too, so a field team can tell them apart.
    listed = {n for cell in gpd.read_file(tmp_path / "out" / "patches.gpkg")["after_tiles"] for n in cell.split(";")}
    assert listed and listed <= {f"item{i}_M_20261001_visual.tif" for i in range(len(tiles))}
