"""Patch ids stay with their places: resumed, partial and repeated batches, reruns of a run, ledger imports."""

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
from typer.testing import CliRunner

from satcheck.cli import app
from satcheck.review.frames import review_frame
from satcheck.review.ledger import Ledger
from tests.enforcement_data import config, jurisdiction, manifest, place
from tests.generate import square_pair
from tests.review_data import patch_file

runner = CliRunner()
IOU, SHARE = 0.3, 0.5  # the ledger's defaults (review.match_iou, review.match_share)
REVIEWED = {"farmland_construction", "illegal_mining", "expired_permit_mining", "out_of_bounds_mining"}


def batch(m: Path, *extra: str, code: int = 0) -> dict:
    r = runner.invoke(app, ["batch", str(m), "--json", "--workers", "1", *extra])
    assert r.exit_code == code, r.output
    return json.loads(r.output.strip().splitlines()[-1])


def patches(folder: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(folder / "out" / "patches.gpkg", layer="patches")


def ledger_rows(folder: Path) -> gpd.GeoDataFrame:
    with Ledger(folder / "ledger.sqlite") as lg:
        return review_frame(lg, period="2026-10")


def same(a, b) -> bool:
    """The ledger's rule for one place, written out: IoU >= 0.3 or half of either covered."""
    inter = a.intersection(b).area
    return inter > 0 and (inter / a.union(b).area >= IOU or inter / min(a.area, b.area) >= SHARE)


def check_integrity(folder: Path, earlier: list[gpd.GeoDataFrame]) -> None:
    """0 lost, 0 duplicated, 0 ids moved, against every earlier run's patches of the period."""
    now, lg = patches(folder), ledger_rows(folder)
    by_id = {r["patch_id"]: r for _, r in now.iterrows()}
    in_ledger = {r["patch_id"]: r for _, r in lg.iterrows()}
    # Lost: a patch for review missing from the ledger, or the ledger's entry is another place or class.
    for _, r in now[now["class"].isin(REVIEWED)].iterrows():
        pid = r["patch_id"]
        assert pid in in_ledger, f"{pid} ({r['class']}) never reached review"
        assert same(in_ledger[pid].geometry, r.geometry), f"{pid} is another place in the ledger"
        assert in_ledger[pid]["class"] == r["class"], f"{pid}: the ledger says {in_ledger[pid]['class']}"
    # Duplicated: one place twice in the period, in the file or in the ledger.
    for table in (now, lg):
        geoms, ids = list(table.geometry), list(table["patch_id"])
        for i in range(len(geoms)):
            for j in range(i + 1, len(geoms)):
                assert not same(geoms[i], geoms[j]), f"{ids[i]} and {ids[j]} are one place"
    # Moved: an id keeps its place, and a place keeps its id.
    for old in earlier:
        for _, r in old.iterrows():
            pid = r["patch_id"]
            if pid in by_id:
                assert same(by_id[pid].geometry, r.geometry), f"{pid} moved to another place"
            for _, n in now.iterrows():
                if same(n.geometry, r.geometry):
                    assert n["patch_id"] == pid, f"the place of {pid} is now {n['patch_id']}"
            if r["class"] in REVIEWED:
                assert pid in in_ledger  # the ledger keeps what it was given


def test_corrupt_tile_then_resume_keeps_every_id(tmp_path):
    """Issue 18.1: a later tile is corrupt (exit 3), restored, the same command again: nothing lost, doubled or
    renumbered; the pit on the restored tile and the house across its border reach review."""
    m = jurisdiction(tmp_path)
    tile = tmp_path / "after" / "S_20261001_r1c1.tif"
    good = tile.read_bytes()
    tile.write_bytes(b"II*\x00garbage" * 10)
    first = batch(m, code=3)
    assert list(first["failed"]) == ["S_20261001_r1c1"]
    partial = patches(tmp_path)
    assert not partial[partial.intersects(place("D"))].shape[0]  # the pit lies on the broken tile
    tile.write_bytes(good)
    second = batch(m)
    assert second["ledger"]["added"] >= 1 and not second["failed"]
    full = patches(tmp_path)
    assert len(full) > len(partial)
    check_integrity(tmp_path, [partial])
    pit = full[full.intersects(place("D"))]
    assert list(pit["class"]) == ["out_of_bounds_mining"]
    # The house across the border was cut by the missing tile; it keeps the id it was issued, whole now.
    (e_id,) = partial[partial.intersects(place("E"))]["patch_id"]
    whole = full.set_index("patch_id").loc[e_id]
    assert whole.geometry.area > partial.set_index("patch_id").loc[e_id].geometry.area
    # Nobody had decided on it yet, so the ledger now holds it whole too (what the new chips show).
    assert second["ledger"]["updated"] >= 1
    with Ledger(tmp_path / "ledger.sqlite") as lg:
        assert lg.patch(e_id)["area_m2"] == pytest.approx(whole["area_m2"])
    registry = json.loads((tmp_path / "out" / "patch_ids.json").read_text(encoding="utf-8"))
    assert {p["patch_id"] for p in registry["patches"]} == set(full["patch_id"])


@pytest.mark.parametrize("change, config_data", [
    ("fewer", {"patches": {"mmu_m2": {"out_of_bounds_mining": 5000.0}}}),   # the pit is no longer a patch
    ("more", {"patches": {"mmu_m2": {"farmland_construction": 100.0}}}),    # the shed H now is
])
def test_rerun_with_one_patch_fewer_or_more_moves_no_id(tmp_path, change, config_data):
    m = jurisdiction(tmp_path)
    batch(m)
    base = patches(tmp_path)
    manifest(tmp_path, config=config(tmp_path, "other.yaml", config_data))
    s = batch(m)
    now = patches(tmp_path)
    assert len(now) == len(base) + (1 if change == "more" else -1)
    check_integrity(tmp_path, [base])
    assert s["processed"] == 0  # the tiles' detection is reused; only what is made from it is redone
    if change == "more":
        (new,) = set(now["patch_id"]) - set(base["patch_id"])
        shed = now.set_index("patch_id").loc[new]
        assert shed.geometry.intersects(place("H"))
        # The next number of its admin unit, though it lies north of others there.
        assert int(new[-4:]) == 1 + max(int(p[-4:]) for p in base["patch_id"] if p.startswith(new[:6]))
    else:
        (gone,) = set(base["patch_id"]) - set(now["patch_id"])
        # The retired id is not given to anything else in a later rerun either.
        manifest(tmp_path, config=None)
        batch(m)
        assert gone in set(patches(tmp_path)["patch_id"])  # the pit is back under its own id
        check_integrity(tmp_path, [base])


@pytest.mark.parametrize("registry", [True, False])
def test_rerun_of_a_run_into_the_same_folder_keeps_ids(tmp_path, registry):
    """satcheck run --out OUT again, finding one patch fewer: OUT's registry of issued ids (or, in a folder written
    before there was one, its patches.gpkg) keeps every other patch's id."""
    jurisdiction(tmp_path)
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "before"), str(tmp_path / "after"), "--out", str(out), "--rules",
            str(tmp_path / "rules"), "--detector", "cva", "--json"]
    assert runner.invoke(app, args).exit_code == 0
    first = gpd.read_file(out / "patches.gpkg")
    if not registry:
        (out / "patch_ids.json").unlink(missing_ok=True)
    fewer = config(tmp_path, "fewer.yaml", {"patches": {"mmu_m2": {"out_of_bounds_mining": 5000.0}}})
    r = runner.invoke(app, [*args, "--config", str(tmp_path / fewer)])
    assert r.exit_code == 0, r.output
    now = gpd.read_file(out / "patches.gpkg")
    assert len(now) == len(first) - 1
    for _, p in now.iterrows():
        (was,) = [o["patch_id"] for _, o in first.iterrows() if same(o.geometry, p.geometry)]
        assert p["patch_id"] == was


