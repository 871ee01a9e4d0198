"""Where the time of one `satcheck run` goes: seconds per stage on a generated pair.

    .venv/bin/python benchmarks/run_stages.py [--size 4096] [--work out/run-stages] [--device auto|cpu|cuda]
                                              [--readers N]

Generates a size × size pair (kept in --work and reused; above 4096 px, four drawn 2048 px blocks are repeated
to save drawing time), runs detection end to end once with timers around the stages, and prints seconds per
stage. Stages overlap: reading runs in its own threads beside scoring, and "score" includes "model". Run it
twice: the first run on a machine also exports the model to ONNX.
"""

from __future__ import annotations

import argparse
import collections
import functools
import shutil
import time
from pathlib import Path

SECONDS: dict[str, float] = collections.defaultdict(float)


def timed(owner, name: str, label: str) -> None:
    f = getattr(owner, name)

    @functools.wraps(f)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            SECONDS[label] += time.perf_counter() - t

    setattr(owner, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--work", type=Path, default=Path("out/run-stages"))
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--readers", type=int, default=None, help="window.readers (default: the config's default)")
    a = ap.parse_args()

    from satcheck.synth.write import write_large_pair

    a.work.mkdir(parents=True, exist_ok=True)
    pair = sorted(a.work.glob(f"bench_{a.size}_*.tif"))
    if len(pair) != 2:
        pair = list(write_large_pair(a.work, a.size, seed=3, unique_blocks=4 if a.size > 4096 else None))

    t = time.perf_counter()
    import rasterio.shutil

    import satcheck.align
    import satcheck.batch.pipeline as pipeline
    import satcheck.batch.tile as tile
    import satcheck.detect.learned
    import satcheck.model.runtime as runtime
    from satcheck.config import RunConfig
    SECONDS["imports"] = time.perf_counter() - t

    timed(pipeline, "get_detector", "detector set-up")
    timed(satcheck.align.PairReader, "_measure_shifts", "co-registration")
    timed(satcheck.align.PairReader, "_moved_in_window", "window co-registration (readers)")
    timed(satcheck.align.PairReader, "_prepare", "statistics and cloud masks")
    timed(satcheck.align.PairReader, "read", "reading windows (own threads)")
    timed(satcheck.detect.learned.ModelDetector, "score", "score")
    timed(runtime.OnnxPredictor, "_run", "model (ONNX Runtime)")
    if a.device != "cpu":
        import satcheck.model.infer as infer  # imports torch: only where torch may run the model

        timed(infer.TorchPredictor, "_run", "model (torch)")
    timed(tile, "clean_mask", "cleanup")
    timed(tile, "window_pieces", "polygons")
    timed(rasterio.shutil, "copy", "probability COG")
    timed(pipeline, "finish", "merge and write outputs")

    out = a.work / "run"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    cfg = RunConfig().with_overrides(**{"detect.device": a.device, "window.readers": a.readers})
    res = pipeline.detect_changes(pair[0], pair[1], out, cfg)
    total = time.perf_counter() - t
    print(f"{a.size} × {a.size}: {total:.2f} s, {res.pixels / 1e6 / total:.2f} Mpx/s end to end, "
          f"{len(res.changes)} changes")
    for label, s in sorted(SECONDS.items(), key=lambda kv: -kv[1]):
        print(f"  {label:32s} {s:6.2f} s")


if __name__ == "__main__":
    main()
