"""Batch throughput and memory: 1 worker, 2 workers and a 2-worker Dask LocalCluster, in one run.

    .venv/bin/python benchmarks/batch_bench.py [--tiles 4] [--tile-px 4096] [--work out/bench-batch]

Generates a jurisdiction of tiles × tiles pairs of tile-px × tile-px (kept in --work and reused), runs
`satcheck batch --force` on it three ways, and prints for each: seconds, Mpx/s and peak resident memory of
the whole process tree (sampled every 0.2 s), plus the scaling efficiency of 2 workers over 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import rasterio
import yaml
from rasterio.transform import Affine

from satcheck.synth.write import write_large_pair


def make_jurisdiction(work: Path, tiles: int, tile_px: int) -> None:
    marker = work / f"tiles_{tiles}x{tile_px}.done"
    if marker.exists():
        return
    # One pair is drawn; the other tiles are copies of it placed elsewhere (the work per tile is the same).
    first = write_large_pair(work, tile_px, seed=100, name="T00", split=True)
    for i in range(tiles):
        for j in range(tiles):
            if i == j == 0:
                continue
            for src in first:
                dst = src.with_name(src.name.replace("T00", f"T{i}{j}"))
                shutil.copyfile(src, dst)
                with rasterio.open(dst, "r+") as ds:
                    ds.transform = ds.transform * Affine.translation(j * tile_px, i * tile_px)
    marker.write_text("ok")


def peak_tree_rss(proc: subprocess.Popen, stop: threading.Event, out: list) -> None:
    peak = 0
    p = psutil.Process(proc.pid)
    while not stop.is_set():
        try:
            procs = [p, *p.children(recursive=True)]
            peak = max(peak, sum(q.memory_info().rss for q in procs if q.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out.append(peak / 2**20)


def run(manifest: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "satcheck.cli", "batch", str(manifest), "--json", "--force", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    stop, peak = threading.Event(), []
    th = threading.Thread(target=peak_tree_rss, args=(proc, stop, peak))
    th.start()
    stdout, _ = proc.communicate()
    stop.set()
    th.join()
    dt = time.perf_counter() - t0
    s = json.loads(stdout)
    return {"seconds": round(dt, 1), "peak_rss_mb": round(peak[0], 0), "summary": s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--tile-px", type=int, default=4096)
    ap.add_argument("--work", type=Path, default=Path("out/bench-batch"))
    ap.add_argument("--detector", default="auto")
    a = ap.parse_args()
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    make_jurisdiction(work, a.tiles, a.tile_px)
    print(f"jurisdiction ready ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    mpx = a.tiles * a.tiles * a.tile_px * a.tile_px / 1e6
    results = {}
    for label, extra in (("1 worker", ["--workers", "1"]), ("2 workers", ["--workers", "2"])):
        m = work / f"m_{label[0]}.yaml"
        m.write_text(yaml.safe_dump({"period": "2026-10", "before": "before", "after": "after",
                                     "out": f"run_{label[0]}", "detector": a.detector}))
        results[label] = run(m, extra)
        print(label, results[label]["seconds"], "s", file=sys.stderr)
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        m = work / "m_dask.yaml"
        m.write_text(yaml.safe_dump({"period": "2026-10", "before": "before", "after": "after", "out": "run_dask",
                                     "detector": a.detector}))
        results["dask 2 workers"] = run(m, ["--scheduler", cluster.scheduler_address])
    rows = []
    for label, r in results.items():
        rows.append({"run": label, "seconds": r["seconds"], "mpx_s": round(mpx / r["seconds"], 2),
                     "peak_rss_mb": r["peak_rss_mb"], "patches_or_changes": r["summary"].get("changes")})
    eff = results["1 worker"]["seconds"] / results["2 workers"]["seconds"] / 2
    out = {"tiles": a.tiles * a.tiles, "tile_px": a.tile_px, "megapixels": round(mpx, 1), "runs": rows,
           "scaling_efficiency_2_workers": round(eff, 3), "cpus": os.cpu_count()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
