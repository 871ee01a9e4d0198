"""Issue 19: what a killed command leaves behind. A batch's worker processes die with its main process; a later run
into the same --out removes the temporary files a killed run left; a run leaves no hidden staging folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from satcheck.cli import app
from tests.enforcement_data import jurisdiction
from tests.generate import mosaic_pair

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


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


def _children(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_workers_die_with_a_killed_batch(tmp_path):
    """kill -9 of `batch --workers 2`'s main process (not its process group): its workers used to go on for
    minutes holding their memory; now they end within seconds."""
    import psutil

    mosaic_pair(tmp_path, tiles=4, tile_px=256)
    m = tmp_path / "batch.yaml"
    m.write_text("period: 2026-10\nbefore: before\nafter: after\nout: out\ndetector: cva\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "satcheck.cli", "batch", str(m), "--workers", "2", "--json"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers: list = []
    try:
        deadline = time.time() + 180
        # Until the workers are at work: two processes of the pool, and a tile begun.
        while time.time() < deadline and proc.poll() is None:
            workers = [c for c in _children(proc.pid) if "spawn_main" in " ".join(c.cmdline())]
            if len(workers) >= 2 and any((tmp_path / "out" / "tiles").glob("*")):
                break
            time.sleep(0.02)
        assert proc.poll() is None and len(workers) >= 2, "the batch ended before its workers could be seen"
        os.kill(proc.pid, signal.SIGKILL)  # the main process only, as the OOM killer or a kill -9 of its pid does
        proc.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"{len(alive)} workers still alive 10 s after their batch was killed"
    finally:
        for w in workers:  # whatever this test started
            try:
                w.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()
