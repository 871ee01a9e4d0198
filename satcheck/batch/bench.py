"""Throughput and memory, measured in one run on a generated pair.

Each stage runs in a fresh process so that its peak resident memory is its
own (generating the pair is not counted against the detector).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stage_generate(out: str, size: int, q) -> None:
    from satcheck.synth.write import write_large_pair

    b, a = write_large_pair(out, size, seed=3)
    q.put((str(b), str(a)))


def _stage_model(before: str, after: str, device: str, q) -> None:
    from rasterio.windows import Window

    from satcheck.align import PairReader, pair_tiles
    from satcheck.config import RunConfig
    from satcheck.detect.learned import ModelDetector
    from satcheck.tiles import open_tile

    cfg = RunConfig()
    pair = pair_tiles([open_tile(before)], [open_tile(after)])[0]
    det = ModelDetector(cfg.detect.model, device, pair.after.count)
    side = min(2048, pair.after.width, pair.after.height)
    with PairReader(pair, cfg) as r:
        pw = r.read(Window(0, 0, side, side))
    det.score(pw)  # warm-up: builds the ONNX session / CUDA kernels
    t = time.perf_counter()
    reps = 3
    for _ in range(reps):
        det.score(pw)
    dt = (time.perf_counter() - t) / reps
    gpu_mb = None
    if det.predictor.device.type == "cuda":
        import torch

        gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    q.put({"model_mpx_s": side * side / 1e6 / dt, "engine": det.predictor.engine,
           "device": det.predictor.device.type, "rss": _peak_rss_mb(), "gpu_mb": gpu_mb})


def _stage_run(before: str, after: str, out: str, detector: str, device: str, q) -> None:
    from satcheck.batch.pipeline import detect_changes
    from satcheck.config import RunConfig

    cfg = RunConfig().with_overrides(**{"detect.detector": detector, "detect.device": device})
    t = time.perf_counter()
    res = detect_changes(before, after, out, cfg)
    dt = time.perf_counter() - t
    q.put({"mpx_s": res.pixels / 1e6 / dt, "rss": _peak_rss_mb(), "changes": len(res.changes)})


def _in_process(target, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result = q.get()
    p.join()
    return result


def run_bench(size: int = 4096, device: str = "auto", workdir: str | Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        b, a = _in_process(_stage_generate, tmp, size)
        model = _in_process(_stage_model, b, a, device)
        e2e = _in_process(_stage_run, b, a, str(Path(tmp) / "run_model"), "model", device)
        base = _in_process(_stage_run, b, a, str(Path(tmp) / "run_cva"), "cva", device)
    return {
        "size": size,
        "megapixels": round(size * size / 1e6, 2),
        "engine": model["engine"],
        "device": model["device"],
        "model_mpx_s": round(model["model_mpx_s"], 3),
        "end_to_end_mpx_s": round(e2e["mpx_s"], 3),
        "baseline_mpx_s": round(base["mpx_s"], 3),
        "peak_rss_mb": round(max(e2e["rss"], model["rss"]), 1),
        "peak_rss_mb_baseline": round(base["rss"], 1),
        "gpu_peak_mb": None if model["gpu_mb"] is None else round(model["gpu_mb"], 1),
        "changes_model": e2e["changes"],
        "changes_baseline": base["changes"],
    }


__all__ = ["run_bench", "np"]
