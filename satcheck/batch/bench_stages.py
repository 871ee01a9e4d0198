"""The stage profile of ``satcheck bench --stages``: where the seconds of one run go, beside the read-only floor.

Three measures of one generated pair (with rule layers, so that patches are made), taken in turn ``repeats``
times so that a stall of the machine hits each of them at most once, and each reported as its median:

* **read floor**: both dates read and decoded, window by window (the run's window grid, no halo), by as many
  threads as there are cores, each with its own file handles (GDAL releases the GIL while it decodes);
* **end to end**: :func:`satcheck.batch.pipeline.detect_changes`, exactly as ``satcheck run --rules`` calls it;
* **stages**: the same work replayed one stage at a time (:func:`replay`), calling the functions the run calls
  on the same windows, each stage timed with a :class:`~satcheck.stage_timer.StageTimer`. The replay runs the
  stages one after another in one thread, where the run overlaps them (it measures the shifts while it reads the
  decimated pair and makes its masks, reads the next window and cleans and polygonises the last one while it
  scores this one, and makes the probability COG in a thread of its own while it makes the patches), so
  ``end to end - sum of stages`` (``other_s``) is what the run spends outside the timed stages less what it
  hides behind other stages. The replay makes the same change polygons as the run (``changes_replay``); a
  difference means it no longer mirrors :func:`satcheck.batch.tile.detect_pair`.

"Model alone" is the model stage of the replay: the run's own detector (same engine and device, as the run's
configuration chooses them) on the run's windows, halo included, reported as pixels of the pair per second, so
``end_to_end / model`` is the share of a run's time the model takes.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

STAGES = ("setup", "read", "coregister", "masks", "normalise", "model", "cleanup", "polygons", "cog_write",
          "patches")
STAGE_LABELS = {
    "setup": "setup (tiles, detector)",
    "read": "read and decode",
    "coregister": "co-register",
    "masks": "cloud, shadow, nodata",
    "normalise": "normalise",
    "model": "model",
    "cleanup": "threshold, cleanup",
    "polygons": "polygons",
    "cog_write": "probability COG",
    "patches": "changes, patches, sheets",
}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def write_bench_rules(out: Path, tile: Path) -> Path:
    """Rule layers for a generated pair: farmland (dry land, 0103) and one admin unit, each covering the whole
    tile, so every construction change becomes a farmland-construction patch with chips and sheets."""
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    with rasterio.open(tile) as src:
        crs, frame = src.crs, box(*src.bounds)
    out.mkdir(parents=True, exist_ok=True)
    for name, row in (("farmland", {"DLBM": "0103", "DLMC": "旱地"}),
                      ("admin", {"XZQDM": "360821", "XZQMC": "吉安县"})):
        gpd.GeoDataFrame([row | {"geometry": frame}], geometry="geometry", crs=crs).to_file(
            out / f"{name}.gpkg", layer=name, driver="GPKG", engine="pyogrio")
    return out


def read_floor(paths: list[Path], window: int, threads: int) -> tuple[float, int]:
    """Seconds to read and decode every band of ``paths`` window by window with ``threads`` threads, and the
    pixels of one of them (the pair's pixels, as end to end counts them)."""
    import rasterio
    from rasterio.windows import Window

    from satcheck.windows import window_grid

    with rasterio.open(paths[-1]) as src:
        width, height = src.width, src.height
    grid = window_grid(width, height, window)
    # Each task opens its own handle (a GDAL handle is not shared between threads) over a share of the windows.
    per = max(1, -(-len(grid) // threads))
    tasks = [(p, grid[i:i + per]) for p in paths for i in range(0, len(grid), per)]

    def read(task: tuple[Path, list[Window]]) -> int:
        path, wins = task
        n = 0
        with rasterio.open(path) as src:
            for w in wins:
                n += src.read(window=w).shape[-1]
        return n

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, tasks))
    return time.perf_counter() - t, width * height


def replay(before: Path, after: Path, rules: Path | None, out: Path, config, timer) -> tuple[int, object]:
    """One run of ``detect_changes(before, after, out, config, rules=rules)`` done one stage at a time, each timed
    into ``timer``; returns the number of change polygons and the detector. Mirrors
    :func:`satcheck.batch.pipeline.detect_changes`, :func:`satcheck.batch.tile.detect_pair` and
    :class:`satcheck.align.PairReader` (whose private steps it calls, one by one, to time them apart)."""
    from satcheck.atomic import atomic_path
    from satcheck.batch.enforce import enforcement_outputs
    from satcheck.batch.pipeline import merge_changes, set_up_run

    out = Path(out)
    with timer.stage("setup"):
        setup = set_up_run(before, after, out, config, rules)
    pairs, detector, crs = setup.pairs, setup.detector, setup.crs
    pieces = []
    for pair in pairs:
        pieces.extend(_replay_pair(pair, detector, config, out / "probability" / f"{pair.name}.tif", crs, timer))
    with timer.stage("polygons"):
        changes = merge_changes(pieces, pairs, crs, config)
    with timer.stage("patches"):
        with atomic_path(out / "changes.gpkg") as tmp:
            changes.to_file(tmp, layer="changes", driver="GPKG", engine="pyogrio")
        if rules is not None:
            enforcement_outputs(changes, pairs, rules, out, config)
    return len(changes), detector


def _replay_pair(pair, detector, config, prob_path: Path, crs, timer) -> list:
    import rasterio
    import rasterio.shutil
    from rasterio.transform import Affine

    from satcheck.align import PairReader, PairWindow, _lookup_clipped
    from satcheck.atomic import atomic_path
    from satcheck.batch.tile import PROB_NODATA, PROB_SCALE, reproject_pieces
    from satcheck.detect.cleanup import clean_mask
    from satcheck.detect.polygons import window_pieces
    from satcheck.masks import dn_scale, pair_masks
    from satcheck.provider_masks import provider_cloud
    from satcheck.radiometry import fit_normalisation
    from satcheck.windows import window_grid, with_halo

    a = pair.after
    px_area = a.pixel_area_m2
    halo = max(config.window.halo, detector.halo + config.cleanup.open_px + config.cleanup.close_px + 2)
    cores_ = window_grid(a.width, a.height, config.window.size, pair.window)
    grown = [with_halo(c, halo, a.width, a.height) for c in cores_]
    pieces = []
    # The reader's own set-up (shifts, statistics, masks) is not timed: each of its steps is redone and timed below.
    with PairReader(pair, config, 1) as reader, contextlib.ExitStack() as stack:
        with timer.stage("setup"):
            reader._open(stack, reader.shifts)  # the handles a run opens for its reader
        with timer.stage("coregister"):
            reader._measure_shifts()
        # PairReader._statistics, step by step: one decimated read, the masks, the normalisation fitted on it.
        win, side = pair.window, config.normalise.sample_px
        f = max(1.0, max(win.width, win.height) / side)
        shape = (max(1, int(round(win.height / f))), max(1, int(round(win.width / f))))
        with timer.stage("read"):
            before, after, b_ok, a_ok = reader._read_dn(win, shape)
        with timer.stage("normalise"):
            before, after = before.astype(np.float32), after.astype(np.float32)
            scale_b = dn_scale(reader._before_dtype, before[:, b_ok])
            scale_a = dn_scale(a.dtype, after[:, a_ok])
            rb, ra = before / scale_b, after / scale_a
        with timer.stage("masks"):
            lr_grid = (a.crs, a.transform * Affine.translation(win.col_off, win.row_off)
                       * Affine.scale(win.width / shape[1], win.height / shape[0]), shape)
            pv_b = provider_cloud(pair.befores, config.masks.cloud_mask, *lr_grid)
            pv_a = provider_cloud([a], config.masks.cloud_mask, *lr_grid)
            masked_lr = pair_masks(rb, b_ok, ra, a_ok, config.masks, reader.px_m * f, pv_b, pv_a)
        with timer.stage("normalise"):
            norm = fit_normalisation(rb, ra, b_ok & a_ok & ~masked_lr, config.normalise.method)
            norm.table(scale_b, reader._before_dtype, True)
            norm.table(scale_a, a.dtype, False)
        with timer.stage("setup"):
            detector.prepare(reader.sample if detector.needs_sample else None, reader.px_m)
            detector.imagery_warning()
        dst = None
        if config.output.probability_cog:
            with timer.stage("cog_write"):
                prob_path.parent.mkdir(parents=True, exist_ok=True)
                scratch = stack.enter_context(tempfile.TemporaryDirectory(dir=prob_path.parent)) + "/p.tif"
                dst = rasterio.open(scratch, "w", driver="GTiff", width=a.width, height=a.height, count=1,
                                    dtype="uint8", crs=a.crs, transform=a.transform, nodata=PROB_NODATA, tiled=True,
                                    blockxsize=512, blockysize=512, compress="zstd", zstd_level=1)
        pw0 = pair.window
        for core, (g, (rows, cols)) in zip(cores_, grown):
            with timer.stage("read"):
                before, after, b_ok, a_ok = reader._read_dn(g)
            if reader._per_window:
                with timer.stage("coregister"):
                    before, b_ok = reader._moved_in_window(before, after, b_ok, a_ok)
            with timer.stage("masks"):
                r = slice(int(g.row_off - pw0.row_off), int(g.row_off - pw0.row_off + g.height))
                c = slice(int(g.col_off - pw0.col_off), int(g.col_off - pw0.col_off + g.width))
                st = reader._stats
                masked = _lookup_clipped(st.masked_lr, (int(pw0.height), int(pw0.width)), r, c)
                valid = b_ok & a_ok & ~masked
            with timer.stage("normalise"):
                pw = PairWindow(g, reader._normalised(before, st.table_b, st.scale_b, True),
                                reader._normalised(after, st.table_a, st.scale_a, False), valid, masked)
            with timer.stage("model"):
                scores = detector.score(pw)
            with timer.stage("cleanup"):
                mask = (scores.probability >= detector.threshold) & pw.valid
                mask = clean_mask(mask, config.cleanup, px_area)[rows, cols]
            prob = scores.probability[rows, cols]
            with timer.stage("masks"):  # the run's counts of masked and nodata pixels
                _ = int(pw.masked[rows, cols].sum()), int((~pw.valid[rows, cols] & ~pw.masked[rows, cols]).sum())
            if dst is not None:
                with timer.stage("cog_write"):
                    ok = pw.valid[rows, cols]
                    q = np.where(ok, np.round(np.clip(prob, 0, 1) * PROB_SCALE), PROB_NODATA).astype(np.uint8)
                    dst.write(q[None], window=core)
            with timer.stage("polygons"):
                pieces.extend(window_pieces(mask, prob, scores.change_type[rows, cols],
                                            rasterio.windows.transform(core, a.transform), a.path.name))
        if dst is not None:
            with timer.stage("cog_write"):
                dst.close()
                with atomic_path(prob_path) as tmp:
                    rasterio.shutil.copy(scratch, tmp, driver="COG", compress="DEFLATE",
                                         overview_resampling="average", num_threads="ALL_CPUS")
    with timer.stage("polygons"):
        return reproject_pieces(pieces, a.crs, crs)


def stage_profile(before: str, after: str, work: str, device: str = "auto", repeats: int = 3) -> dict:
    """The figures of ``satcheck bench --stages`` for one pair already written (see the module's docstring)."""
    from satcheck.batch.pipeline import detect_changes
    from satcheck.config import RunConfig
    from satcheck.stage_timer import StageTimer, median_seconds

    before, after, work = Path(before), Path(after), Path(work)
    rules = write_bench_rules(work / "rules", after)
    cfg = RunConfig().with_overrides(**{"detect.device": device})
    threads = cores()
    floor_s, e2e_s, runs, changes, replayed = [], [], [], set(), set()
    # A first run, not counted: exports the model to ONNX where that was not done yet, loads libraries.
    detect_changes(before, after, work / "warm-up", cfg, rules=rules)
    shutil.rmtree(work / "warm-up", ignore_errors=True)
    detector_name = detector = None
    for i in range(repeats):
        s, pixels = read_floor([before, after], cfg.window.size, threads)
        floor_s.append(s)
        out = work / f"run_{i}"
        t = time.perf_counter()
        res = detect_changes(before, after, out, cfg, rules=rules)
        e2e_s.append(time.perf_counter() - t)
        changes.add(len(res.changes))
        detector_name = res.detector
        shutil.rmtree(out, ignore_errors=True)
        timer = StageTimer()
        out = work / f"replay_{i}"
        n, detector = replay(before, after, rules, out, cfg, timer)
        replayed.add(n)
        runs.append(timer.seconds)
        shutil.rmtree(out, ignore_errors=True)
    stages = median_seconds([{k: r.get(k, 0.0) for k in STAGES} for r in runs])
    mpx = pixels / 1e6
    e2e, floor, model = statistics.median(e2e_s), statistics.median(floor_s), stages["model"]
    total = sum(stages.values())
    predictor = getattr(detector, "predictor", None)  # None: the classical baseline, on the CPU
    engine, dev = (predictor.engine, predictor.device_type) if predictor is not None else (None, "cpu")
    return {
        "megapixels": round(mpx, 2),
        "repeats": repeats,
        "detector": detector_name,
        "engine": engine,
        "device": dev,
        "threads": threads,
        "read_floor_mpx_s": round(mpx / floor, 3),
        "end_to_end_mpx_s": round(mpx / e2e, 3),
        "model_mpx_s": round(mpx / model, 3) if model > 0 else None,
        "end_to_end_over_read_floor": round(floor / e2e, 4),
        "end_to_end_over_model": round(model / e2e, 4),
        "end_to_end_s": round(e2e, 3),
        "read_floor_s": round(floor, 3),
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "stages_sum_s": round(total, 3),
        "other_s": round(e2e - total, 3),
        "timings_s": {"end_to_end": [round(x, 3) for x in e2e_s], "read_floor": [round(x, 3) for x in floor_s],
                      "model": [round(r.get("model", 0.0), 3) for r in runs]},
        "changes": sorted(changes)[0] if len(changes) == 1 else sorted(changes),
        "changes_replay": sorted(replayed)[0] if len(replayed) == 1 else sorted(replayed),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }


def _stage_profile_process(before: str, after: str, work: str, device: str, repeats: int, q) -> None:
    try:
        q.put(stage_profile(before, after, work, device, repeats))
    except BaseException as exc:  # to the parent, which would otherwise wait for a result forever
        q.put(exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}"))
        raise


def _picklable(obj) -> bool:
    import pickle

    try:
        pickle.dumps(obj)
        return True
    except Exception:
        return False


def run_stage_bench(size: int = 4096, device: str = "auto", repeats: int = 3,
                    workdir: str | Path | None = None) -> dict:
    """Generate a size × size pair and measure its stage profile, in a fresh process (as :func:`run_bench`)."""
    from satcheck.batch.bench import _in_process, _stage_generate

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        b, a = _in_process(_stage_generate, tmp, size)
        r = _in_process(_stage_profile_process, b, a, tmp, device, repeats)
    if isinstance(r, BaseException):
        raise r
    return {"size": size} | r
