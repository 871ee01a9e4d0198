"""Issue 19: an output folder is complete and from one run, or says that it is not. A run that fails after writing
some of its files (an error, a full disk) leaves INCOMPLETE.txt; review import, export and score refuse such a
folder with one line naming it and the fix; the next run that finishes removes the mark. A batch that stopped
before its merge was written, or a tile whose files were being replaced, is redone on resume, not skipped."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

import satcheck.batch.pipeline as pipeline
import satcheck.batch.run as batch_run
from satcheck.outfolder import MARKER
from tests.cli_results import invoke, ok, one_line_error
from tests.enforcement_data import jurisdiction


def _run(tmp_path: Path, out: Path):
    return invoke("run", tmp_path / "before", tmp_path / "after", "--rules", tmp_path / "rules", "--out", out,
                  "--detector", "cva", "--json")


def _disk_full_at_the_end(monkeypatch) -> None:
    """The configuration, written after the changes, patches, exports, chips and sheets: a late stage."""
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "dump_config", full)


def _refused(out: Path, ledger: Path) -> None:
    for args in (("review", "import", ledger, out / "patches.gpkg"),
                 ("export", out / "patches.gpkg", "--out", out.parent / "export"),
                 ("score", out / "changes.gpkg", out / "changes.gpkg")):
        one_line_error(invoke(*args), str(out), "did not finish", MARKER, "run it again")
    assert not ledger.exists() and not (out.parent / "export").exists()


@pytest.fixture(scope="module")
def land(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("land")
    jurisdiction(folder)
    return folder


def test_a_run_that_fails_after_its_patches_is_marked_and_refused(land, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _disk_full_at_the_end(monkeypatch)
    one_line_error(_run(land, out), "config.yaml", "No space left on device")
    assert (out / "patches.gpkg").is_file() and not (out / "run.json").exists()
    assert "did not finish" in (out / MARKER).read_text(encoding="utf-8")
    _refused(out, tmp_path / "ledger.sqlite")
    monkeypatch.undo()
    ok(_run(land, out))
    assert not (out / MARKER).exists()
    ok(invoke("review", "import", tmp_path / "ledger.sqlite", out / "patches.gpkg"))
    ok(invoke("export", out / "patches.gpkg", "--out", tmp_path / "export", "--format", "csv"))


def test_a_failing_rerun_over_a_complete_output_does_not_leave_it_looking_complete(land, tmp_path, monkeypatch):
    out = tmp_path / "out"
    ok(_run(land, out))
    first = json.loads((out / "run.json").read_text(encoding="utf-8"))["run_id"]
    assert not (out / MARKER).exists()
    _disk_full_at_the_end(monkeypatch)
    one_line_error(_run(land, out), "No space left on device")
    # The earlier run's run.json and config are still there, beside this run's patches: marked, and refused.
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["run_id"] == first
    assert (out / MARKER).read_text(encoding="utf-8").splitlines()[0] != first
    _refused(out, tmp_path / "ledger.sqlite")
    monkeypatch.undo()
    ok(_run(land, out))
    assert not (out / MARKER).exists()
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["run_id"] != first


def test_a_run_refused_before_it_writes_leaves_a_complete_output_complete(land, tmp_path):
    out = tmp_path / "out"
    ok(_run(land, out))
    one_line_error(invoke("run", land / "before", tmp_path / "nowhere", "--out", out, "--detector", "cva"))
    assert not (out / MARKER).exists()


def _batch(folder: Path, *more):
    return invoke("batch", folder / "batch.yaml", "--workers", "1", "--json", *more)


@pytest.mark.slow
def test_a_batch_whose_merge_failed_is_merged_again_not_already_complete(tmp_path, monkeypatch):
    jurisdiction(tmp_path)
    ok(_batch(tmp_path))
    out = tmp_path / "out"
    _disk_full_at_the_end(monkeypatch)
    one_line_error(_batch(tmp_path, "--force"), "No space left on device")
    assert (out / MARKER).exists()  # batch.json still says complete, of the same tiles and settings
    monkeypatch.undo()
    s = json.loads(ok(_batch(tmp_path)).strip().splitlines()[-1])
    assert not s["already_complete"] and s["processed"] == 0 and s["skipped"] == 9
    assert not (out / MARKER).exists()
    assert json.loads(ok(_batch(tmp_path)).strip().splitlines()[-1])["already_complete"]


@pytest.mark.slow
def test_a_tile_whose_files_were_being_replaced_is_redone(tmp_path, monkeypatch):
    jurisdiction(tmp_path)
    ok(_batch(tmp_path))
    real = batch_run.write_pieces

    def fail_one(pieces, crs, path):
        if path.parent.name == "S_20261001_r1c1":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(pieces, crs, path)

    monkeypatch.setattr(batch_run, "write_pieces", fail_one)
    r = _batch(tmp_path, "--force")
    assert r.exit_code == 3, r.output
    assert not (tmp_path / "out" / "tiles" / "S_20261001_r1c1" / "done.json").exists()
    monkeypatch.undo()
    s = json.loads(ok(_batch(tmp_path)).strip().splitlines()[-1])
    assert s["processed"] == 1 and s["skipped"] == 8 and not s["failed"]
    assert not (tmp_path / "out" / MARKER).exists()


def test_a_run_leaves_nothing_of_an_earlier_run_it_did_not_replace(land, tmp_path):
    """A run without rule layers after one with them used to leave the earlier patches, exports and sheets beside
    its own changes (review import took them); a run over fewer tiles, the others' probability COGs."""
    out = tmp_path / "out"
    ok(_run(land, out))
    assert (out / "field_sheet.pdf").is_file() and len(list((out / "probability").glob("*.tif"))) == 9
    one = tmp_path / "one"
    one.mkdir()
    (one / "S_20261001_r1c1.tif").symlink_to(land / "after" / "S_20261001_r1c1.tif")
    ok(invoke("run", land / "before", one, "--out", out, "--detector", "cva", "--json"))
    assert not list(out.glob("patches.*")) and not list(out.glob("field_sheet.*"))
    assert [f.name for f in (out / "probability").glob("*.tif")] == ["S_20261001_r1c1.tif"]
    assert (out / "changes.gpkg").is_file() and (out / "run.json").is_file() and not (out / MARKER).exists()
    one_line_error(invoke("review", "import", tmp_path / "ledger.sqlite", out / "patches.gpkg"), "not found")


def test_a_sheet_that_failed_this_time_leaves_no_earlier_sheet(land, tmp_path, monkeypatch):
    import satcheck.batch.enforce as enforce
    from satcheck.errors import OutputError

    out = tmp_path / "out"
    ok(_run(land, out))

    def bad_pdf(*_a, **_k):
        raise OutputError("field_sheet.pdf: cannot be written (No space left on device); free some space")

    monkeypatch.setattr(enforce, "write_pdf", bad_pdf)
    s = json.loads(ok(_run(land, out)).strip().splitlines()[-1])
    assert any("field_sheet.pdf not written" in p for p in s["rule_problems"])
    assert not (out / "field_sheet.pdf").exists() and (out / "field_sheet.html").is_file()
