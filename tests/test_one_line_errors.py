"""Inputs and faults that gave a traceback (issue 19): each is now one line 'error: ...' naming the file and the
fix, exit code 2, or is healed and the command goes on. Every case runs through the CLI. (The ledger's faults,
a damaged schema, a full disk, a busy lock: tests/test_ledger_transactions.py.)"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.cli_results import invoke as _run
from tests.cli_results import ok as _ok
from tests.cli_results import one_line_error as _one_line_error
from tests.generate import mosaic_pair, square_pair
from tests.review_data import patch_file


def _manifest(folder: Path, **over) -> Path:
    m = {"period": "2026-10", "before": "before", "after": "after", "out": "out", "detector": "cva"} | over
    path = folder / "batch.yaml"
    path.write_text(yaml.safe_dump(m, allow_unicode=True), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- configuration
def test_config_not_in_utf8(tmp_path):
    b, a, _ = square_pair(tmp_path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes("# 本月的设置\ndetect:\n  threshold: 0.5\n".encode("gbk"))
    _one_line_error(_run("run", b, a, "--out", tmp_path / "out", "--config", cfg), "cfg.yaml", "not UTF-8",
                    "save it as UTF-8")


def test_manifest_not_in_utf8(tmp_path):
    mosaic_pair(tmp_path)
    m = tmp_path / "batch.yaml"
    m.write_bytes("period: 2026-10  # 十月\nbefore: before\nafter: after\nout: out\n".encode("gbk"))
    _one_line_error(_run("batch", m), "batch.yaml", "not UTF-8")


@pytest.mark.parametrize("text, needle", [
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "id": "S2A_2026', "looks truncated"),
    ("[1, 2]", "not a STAC"),
    ('{"type": "Feature", "stac_version": "1.0.0"}', "not a STAC"),
])
def test_stac_file_that_cannot_be_read(tmp_path, text, needle):
    mosaic_pair(tmp_path)
    (tmp_path / "stac.json").write_text(text, encoding="utf-8")
    _one_line_error(_run("batch", _manifest(tmp_path, before="stac.json")), "stac.json", needle)


# ------------------------------------------------------------------------------------------- batch
def test_damaged_batch_json_is_rebuilt_from_the_tiles(tmp_path):
    """batch.json only says that the merge finished; each tile's done.json says what is done. Damaged (cut short
    by a full disk), it used to fail every rerun until deleted by hand: now the rerun redoes the merge (cheap),
    no tile, and writes it anew."""
    mosaic_pair(tmp_path)
    m = _manifest(tmp_path)
    _ok(_run("batch", m, "--json"))
    state = tmp_path / "out" / "batch.json"
    good = json.loads(state.read_text())
    for damaged in ('{"state": "compl', "[]"):
        state.write_text(damaged)
        s = json.loads(_ok(_run("batch", m, "--json")))
        assert s["processed"] == 0 and s["skipped"] == 4 and not s["already_complete"]
        assert json.loads(state.read_text())["fingerprint"] == good["fingerprint"]
        assert json.loads(_ok(_run("batch", m, "--json")))["already_complete"]


def test_unreachable_dask_scheduler(tmp_path, monkeypatch):
    import satcheck.batch.run as run_mod

    monkeypatch.setattr(run_mod, "SCHEDULER_TIMEOUT_S", 2.0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mosaic_pair(tmp_path)
    _one_line_error(_run("batch", _manifest(tmp_path), "--scheduler", f"tcp://127.0.0.1:{port}"),
                    f"--scheduler tcp://127.0.0.1:{port}", "cannot reach the Dask scheduler", "leave out --scheduler")


# ------------------------------------------------------------------------------------------- read-only outputs
@pytest.fixture(params=["chmod", "erofs"])
def read_only(request, tmp_path, monkeypatch) -> Path:
    """A folder nothing can be written in: chmod 0o555 (ineffective as root: skipped), or a read-only file
    system (EROFS from every temporary file made in it)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if request.param == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes into a 0o555 folder; the erofs case covers it")
        folder.chmod(0o555)
        request.addfinalizer(lambda: folder.chmod(0o755))
    else:
        real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp

        def refuse(real):
            def make(*a, dir=None, **k):
                if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
                    raise OSError(errno.EROFS, "Read-only file system", str(dir))
                return real(*a, dir=dir, **k)
            return make

        monkeypatch.setattr(tempfile, "mkstemp", refuse(real_mkstemp))
        monkeypatch.setattr(tempfile, "mkdtemp", refuse(real_mkdtemp))
    return folder


@pytest.fixture()
def patches(tmp_path) -> Path:
    return patch_file(tmp_path / "run" / "patches.gpkg", "2026-10", [("0001", "farmland_construction", (0, 0, 20, 20)),
                                                                    ("0002", "illegal_mining", (100, 0, 40, 40))])