def test_import_of_a_known_id_at_another_place_is_refused(tmp_path):
    """Issue 18.1: ``review import`` matches by geometry; a known id that is now another place is an error
    naming both, and nothing is written."""
    lg = tmp_path / "ledger.sqlite"
    p1 = patch_file(tmp_path / "a" / "patches.gpkg", "2026-10", [("0001", "illegal_mining", (0, 0, 40, 40)),
                                                                ("0002", "illegal_mining", (300, 0, 40, 40))])
    assert runner.invoke(app, ["review", "import", str(lg), str(p1)]).exit_code == 0
    # The same ids renumbered onto other places (what a run that ignored the ledger would write).
    p2 = patch_file(tmp_path / "b" / "patches.gpkg", "2026-10", [("0001", "farmland_construction", (900, 0, 20, 20)),
                                                                ("0002", "illegal_mining", (0, 0, 40, 40)),
                                                                ("0003", "illegal_mining", (300, 0, 40, 40))])
    with Ledger(lg) as ledger:
        events = ledger.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    r = runner.invoke(app, ["review", "import", str(lg), str(p2)])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert line.startswith("error:") and len(line.splitlines()) == 1
    assert "360821-202610-0001" in line and "farmland_construction" in line and "illegal_mining" in line
    assert "nothing was imported" in line
    with Ledger(lg) as ledger:
        assert ledger.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == events
        assert ledger.db.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 1
    # A new id for a place the ledger has under another id is refused too (it would be entered twice).
    p3 = patch_file(tmp_path / "c" / "patches.gpkg", "2026-10", [("0001", "illegal_mining", (0, 0, 40, 40)),
                                                                ("0007", "illegal_mining", (301, 0, 40, 40))])
    r = runner.invoke(app, ["review", "import", str(lg), str(p3)])
    assert r.exit_code == 2 and "0007" in r.output and "360821-202610-0002" in r.output


