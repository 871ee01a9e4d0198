"""Issue 19: what a killed command leaves behind. A later run into the same --out removes the temporary files a killed
run left; a run leaves no hidden staging folder."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from satcheck.cli import app
from tests.enforcement_data import jurisdiction

runner = CliRunner()


def _hidden(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def test_a_run_into_the_same_out_removes_what_a_killed_run_left(tmp_path):
    """kill -9 of `satcheck run` leaves probability/.TILE.XXXXXXXX.scratch.tif, files under temporary names and
    the Shapefile's staging folders; no later run removed them. Now the next run into that --out does, and
    itself leaves no hidden file or folder (the empty .patches.shp.d of every run with --rules included)."""
    jurisdiction(tmp_path)
    out = tmp_path / "out"
    left = [out / "probability" / ".S_20261001_r1c1.k3j9x0qa.scratch.tif",  # a tile of this run
            out / "probability" / ".S_20260801_r0c0.a1b2c3d4.scratch.tif",  # a tile this run does not have
            out / ".changes.q8w7e6r5.part.gpkg", out / "chips" / ".360821-202610-0001_after.zz0yy1xx.part.png"]
    for f in left:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"\0" * 1024)
    (out / ".patches.shp.d").mkdir()
    (out / ".patches.shp.d.m4n5b6v7.part").mkdir()
    (out / ".patches.shp.d.m4n5b6v7.part" / "patches.shp").write_bytes(b"\0" * 100)
    r = runner.invoke(app, ["run", str(tmp_path / "before"), str(tmp_path / "after"), "--rules", str(tmp_path / "rules"),
                            "--out", str(out), "--detector", "cva", "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert _hidden(out) == []
    assert (out / "patches.shp").is_file() and len(list((out / "probability").glob("*.tif"))) == 9