@pytest.fixture()
def ledger(tmp_path, patches) -> Path:
    lg = tmp_path / "ledger.sqlite"
    _ok(_run("review", "import", lg, patches))
    return lg


def test_review_export_into_a_read_only_folder(ledger, read_only):
    _one_line_error(_run("review", "export", ledger, "--out", read_only / "accepted.xlsx"), "accepted.xlsx",
                    "cannot be written", "writable")
    assert not list(read_only.iterdir())


def test_stats_chart_into_a_read_only_folder(ledger, read_only):
    _one_line_error(_run("review", "stats", ledger, "--chart", read_only / "stats.png"), "stats.png",
                    "cannot be written")


@pytest.mark.parametrize("fmt", ["gpkg", "shp", "csv"])
def test_export_into_a_read_only_folder(patches, read_only, fmt):
    _one_line_error(_run("export", patches, "--out", read_only, "--format", fmt), f"patches.{fmt}",
                    "cannot be written")


def test_export_into_a_folder_that_cannot_be_made(patches, tmp_path):
    (tmp_path / "file").write_text("")  # a file where the folder would go: the same on every file system
    _one_line_error(_run("export", patches, "--out", tmp_path / "file" / "out"), "file/out", "cannot be written")


def test_disk_full_while_exporting(patches, tmp_path, monkeypatch):
    import satcheck.export as export

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.gpd.GeoDataFrame, "to_file", full)
    _one_line_error(_run("export", patches, "--out", tmp_path / "out", "--format", "gpkg"), "patches.gpkg",
                    "No space left on device", "free some space")
    assert not list((tmp_path / "out").iterdir())  # no temporary file left either


# ------------------------------------------------------------------------------------------- score
@pytest.mark.parametrize("what", ["tif", "text", "empty"])
def test_score_on_a_file_that_is_not_vector_data(tmp_path, patches, what):
    b, a, _ = square_pair(tmp_path)
    bad = {"tif": a, "text": tmp_path / "notes.gpkg", "empty": tmp_path / "empty.geojson"}[what]
    if what == "text":
        bad.write_text("not a GeoPackage\n")
    elif what == "empty":
        bad.write_text("")
    _one_line_error(_run("score", bad, patches), bad.name, "not a vector file")
    _one_line_error(_run("score", patches, bad), bad.name, "not a vector file")


def test_score_with_a_damaged_run_json(tmp_path, patches):
    (patches.parent / "run.json").write_text('{"area_km2": ')
    _one_line_error(_run("score", patches, patches), "run.json", "not a run summary")


# ------------------------------------------------------------------------------------------- weights, ONNX cache
def _weights(path: Path, meta_json: str | None = None) -> Path:
    import torch

    from satcheck.model.network import ChangeNet
    from satcheck.model.weights import save_weights

    save_weights(ChangeNet(widths=(8, 16, 16, 24), decoder=16).eval(), path, {"bands": [3, 4]})
    if meta_json is not None:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        payload["meta_json"] = meta_json
        torch.save(payload, path)
    return path


def _model_config(tmp_path: Path, weights: Path, engine: str = "onnx") -> Path:
    cfg = tmp_path / "model.yaml"
    cfg.write_text(yaml.safe_dump({"detect": {"detector": "model", "model": {"weights": str(weights),
                                                                             "engine": engine}}}))
    return cfg


@pytest.mark.parametrize("meta_json, needle", [("{not json", "not valid JSON"), ("[1, 2]", "a JSON list")])
@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_weights_with_a_bad_record(tmp_path, monkeypatch, meta_json, needle, engine):
    monkeypatch.setenv("SATCHECK_CACHE", str(tmp_path / "cache"))
    b, a, _ = square_pair(tmp_path)
    w = _weights(tmp_path / "w.pt", meta_json)
    _one_line_error(_run("run", b, a, "--out", tmp_path / "out", "--config", _model_config(tmp_path, w, engine)),
                    "w.pt", "meta_json", needle, "retrain or re-download")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_onnx_cache_entry_heals_itself(tmp_path, monkeypatch, damage):
    """A cache entry cut short (a full disk, a copy that stopped) made every run fail until the cache was deleted
    by hand; now it is no hit: the graph is exported again, the run goes on, the entry is whole again."""
    monkeypatch.setenv("SATCHECK_CACHE", str(tmp_path / "cache"))
    b, a, _ = square_pair(tmp_path)
    cfg = _model_config(tmp_path, _weights(tmp_path / "w.pt"))
    _ok(_run("run", b, a, "--out", tmp_path / "out", "--config", cfg, "--json"))
    (graph,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    whole = graph.read_bytes()
    graph.write_bytes(whole[: len(whole) // 2] if damage == "truncate" else b"\x00" * len(whole))
    _ok(_run("run", b, a, "--out", tmp_path / "out2", "--config", cfg, "--json"))
    assert graph.read_bytes() == whole
    _ok(_run("run", b, a, "--out", tmp_path / "out3", "--config", cfg, "--json"))  # and it is a hit again