def test_import_of_the_same_places_skips_them(tmp_path):
    lg = tmp_path / "ledger.sqlite"
    p1 = patch_file(tmp_path / "a.gpkg", "2026-10", [("0001", "illegal_mining", (0, 0, 40, 40))])
    p2 = patch_file(tmp_path / "b.gpkg", "2026-10", [("0001", "illegal_mining", (0, 0, 44, 40)),   # grown a little
                                                     ("0002", "illegal_mining", (300, 0, 40, 40))])  # new
    with Ledger(lg) as ledger:
        ledger.import_patches(p1)
        r = ledger.import_patches(p2)
    assert (r.added, r.skipped, r.updated) == (1, 0, 1)  # the grown one, not yet decided, is brought up to date
    with Ledger(lg) as ledger:
        assert ledger.import_patches(patch_file(tmp_path / "c.gpkg", "2026-10", [
            ("0001", "illegal_mining", (0, 0, 44, 40))])).skipped == 1  # unchanged: skipped


def test_split_and_merge_rules():
    """Split: the bigger part keeps the id. Merge: the patch takes the id it overlaps most; the other is retired.
    New places: the next numbers of their admin unit, north to south."""
    from shapely.geometry import box

    from satcheck.patch_ids import Issued, issue, match

    issued = [Issued("360821-202610-0001", "2026-10", box(0, 0, 100, 100)),
              Issued("360821-202610-0002", "2026-10", box(200, 0, 260, 100))]
    split = [box(0, 0, 30, 100), box(40, 0, 100, 100)]
    assert match(split, issued, IOU, SHARE) == [None, "360821-202610-0001"]
    merged = [box(0, 0, 260, 100)]
    assert match(merged, issued, IOU, SHARE) == ["360821-202610-0001"]
    ids = issue(["360821", "360821"], [500, 500], [100, 900], [box(490, 90, 510, 110), box(490, 890, 510, 910)],
                "2026-10", issued, IOU, SHARE)
    assert ids == ["360821-202610-0004", "360821-202610-0003"]  # north first, after the highest issued number
    # The ledger's ids are taken before the registry's.
    both = [Issued("360821-202610-0009", "2026-10", box(0, 0, 100, 100), in_ledger=True), issued[0]]
    assert match([box(0, 0, 100, 100)], both, IOU, SHARE) == ["360821-202610-0009"]


def test_registry_that_is_not_json_is_a_one_line_error(tmp_path):
    b, a, _ = square_pair(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    gpd.GeoDataFrame({"DLBM": ["0101"]}, geometry=[place("A").buffer(500)], crs="EPSG:4547").to_file(
        rules / "farmland.gpkg")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "patch_ids.json").write_text("{not json", encoding="utf-8")
    r = runner.invoke(app, ["run", str(b), str(a), "--out", str(tmp_path / "out"), "--rules", str(rules),
                            "--detector", "cva"])
    assert r.exit_code == 2 and "patch_ids.json" in r.output and "registry" in r.output, r.output
    shutil.rmtree(tmp_path / "out")


def test_a_decided_patch_keeps_what_was_decided_on(tmp_path):
    """A known patch takes the file's newer outline only while nobody has decided on it."""
    lg_path = tmp_path / "ledger.sqlite"
    p1 = patch_file(tmp_path / "a.gpkg", "2026-10", [("0001", "illegal_mining", (0, 0, 40, 40)),
                                                     ("0002", "illegal_mining", (300, 0, 40, 40))])
    p2 = patch_file(tmp_path / "b.gpkg", "2026-10", [("0001", "illegal_mining", (0, 0, 40, 50)),
                                                     ("0002", "illegal_mining", (300, 0, 40, 50))])
    with Ledger(lg_path) as lg:
        lg.import_patches(p1)
        lg.decide("360821-202610-0001", "accepted", "wang")
        r = lg.import_patches(p2)
        assert (r.added, r.skipped, r.updated) == (0, 1, 1)
        assert lg.patch("360821-202610-0001")["area_m2"] == pytest.approx(1600)
        assert lg.patch("360821-202610-0002")["area_m2"] == pytest.approx(2000)
