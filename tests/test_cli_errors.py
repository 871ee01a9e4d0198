"""A run that fails half-way leaves no output under a final name. (Bad inputs, each a one-line error naming the
file: the fault catalogue, tests/fault_catalogue.py.)"""

import shutil

from typer.testing import CliRunner

from satcheck.cli import app
from tests.generate import square_pair

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_failed_run_keeps_previous_results(tmp_path, monkeypatch):
    """A run that fails half-way leaves the earlier changes.gpkg untouched and no temporary files."""
    b, a, _ = square_pair(tmp_path)
    out = tmp_path / "out"
    assert _run("run", b, a, "--out", out, "--detector", "cva").exit_code == 0
    before_bytes = (out / "changes.gpkg").read_bytes()

    import satcheck.detect.polygons as polygons

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(polygons.gpd.GeoDataFrame, "to_file", boom)
    r = _run("run", b, a, "--out", out, "--detector", "cva")
    assert r.exit_code != 0
    assert (out / "changes.gpkg").read_bytes() == before_bytes
    assert not [p for p in out.rglob("*") if ".part" in p.name or "scratch" in p.name]
    shutil.rmtree(out)
