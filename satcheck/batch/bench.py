"""Throughput and memory, measured in one run on a generated pair.

Each stage runs in a fresh process so that its peak resident memory is its
own (generating the pair is not counted against the detector).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stage_generate(out: str, size: int, q) -> None:
    from satcheck.synth.write import write_large_pair

    # Above 8192 px a few drawn 2048 px blocks are repeated: the detector's work is the same, drawing is not.
    b, a = write_large_pair(out, size, seed=3, unique_blocks=8 if size > 8192 else None)
    q.put((str(b), str(a)))


def _stage_model(before: str, after: str, device: str, q) -> None:
    from rasterio.windows import Window

    from satcheck.align import PairReader
    from satcheck.config import RunConfig
    from satcheck.detect.learned import ModelDetector
    from satcheck.pairs import pair_tiles
    from satcheck.tiles import open_tile

    cfg = RunConfig()
    pair = pair_tiles([open_tile(before)], [open_tile(after)])[0]
    side = min(2048, pair.after.width, pair.after.height)
    with PairReader(pair, cfg) as r:
        pw = r.read(Window(0, 0, side, side))
    # The engine a run's configuration chooses is measured once, as itself, and reported twice (model_mpx_s and
    # its entry of by_engine); each figure is the median of single timings, so one stall cannot decide it.
    chosen = ModelDetector(cfg.detect.model, device, pair.after.count)
    speeds = {}
    for engine in ("torch", "onnx"):
        if engine == chosen.predictor.engine:
            det = chosen
        else:
            try:
                det = ModelDetector(cfg.detect.model.model_copy(update={"engine": engine}), device, pair.after.count)
            except Exception:  # e.g. no onnxruntime, or onnx asked for on a GPU run
                continue
        det.score(pw)  # warm-up: builds the ONNX session / CUDA kernels
        seconds = []
        for _ in range(3):
            t = time.perf_counter()
            det.score(pw)
            seconds.append(time.perf_counter() - t)
        speeds[engine] = side * side / 1e6 / statistics.median(seconds)
        del det
    gpu_mb = None
    if chosen.predictor.device_type == "cuda":
        import torch

        gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    q.put({"model_mpx_s": speeds[chosen.predictor.engine], "engine": chosen.predictor.engine,
           "device": chosen.predictor.device_type, "by_engine": speeds, "rss": _peak_rss_mb(), "gpu_mb": gpu_mb})


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


def run_bench(size: int = 4096, device: str = "auto", workdir: str | Path | None = None,
              baseline: bool = True, stage_done: Callable[[str, object, float], None] | None = None) -> dict:
    """``stage_done(name, result, seconds)`` is called as each stage ends (for runs that may not reach the end)."""
    def stage(name: str, target, *args):
        t = time.perf_counter()
        result = _in_process(target, *args)
        if stage_done:
            stage_done(name, result, time.perf_counter() - t)
        return result

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        b, a = stage("generate", _stage_generate, tmp, size)
        model = stage("model", _stage_model, b, a, device)
        e2e = stage("end to end", _stage_run, b, a, str(Path(tmp) / "run_model"), "model", device)
        base = stage("baseline", _stage_run, b, a, str(Path(tmp) / "run_cva"), "cva", device) if baseline else \
            {"mpx_s": None, "rss": None, "changes": None}
    return {
        "size": size,
        "megapixels": round(size * size / 1e6, 2),
        "engine": model["engine"],
        "device": model["device"],
        "model_mpx_s": round(model["model_mpx_s"], 3),
        "model_mpx_s_by_engine": {k: round(v, 3) for k, v in model["by_engine"].items()},
        "end_to_end_mpx_s": round(e2e["mpx_s"], 3),
        "baseline_mpx_s": None if base["mpx_s"] is None else round(base["mpx_s"], 3),
        "peak_rss_mb": round(max(e2e["rss"], model["rss"]), 1),
        "peak_rss_mb_baseline": None if base["rss"] is None else round(base["rss"], 1),
        "peak_rss_mb_model_alone": round(model["rss"], 1),
        "peak_rss_mb_end_to_end": round(e2e["rss"], 1),
        "gpu_peak_mb": None if model["gpu_mb"] is None else round(model["gpu_mb"], 1),
        "changes_model": e2e["changes"],
        "changes_baseline": base["changes"],
    }

