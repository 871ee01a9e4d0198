"""One run: two dates of tiles in, change polygons (and with rule layers, patches) out."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import geopandas as gpd

from satcheck import __version__
from satcheck.atomic import atomic_path, remove_leftovers
from satcheck.batch.enforce import enforcement_outputs, imagery_footprint, patch_summary
from satcheck.batch.excavation import drop_field_changes
from satcheck.batch.tile import ProbabilityWriter, detect_pair, reproject_pieces
from satcheck.config import RunConfig, dump_config
from satcheck.deliverable_crs import deliverable_crs
from satcheck.detect import get_detector
from satcheck.detect.polygons import Piece, merge_pieces
from satcheck.errors import OutputError
from satcheck.outfolder import begin, remove_stale, run_id, seal
from satcheck.pairs import Pair, pair_tiles, pair_warnings
from satcheck.progress import Progress, report
from satcheck.rules import check_attributes, check_fit
from satcheck.tiles import find_tiles, open_tile


@dataclass
class RunResult:
    out: Path
    changes: gpd.GeoDataFrame
    pairs: list[Pair]
    detector: str
    seconds: float
    pixels: int
    masked_share: float
    outputs: dict[str, str] = field(default_factory=dict)
    patches: gpd.GeoDataFrame | None = None
    rule_problems: list[str] = field(default_factory=list)
    shifts: dict[str, list[dict]] = field(default_factory=dict)  # per pair: TileResult.shift_report
    warnings: list[str] = field(default_factory=list)  # about the imagery and how it was read, once each
    config: RunConfig | None = None  # the run's configuration (which patch classes were exported)

    def summary(self) -> dict[str, object]:
        per_pair = [[m for m in map(_moved_px, report) if m is not None] for report in self.shifts.values()]
        moved = [max(ms) for ms in per_pair if ms]
        # A pair's window report is repeated on each of its earlier tiles whose chips disagreed: once per pair.
        windows = sum(max((s.get("windows", {}).get("moved", 0) for s in report), default=0)
                      for report in self.shifts.values())
        by_type = self.changes.groupby("change_type")["area_m2"].agg(["count", "sum"]) if len(self.changes) else None
        px_area = self.pairs[0].after.pixel_area_m2 if self.pairs else 0
        return {
            "satcheck": __version__,
            "detector": self.detector,
            "pairs": len(self.pairs),
            "megapixels": round(self.pixels / 1e6, 3),
            "area_km2": round(self.pixels * px_area / 1e6, 3),
            "masked_share": round(self.masked_share, 4),
            "changes": int(len(self.changes)),
            "changes_by_type": {} if by_type is None else {
                k: {"count": int(r["count"]), "area_m2": round(float(r["sum"]), 1)} for k, r in by_type.iterrows()},
            "change_area_m2": round(float(self.changes["area_m2"].sum()), 1) if len(self.changes) else 0.0,
            "seconds": round(self.seconds, 2),
            "mpx_per_s": round(self.pixels / 1e6 / max(self.seconds, 1e-9), 3),
            "coregistered": {"pairs": len(moved), "largest_shift_px": round(max(moved), 2) if moved else 0.0,
                             "windows_on_their_own": windows},
            "warnings": self.warnings,
            "outputs": self.outputs,
        } | ({"patches": patch_summary(self.patches, self.config), "rule_problems": self.rule_problems}
             if self.patches is not None else {})


def _moved_px(tile: dict) -> float | None:
    """How far one earlier tile of run.json's shift_px was moved: its agreed shift, else the largest shift of its
    windows measured on their own (None: not moved)."""
    if tile.get("agreed"):
        return math.hypot(tile["rows"], tile["cols"])
    return tile.get("windows", {}).get("largest_px") or None


def output_crs(pairs: list[Pair], config: RunConfig):
    """The CRS changes and patches are made and delivered in (``output.crs``; :mod:`satcheck.deliverable_crs`)."""
    return deliverable_crs([p.after for p in pairs], config.output.crs)


def check_rules(rules: str | Path | None, pairs: list[Pair], config: RunConfig) -> None:
    """Refuse rule layers that miss the imagery before any tile is read (:func:`satcheck.rules.check_fit`)."""
    if rules is not None:
        crs = output_crs(pairs, config)
        check_fit(rules, imagery_footprint(pairs, crs), crs, pairs[0].after.crs, config.rules.allow_partial)
        check_attributes(rules, config.rules)


def make_outdir(out: Path, option: str = "--out") -> None:
    """``option``: where the user named ``out`` (a run's --out, a batch manifest's out:), for the error."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder ({exc.strerror}); choose a writable {option}") \
            from None


