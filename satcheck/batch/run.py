"""Monthly batches: every tile of a jurisdiction, resumable, in parallel or on a Dask cluster.

Each tile pair is an independent task whose results (change pieces and a
probability COG) land in ``OUT/tiles/<name>/`` under temporary names; a
``done.json`` marker is renamed into place last.  A rerun skips tiles whose
marker matches the tile's inputs and configuration, so after ``kill -9`` at
any point the same command finishes the job without redoing or
duplicating anything; the output folder is marked incomplete (:mod:`satcheck.outfolder`) from the first tile
redone until the merge is written.  Merging across tile edges, patches, exports,
sheets and the ledger import run once all tiles are done; they are cheap
and idempotent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from rasterio.windows import Window

from satcheck.atomic import atomic_path, remove_leftovers
from satcheck.batch.manifest import Manifest, load_manifest, resolve_tiles
from satcheck.batch.pipeline import RunResult, check_rules, finish, make_outdir, output_crs
from satcheck.batch.tile import detect_pair, read_pieces, write_pieces
from satcheck.batch.workers import JsonLog, dask_worker_threads, die_with_parent
from satcheck.config import RunConfig
from satcheck.errors import SatcheckError
from satcheck.outfolder import begin, is_complete
from satcheck.pairs import Pair, pair_tiles, pair_warnings, shared_stems
from satcheck.progress import Progress, report
from satcheck.provider_masks import provider_files
from satcheck.tiles import TileInfo, open_tile

SCHEDULER_TIMEOUT_S = 20.0  # how long --scheduler waits for the Dask scheduler to answer


class SchedulerError(SatcheckError, ConnectionError):
    """The Dask scheduler of --scheduler cannot be reached, or went away."""


# Told of each tile as it is done or fails: {"tile", "done", "failed", "todo", "pixels", "seconds", "error"};
# done + failed counts the tiles settled so far, never more than todo.
TileProgress = Callable[[dict], None]


@dataclass(frozen=True)
class TileTask:
    """Everything a worker needs for one tile pair, as plain data (it travels to other processes)."""

    name: str
    after: str
    befores: tuple[str, ...]
    window: tuple[int, int, int, int]
    config_json: str
    out: str
    fingerprint: str
    bands: int  # image bands both dates are read with (fewer than a tile has where the dates differ)


@dataclass
class BatchResult:
    manifest: Manifest
    tiles: int
    done_now: int
    skipped: int
    failed: dict[str, str]
    run: RunResult | None
    seconds: float
    already_complete: bool = False
    ledger: dict | None = None
    log: str = ""
    workers: str = ""
    pixels_now: int = 0
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        s = self.run.summary() if self.run else {}
        return {
            "period": self.manifest.period, "tiles": self.tiles, "processed": self.done_now, "skipped": self.skipped,
            "failed": self.failed, "already_complete": self.already_complete, "workers": self.workers,
            "seconds": round(self.seconds, 2),
            "mpx_per_s": round(self.pixels_now / 1e6 / max(self.seconds, 1e-9), 3),
            "area_km2": s.get("area_km2"), "changes": s.get("changes"), "patches": s.get("patches"),
            "ledger": self.ledger, "log": self.log, "out": self.manifest.out, "warnings": s.get("warnings", []),
            "rule_problems": s.get("rule_problems", []),
        }


def _fingerprint(after: TileInfo, befores: tuple[TileInfo, ...], config_json: str, cloud_mask: str | None = None) -> str:
    h = hashlib.sha256(config_json.encode())
    for t in (after, *befores):
        # A provider cloud mask delivered (or replaced) later redoes its tile.
        for f in [t.path, *(provider_files(t.path, cloud_mask) if cloud_mask else [])]:
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def tile_dir(out: str | Path, name: str) -> Path:
    return Path(out) / "tiles" / name


def is_done(task: TileTask) -> bool:
    marker = tile_dir(task.out, task.name) / "done.json"
    try:
        return json.loads(marker.read_text())["fingerprint"] == task.fingerprint
    except (OSError, ValueError, KeyError):
        return False


_DETECTORS: dict[str, object] = {}


def run_tile(task: TileTask) -> dict:
    """Process one tile pair (in any process or Dask worker); never raises."""
    t0 = time.perf_counter()
    d = tile_dir(task.out, task.name)
    try:
        from satcheck.detect import get_detector

        cfg = RunConfig.model_validate_json(task.config_json)
        if cfg.detect.model.threads is None:
            cfg = cfg.with_overrides(**{"detect.model.threads": dask_worker_threads()})
        pair = Pair(open_tile(task.after, cfg.bands.after).first_bands(task.bands),
                    tuple(open_tile(b, cfg.bands.before).first_bands(task.bands) for b in task.befores),
                    Window(*task.window), label=task.name)
        key = f"{task.config_json}|{pair.after.count}"
        if key not in _DETECTORS:  # building the model (and its ONNX session) once per process
            _DETECTORS[key] = get_detector(cfg.detect, pair.after.count)
        det = _DETECTORS[key]
        d.mkdir(parents=True, exist_ok=True)
        # The tile's files are replaced from here on: until its new marker, it is not done (a resume redoes it).
        (d / "done.json").unlink(missing_ok=True)
        # Leftovers of a run killed while it worked on this tile (its probability scratch copy: the writer's).
        remove_leftovers([d], ".")
        r = detect_pair(pair, det, cfg, Path(task.out) / "probability" / f"{task.name}.tif")
        write_pieces(r.pieces, pair.after.crs, d / "pieces.gpkg")
        info = {"name": task.name, "fingerprint": task.fingerprint, "pixels": r.pixels, "masked": r.masked,
                "masks": r.mask_report(), "mask_warning": r.mask_warning,
                "pieces": len(r.pieces), "seconds": round(time.perf_counter() - t0, 3), "detector": det.name,
                "crs": pair.after.crs.to_string(), "shift_px": r.shift_report(pair), "warning": r.warning}
        with atomic_path(d / "done.json") as tmp:
            tmp.write_text(json.dumps(info))
        (d / "failed.json").unlink(missing_ok=True)
        return info
    except Exception as exc:  # a corrupt tile must not stop the batch
        msg = str(exc).splitlines()[0] if isinstance(exc, SatcheckError) else f"{type(exc).__name__}: {exc}"
        try:
            d.mkdir(parents=True, exist_ok=True)
            with atomic_path(d / "failed.json") as tmp:
                tmp.write_text(json.dumps({"name": task.name, "error": msg, "trace": traceback.format_exc()[-4000:]}))
        except OSError:
            pass
        return {"name": task.name, "error": msg, "seconds": round(time.perf_counter() - t0, 3)}


def _open_all(paths: list[Path], order: list[int] | None, unopened: dict[Path, str]) -> list[TileInfo]:
    out = []
    for p in paths:
        try:
            out.append(open_tile(p, order))
        except SatcheckError as exc:
            unopened[p] = str(exc)
    return out


def _unopened_names(unopened: dict[Path, str], paths: list[Path]) -> dict[str, str]:
    """Files that did not open, by their name without suffix (as tiles are named in a batch's report), or by
    their path where another file of the batch has that name too (the same name in both dates' folders, or in two
    folders of one date), so that no failure hides another or a done tile of that name."""
    shared = shared_stems(paths)
    return {(str(p) if p.stem in shared else p.stem): why for p, why in unopened.items()}


def run_batch(manifest_path: str | Path, workers: int | None = None, scheduler: str | None = None,
              force: bool = False, progress: Progress | None = None, allow_partial_rules: bool = False,
              on_tile: TileProgress | None = None) -> BatchResult:
    """Run the batch of a manifest; ``allow_partial_rules``: rule layers that miss the imagery are warnings.

    ``progress`` is told of every stage (:mod:`satcheck.progress`: tiles, changes, patches, chips, sheets, import),
    ``on_tile`` of each tile as it is done or fails (:data:`TileProgress`).
    """
    t0 = time.perf_counter()
    m, cfg = load_manifest(manifest_path)
    if allow_partial_rules:
        cfg = cfg.with_overrides(**{"rules.allow_partial": True})
    out = Path(m.out)
    make_outdir(out, f"'out:' in {manifest_path}")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log = JsonLog(out / "logs" / f"batch-{stamp}-{os.getpid()}.jsonl")
    try:
        return _run(m, cfg, out, workers, scheduler, force, progress, on_tile, log, t0)
    finally:
        log.close()


def _run(m: Manifest, cfg: RunConfig, out: Path, workers: int | None, scheduler: str | None, force: bool,
         progress: Progress | None, on_tile: TileProgress | None, log: JsonLog, t0: float) -> BatchResult:
    unopened: dict[Path, str] = {}
    before_paths, after_paths = resolve_tiles(m.before), resolve_tiles(m.after)
    befores = _open_all(before_paths, cfg.bands.before, unopened)
    afters = _open_all(after_paths, cfg.bands.after, unopened)
    failed = _unopened_names(unopened, before_paths + after_paths)
    for name, why in failed.items():
        log("tile_failed", tile=name, error=why)
    pairs = pair_tiles(befores, afters)
    check_rules(m.rules, pairs, cfg)  # before hours of detection, not after
    n_workers = 1 if scheduler else max(1, workers or os.cpu_count() or 1)
    if cfg.detect.model.threads is None and not scheduler:
        cfg = cfg.with_overrides(**{"detect.model.threads": max(1, (os.cpu_count() or 1) // n_workers)})
    # Threads do not change results, so they stay out of the fingerprint: 1 and N workers share tiles; nor do the
    # settings of what is made from the merged changes (rules, patches, report, review, output CRS): a change
    # there redoes the merge and the patches (batch_fp), not the tiles.
    same_threads = cfg.with_overrides(**{"detect.model.threads": 1, "window.readers": 1})
    fp_cfg = _tile_settings(same_threads)
    tasks = [TileTask(p.name, str(p.after.path), tuple(str(b.path) for b in p.befores),
                      (int(p.window.col_off), int(p.window.row_off), int(p.window.width), int(p.window.height)),
                      cfg.model_dump_json(), str(out), _fingerprint(p.after, p.befores, fp_cfg, cfg.masks.cloud_mask),
                      p.after.count)
             for p in pairs]
    batch_fp = hashlib.sha256("|".join(t.fingerprint for t in tasks).encode() + (m.rules or "").encode()
                              + (m.ledger or "").encode() + same_threads.model_dump_json().encode()).hexdigest()[:20]
    state_path = out / "batch.json"
    if not force and state_path.exists() and not failed:
        state = _read_state(state_path, log)
        if (state.get("state") == "complete" and state.get("fingerprint") == batch_fp and is_complete(out)
                and all(is_done(t) for t in tasks)):
            log("already_complete", fingerprint=batch_fp)
            return BatchResult(m, len(tasks), 0, len(tasks), {}, None, time.perf_counter() - t0, already_complete=True,
                               log=str(log.path), workers=_describe(n_workers, scheduler))
    todo = [t for t in tasks if force or not is_done(t)]
    begin(out)  # until finish: a batch that stops before its merge is done leaves the folder marked incomplete
    # Merge outputs and probability scratch copies of a run killed while it wrote them (one batch per output
    # folder at a time).
    remove_leftovers([out, out / "chips", out / "probability"], ".")
    log("batch_start", period=m.period, tiles=len(tasks), todo=len(todo), workers=n_workers, scheduler=scheduler)
    pixels_now = 0
    done_now = 0
    # The counter counts every file that failed to open as well as the tiles to do, each once, so done + failed
    # never passes the total ("[4/3]"); those that failed to open come first.
    unopened = len(failed)
    total = len(todo) + unopened
    # Tiles: those that failed to open too, so that processed + already done + failed add up to it.
    n_tiles = len(tasks) + unopened
    n_failed = 0
    report(progress, "tiles", 0, total)

    def settled(name: str, error: str | None) -> None:
        if on_tile:
            on_tile({"tile": name, "done": done_now, "todo": total, "failed": n_failed, "pixels": pixels_now,
                     "seconds": time.perf_counter() - t0, "error": error})
        report(progress, "tiles", done_now + n_failed, total)

    for name, why in list(failed.items()):
        n_failed += 1
        settled(name, why)
    failed_tasks: set[str] = set()  # pairs whose detection failed; a file that did not open may share a pair's name
    for info in _execute(todo, n_workers, scheduler):
        if "error" in info:
            failed[info["name"]] = info["error"]
            failed_tasks.add(info["name"])
            n_failed += 1
            log("tile_failed", tile=info["name"], error=info["error"])
        else:
            done_now += 1
            pixels_now += info["pixels"]
            log("tile_done", tile=info["name"], pixels=info["pixels"], pieces=info["pieces"], seconds=info["seconds"])
        settled(info["name"], info.get("error"))
    report(progress, "tiles", total, total)
    ok_pairs = [p for p in pairs if p.name not in failed_tasks and is_done(_task_of(tasks, p.name))]
    if not ok_pairs:
        log("batch_end", state="failed", failed=failed)
        return BatchResult(m, n_tiles, done_now, len(tasks) - len(todo), failed, None,
                           time.perf_counter() - t0, log=str(log.path), workers=_describe(n_workers, scheduler),
                           pixels_now=pixels_now)
    crs = output_crs(pairs, cfg)  # of every tile that opened, as in a complete batch, not only those done
    pieces, masked, shifts, warnings, masks = [], 0, {}, pair_warnings(ok_pairs, afters), {}
    for p in ok_pairs:
        d = tile_dir(out, p.name)
        info = json.loads((d / "done.json").read_text())
        masked += info["masked"]
        if isinstance(info.get("shift_px"), list):  # tiles done before shifts were measured have none
            shifts[p.name] = info["shift_px"]
        warnings.extend((info.get("warning"), info.get("mask_warning")))
        if "masks" in info:  # tiles done before masked shares were reported have none
            masks[p.name] = info["masks"]
        pieces.extend(read_pieces(d / "pieces.gpkg", crs))  # in the tile's CRS on disk, read into crs
    detector = json.loads((tile_dir(out, ok_pairs[0].name) / "done.json").read_text()).get("detector", "")
    run = finish(pieces, ok_pairs, out, cfg, m.rules, detector, t0, masked, {"period": m.period}, shifts, warnings,
                 m.ledger, crs, masks, progress)
    ledger_info = None
    if m.ledger and run.patches is not None:
        from satcheck.batch.enforce import for_the_field
        from satcheck.review.ledger import Ledger

        n = len(for_the_field(run.patches, cfg))  # what the field files hold goes to review
        report(progress, "import", 0, n)
        with Ledger(m.ledger, cfg.review) as lg:
            r = lg.import_patches(out / "patches.gpkg", reviewer="batch")
        report(progress, "import", n, n)
        ledger_info = {"path": m.ledger, "added": r.added, "rereview": r.rereview, "linked": r.linked,
                       "skipped": r.skipped, "updated": r.updated}
        log("ledger_import", **ledger_info)
    state = {"state": "complete" if not failed else "partial", "fingerprint": batch_fp, "period": m.period,
             "tiles": n_tiles, "failed": failed,
             "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    with atomic_path(state_path) as tmp:
        tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False))
    log("batch_end", state=state["state"], failed=failed, seconds=round(time.perf_counter() - t0, 2))
    return BatchResult(m, n_tiles, done_now, len(tasks) - len(todo), failed, run, time.perf_counter() - t0,
                       ledger=ledger_info, log=str(log.path), workers=_describe(n_workers, scheduler),
                       pixels_now=pixels_now)


def _read_state(path: Path, log: JsonLog) -> dict:
    """batch.json, or {} when it cannot be read (damaged, cut short by a full disk).

    It only says that the merge of a batch finished; every tile's own ``done.json`` says what is done. A damaged
    one is therefore rebuilt from what is on disk: the tiles done are skipped, the merge (cheap, idempotent) runs
    again and writes batch.json anew, so no rerun fails on it and nobody has to delete it by hand.
    """
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log("state_unreadable", path=str(path), error=f"{type(exc).__name__}: {exc}", action="rebuilt from the tiles")
        return {}
    if not isinstance(state, dict):
        log("state_unreadable", path=str(path), error=f"a JSON {type(state).__name__}", action="rebuilt from the tiles")
        return {}
    return state


def _tile_settings(cfg: RunConfig) -> str:
    """The part of the configuration a tile's results depend on, as JSON (its fingerprint)."""
    data = cfg.model_dump(mode="json")
    for section in ("rules", "patches", "report", "review"):
        data.pop(section)
    data["output"].pop("crs")
    return json.dumps(data, sort_keys=True)


def _task_of(tasks: list[TileTask], name: str) -> TileTask:
    return next(t for t in tasks if t.name == name)


def _describe(n: int, scheduler: str | None) -> str:
    return f"dask {scheduler}" if scheduler else f"{n} process{'es' if n > 1 else ''}"


def _execute(tasks: list[TileTask], workers: int, scheduler: str | None):
    if not tasks:
        return
    if scheduler:
        yield from _execute_dask(tasks, scheduler)
        return
    if workers == 1:
        for t in tasks:
            yield run_tile(t)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futs = [pool.submit(run_tile, t) for t in tasks]
        for f in as_completed(futs):
            yield f.result()


def _execute_dask(tasks: list[TileTask], scheduler: str):
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise SchedulerError(f"--scheduler {scheduler}: Dask's 'distributed' is not installed; pip install distributed, "
                             "or leave out --scheduler to run on local processes") from None
    try:
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SchedulerError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({why}); start it (dask "
                             "scheduler), check the address, or leave out --scheduler to run on local processes") from None
    with client:
        futures = client.map(run_tile, tasks, pure=False, key=[f"satcheck-tile-{t.name}-{t.fingerprint}" for t in tasks])
        try:
            for fut in dask_completed(futures):
                yield fut.result()
        except (OSError, TimeoutError) as exc:  # the scheduler went away mid-batch (CommClosedError is an OSError)
            raise SchedulerError(f"--scheduler {scheduler}: lost the Dask scheduler ({type(exc).__name__}: {exc}); "
                                 "run the batch again: the tiles already done are kept") from None