def merge_changes(pieces: list[Piece], pairs: list[Pair], crs, config: RunConfig) -> gpd.GeoDataFrame:
    """The change polygons of a run: pieces merged across windows and tiles, the weak and the small dropped, and
    the changes typed excavation that look like fields or ponds (:mod:`satcheck.batch.excavation`)."""
    changes = merge_pieces(pieces, crs, config.cleanup.min_area_m2, config.cleanup.min_mean_score)
    return drop_field_changes(changes, pairs, config.cleanup)


def finish(pieces: list[Piece], pairs: list[Pair], out: Path, config: RunConfig, rules: str | Path | None,
           detector_name: str, t0: float, masked: int, extra: dict | None = None,
           shifts: dict[str, list[dict]] | None = None, warnings: list[str | None] = (),
           ledger: str | Path | None = None, crs=None, masks: dict[str, dict] | None = None,
           progress: Progress | None = None, pending: Sequence[ProbabilityWriter] = ()) -> RunResult:
    """Merge pieces across windows and tiles, then write changes, patches, exports, config and summary; the
    summary (run.json, with the run's id) last, then ``out`` is marked complete (:func:`satcheck.outfolder.seal`).

    ``shifts``: per pair name, the misregistration measured for each of its earlier tiles
    (:meth:`TileResult.shift_report`); ``warnings``: lines for the user about the imagery (:func:`pair_warnings`,
    each pair's :attr:`TileResult.warning`; None and repeats are dropped); ``ledger``: the ledger the patches
    will be imported into, whose ids of the period they keep (:mod:`satcheck.patch_ids`); ``crs``: that of
    ``pieces``, default :func:`output_crs` of ``pairs``; ``masks``: per pair name, its shares masked as cloud or
    shadow and without data (:meth:`TileResult.mask_report`); ``progress``: told of the stages from ``changes`` on
    (:mod:`satcheck.progress`); ``pending``: probability COGs still being written (``detect_pair(wait=False)``),
    made while the changes and patches are, and waited for before the summary.
    """
    crs = crs or output_crs(pairs, config)
    pixels = sum(p.pixels for p in pairs)
    report(progress, "changes", 0, len(pieces))
    changes = merge_changes(pieces, pairs, crs, config)
    outputs: dict[str, str] = {}
    if config.output.probability_cog:
        outputs["probability"] = str(out / "probability")
    changes_path = out / "changes.gpkg"
    with atomic_path(changes_path) as tmp:
        changes.to_file(tmp, layer="changes", driver="GPKG", engine="pyogrio")
    outputs["changes"] = str(changes_path)
    report(progress, "changes", len(pieces), len(pieces))
    patches, problems = None, []
    if rules is not None:
        patches, more, problems = enforcement_outputs(changes, pairs, rules, out, config, ledger, progress)
        outputs.update(more)
    for w in pending:
        w.wait()
    config_path = out / "config.yaml"
    with atomic_path(config_path) as tmp:
        tmp.write_text(dump_config(config), encoding="utf-8")
    outputs["config"] = str(config_path)
    remove_stale(out, outputs.values(), [p.name for p in pairs] if config.output.probability_cog else [])
    result = RunResult(out, changes, pairs, detector_name, time.perf_counter() - t0, pixels,
                       masked / max(pixels, 1), outputs, patches, problems, shifts or {},
                       list(dict.fromkeys(w for w in warnings if w)), config)
    summary_path = out / "run.json"
    outputs["summary"] = str(summary_path)
    rid = run_id(out)
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(result.summary() | (extra or {}) | ({"run_id": rid} if rid else {}) | {
            "tiles": [{"after": str(p.after.path), "before": [str(b.path) for b in p.befores]}
                      | ({"shift_px": shifts[p.name]} if shifts and p.name in shifts else {})
                      | ({"masked": masks[p.name]} if masks and p.name in masks else {}) for p in pairs],
        }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    seal(out)  # run.json last: from here on the folder is this run's alone (satcheck.outfolder)
    return result


@dataclass(frozen=True)
class RunSetup:
    """What a run has before its first window: the tiles paired, the rules checked, --out ready, the detector."""

    afters: list
    pairs: list[Pair]
    detector: object
    crs: object  # of the change polygons: metres, also for tiles in degrees


def set_up_run(before: str | Path, after: str | Path, out: Path, config: RunConfig,
               rules: str | Path | None) -> RunSetup:
    """Open and pair the tiles, refuse rule layers that do not fit, make ``out``, mark it incomplete until
    :func:`finish` (:mod:`satcheck.outfolder`) and clear what a run killed while writing into it left there (a run
    owns its --out while it runs, as a batch does its folder)."""
    befores = [open_tile(p, config.bands.before) for p in find_tiles(before)]
    afters = [open_tile(p, config.bands.after) for p in find_tiles(after)]
    pairs = pair_tiles(befores, afters)
    check_rules(rules, pairs, config)
    make_outdir(out)
    begin(out)  # before anything in out is replaced: a run that fails from here on leaves out marked incomplete
    remove_leftovers([out, out / "probability", out / "chips"])
    return RunSetup(afters, pairs, get_detector(config.detect, pairs[0].after.count), output_crs(pairs, config))


def detect_changes(before: str | Path, after: str | Path, out: str | Path, config: RunConfig,
                   progress: Progress | None = None, rules: str | Path | None = None) -> RunResult:
    """Detect change between two dates of tiles and write the results under ``out``; ``progress`` is told of every
    stage (:mod:`satcheck.progress`)."""
    t0 = time.perf_counter()
    out = Path(out)
    setup = set_up_run(before, after, out, config, rules)
    afters, pairs, detector, crs = setup.afters, setup.pairs, setup.detector, setup.crs
    pieces: list[Piece] = []
    shifts: dict[str, list[dict]] = {}
    masks: dict[str, dict] = {}  # per pair: TileResult.mask_report
    warnings: list[str | None] = pair_warnings(pairs, afters)
    masked = done = 0
    total = sum(p.pixels for p in pairs)
    # Each pair's probability COG is made in a thread of its own while the next pair is scored, the last one while
    # the changes and patches are made: finish waits for it before the summary.
    cogs: list[ProbabilityWriter] = []
    report(progress, "detection", 0, total)
    try:
        for pair in pairs:
            def tick(n: int, base: int = done) -> None:
                report(progress, "detection", base + n, total)

            r = detect_pair(pair, detector, config, out / "probability" / f"{pair.name}.tif", tick, wait=False)
            earlier, cogs = cogs, [r.probability] if r.probability is not None else []
            for w in earlier:  # the previous pair's, made while this one was scored: one in the background at most
                w.wait()
            done += pair.pixels
            masked += r.masked
            shifts[pair.name] = r.shift_report(pair)
            warnings.extend((r.warning, r.mask_warning))
            masks[pair.name] = r.mask_report()
            pieces.extend(reproject_pieces(r.pieces, pair.after.crs, crs))
        report(progress, "detection", total, total)  # also a pair whose windows lie outside the earlier imagery
        return finish(pieces, pairs, out, config, rules, detector.name, t0, masked,
                      {"before": str(before), "after": str(after)}, shifts, warnings, masks=masks, progress=progress,
                      pending=cogs)
    finally:
        for w in cogs:  # after an error: the threads stopped and their scratch copies gone (else a no-op)
            w.close()

