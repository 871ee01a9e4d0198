"""The satcheck command line: a thin layer over the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from satcheck import __version__
from satcheck.cli_common import err, fail, out, plural
from satcheck.cli_model import evaluate_cmd, train
from satcheck.cli_progress import stage_progress
from satcheck.errors import SatcheckError

app = typer.Typer(
    name="satcheck",
    help="Satellite-image land enforcement: find new construction on farmland and illegal mining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"satcheck {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Satellite-image land enforcement."""


@app.command()
def run(
    before: Path = typer.Argument(..., help="Earlier date: a GeoTIFF or a folder of tiles."),
    after: Path = typer.Argument(..., help="Later date: a GeoTIFF or a folder of tiles."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    rules: Optional[Path] = typer.Option(None, "--rules", help="Folder of rule layers (farmland, mining_permits, ...)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run configuration (YAML)."),
    detector: Optional[str] = typer.Option(None, "--detector", help="auto | model | cva"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
    allow_partial_rules: bool = typer.Option(
        False, "--allow-partial-rules", help="Rule layers that miss the imagery (they cover another part of the "
        "jurisdiction) are warnings, not errors."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Detect change between two dates and write change polygons (and patches with --rules)."""
    from satcheck.batch.pipeline import detect_changes
    from satcheck.config import load_config

    if device not in (None, "auto", "cpu", "cuda"):
        raise typer.BadParameter(f"'{device}' is not one of auto, cpu, cuda", param_hint="--device")
    if detector not in (None, "auto", "model", "cva"):
        raise typer.BadParameter(f"'{detector}' is not one of auto, model, cva", param_hint="--detector")
    try:
        cfg = load_config(config).with_overrides(**{"detect.detector": detector, "detect.device": device,
                                                     "rules.allow_partial": allow_partial_rules or None})
        if as_json:
            result = detect_changes(before, after, out_dir, cfg, rules=rules)
        else:
            with stage_progress(err) as progress:
                result = detect_changes(before, after, out_dir, cfg, progress=progress, rules=rules)
    except SatcheckError as exc:
        raise fail(exc) from None
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    _print_summary(summary)


def _print_summary(s: dict) -> None:
    t = Table(title="satcheck run", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("detector", str(s["detector"]))
    t.add_row("tile pairs", str(s["pairs"]))
    t.add_row("area", f"{s['area_km2']} km² ({s['megapixels']} Mpx, {s['masked_share'] * 100:.1f} % cloud/shadow)")
    co = s.get("coregistered") or {}
    windows = co.get("windows_on_their_own", 0)
    t.add_row("co-registered", f"{co.get('pairs', 0)} of {s['pairs']} pairs, shifts up to "
                               f"{co.get('largest_shift_px', 0):.1f} px"
                               + (f" ({plural(windows, 'window')} moved on their own)" if windows else ""))
    t.add_row("changes", f"{plural(s['changes'], 'polygon')}, {s['change_area_m2']:.0f} m²")
    for k, v in s["changes_by_type"].items():
        t.add_row(f"  {k}", f"{plural(v['count'], 'polygon')}, {v['area_m2']:.0f} m²")
    if "patches" in s:
        p = s["patches"]
        t.add_row("patches", _patch_count(p))
        for k, v in p["by_class"].items():
            t.add_row(f"  {k}", f"{plural(v['count'], 'patch')}, {v['area_m2']:.0f} m² ({v['area_mu']:.2f} mu)"
                      + ("" if v.get("exported", True) else ", patches.gpkg only"))
    t.add_row("time", f"{s['seconds']} s ({s['mpx_per_s']} Mpx/s)")
    out.print(t)
    _print_warnings([*s["warnings"], *s.get("rule_problems", [])])
    width = max(map(len, s["outputs"]), default=0)
    for k, v in s["outputs"].items():
        out.print(f"  {k:<{width}} {v}")


@app.command()
def inspect(
    tile: Path = typer.Argument(..., help="A GeoTIFF tile."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Describe a tile: CRS, bounds, resolution, size, bands, nodata share, date."""
    from satcheck.tiles import inspect_tile

    try:
        info = inspect_tile(tile)
    except SatcheckError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    t = Table(title=str(tile), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in info.items():
        if k not in ("path", "warnings"):
            t.add_row(k, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
    out.print(t)
    _print_warnings(info["warnings"])


app.command()(train)
app.command("eval")(evaluate_cmd)


@app.command()
def bench(
    size: int = typer.Option(4096, "--size", help="Side of the generated pair in pixels."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also time the classical baseline."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    stages: bool = typer.Option(False, "--stages", help="Instead: the read floor, seconds per stage and end to "
                                                        "end of one run with rule layers, medians of 3 timings."),
) -> None:
    """Measure model, end-to-end and baseline throughput (Mpx/s) and peak memory on a generated pair."""
    from satcheck.batch.bench import run_bench
    from satcheck.batch.bench_stages import run_stage_bench

    if size < 256:
        raise typer.BadParameter("must be at least 256", param_hint="--size")
    try:
        r = run_stage_bench(size, device) if stages else run_bench(size, device, baseline=baseline)
    except SatcheckError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(r))
        return
    if stages:
        from satcheck.cli_bench import print_stage_profile

        return print_stage_profile(r)
    t = Table(title=f"satcheck bench: {size}×{size} pair ({r['engine']} on {r['device']})", show_header=False,
              title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("model alone", f"{r['model_mpx_s']} Mpx/s ({r['engine']})")
    for k, v in r["model_mpx_s_by_engine"].items():
        t.add_row(f"  engine {k}", f"{v} Mpx/s")
    t.add_row("satcheck run, end to end", f"{r['end_to_end_mpx_s']} Mpx/s")
    t.add_row("classical baseline (cva), end to end", f"{r['baseline_mpx_s']} Mpx/s")
    t.add_row("peak resident memory", f"{r['peak_rss_mb']} MB (end to end {r['peak_rss_mb_end_to_end']} MB, "
                                      f"baseline {r['peak_rss_mb_baseline']} MB)")
    out.print(t)


@app.command()
def export(
    patches_file: Path = typer.Argument(..., help="patches.gpkg written by 'satcheck run --rules'."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    fmt: list[str] = typer.Option(["all"], "--format", "-f", help="gpkg, geojson, kml, csv, shp or all (repeatable)."),
    cls: list[str] = typer.Option([], "--class", help="Only these classes (repeatable)."),
    admin: list[str] = typer.Option([], "--admin", help="Only admin codes starting with this (repeatable)."),
    min_area: Optional[float] = typer.Option(None, "--min-area", help="Only patches of at least this many m²."),
    lang: str = typer.Option("en", "--lang", help="en or zh: headers and class names of CSV and KML."),
    stem: str = typer.Option("patches", "--name", help="File name without extension."),
) -> None:
    """Re-export a subset of patches (by class, admin code, minimum area) in other formats."""
    from satcheck.export import FORMATS, read_patches, select, write_all
    from satcheck.patches import CLASSES

    formats = FORMATS if "all" in fmt else tuple(fmt)
    for f in formats:
        if f not in FORMATS:
            raise typer.BadParameter(f"'{f}' is not one of {', '.join(FORMATS)}, all", param_hint="--format")
    for c in cls:
        if c not in CLASSES:
            raise typer.BadParameter(f"'{c}' is not one of {', '.join(CLASSES)}", param_hint="--class")
    if lang not in ("en", "zh"):
        raise typer.BadParameter("must be en or zh", param_hint="--lang")
    if min_area is not None and min_area < 0:
        raise typer.BadParameter(f"{min_area:g} is below 0; pass an area in m², or leave it out", param_hint="--min-area")
    if out_dir.resolve() == patches_file.resolve().parent and stem == patches_file.stem:
        # The subset would replace the file it is read from (and the run's own field files beside it).
        raise typer.BadParameter(f"{out_dir} holds {patches_file.name}, which {stem}.* would replace; choose another "
                                 "--out or --name", param_hint="--out")
    try:
        chosen = select(read_patches(patches_file), cls or None, admin or None, min_area)
        written = write_all(chosen, out_dir, formats, lang, stem)
    except SatcheckError as exc:
        raise fail(exc) from None
    out.print(plural(len(chosen), "patch"))
    for k, v in written.items():
        out.print(f"  {k:<8} {v}")


@app.command()
def score(
    result: Path = typer.Argument(..., help="changes.gpkg or patches.gpkg of a run."),
    truth: Path = typer.Argument(..., help="Vector file of true changes (e.g. sample_tiles/truth/changes.gpkg)."),
    min_area: float = typer.Option(400.0, "--min-area", help="Only changes of at least this many m² count, both sides."),
    iou: float = typer.Option(0.5, "--iou", help="Overlap (IoU) at which a true change counts as found."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Object recall and false polygons per km² of a run against known changes."""
    from satcheck.scoring import read_vector, score_objects

    if not 0 < iou <= 1:
        raise typer.BadParameter(f"{iou:g} is not an overlap; pass a share above 0 and at most 1, e.g. 0.5",
                                 param_hint="--iou")
    if min_area < 0:
        raise typer.BadParameter(f"{min_area:g} is below 0; pass an area in m²", param_hint="--min-area")
    try:
        pred = read_vector(result, "run's changes or patches")
        true = read_vector(truth, "true changes")
        if len(pred) and len(true):
            true = true.to_crs(pred.crs)
        area = _run_area(result.parent / "run.json", true)
    except SatcheckError as exc:
        raise fail(exc) from None
    s = score_objects(pred, true, area, min_truth_m2=min_area, min_pred_m2=min_area, iou=iou)
    # No true change of that size: the recall is undefined (null in JSON, not NaN, which JSON does not have).
    d = {"truths": s.truths, "found": s.found, "recall": s.recall if s.truths else None, "false_polygons": s.false_objects,
         "false_per_km2": round(s.false_per_km2, 3), "area_km2": area, "type_correct": s.type_correct}
    if as_json:
        typer.echo(json.dumps(d))
        return
    recall = f"{s.recall:.2f}" if s.truths else "n/a"
    out.print(f"recall {s.found}/{s.truths} = {recall} (IoU ≥ {iou}, ≥ {min_area:.0f} m²); "
              f"false polygons {s.false_objects} = {s.false_per_km2:.2f} per km² over {area} km²"
              + (f"; change type right for {s.type_correct:.0%}" if s.type_correct is not None else ""))


def _run_area(run_json: Path, true) -> float:
    """The area a run covered (km², from its run.json), else the truth's bounds' sum as before."""
    from satcheck.scoring import ScoreInputError

    if not run_json.exists():
        return float(true.total_bounds[2:].sum())
    try:
        return float(json.loads(run_json.read_text(encoding="utf-8"))["area_km2"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScoreInputError(f"{run_json}: not a run summary ({type(exc).__name__}: {str(exc)[:120]}); remove it or "
                            "write the run again") from None


@app.command()
def batch(
    manifest: Path = typer.Argument(..., help="Batch manifest (YAML); see configs/batch.example.yaml."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Local worker processes (default: all cores)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786."),
    force: bool = typer.Option(False, "--force", help="Redo every tile, even those already done."),
    allow_partial_rules: bool = typer.Option(
        False, "--allow-partial-rules", help="Rule layers that miss the imagery (they cover another part of the "
        "jurisdiction) are warnings, not errors."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
) -> None:
    """Run a monthly batch: detection, patches, exports, sheets and ledger import for every tile."""
    from satcheck.batch.run import run_batch

    if workers is not None and workers < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--workers")
    try:
        if as_json:
            res = run_batch(manifest, workers, scheduler, force, allow_partial_rules=allow_partial_rules)
        else:
            with stage_progress(err, transient=False) as progress:
                res = run_batch(manifest, workers, scheduler, force, progress=progress,
                                allow_partial_rules=allow_partial_rules, on_tile=progress.tile)
    except SatcheckError as exc:
        raise fail(exc) from None
    s = res.summary()
    if as_json:
        typer.echo(json.dumps(s, ensure_ascii=False))
    else:
        _print_batch(s)
    if res.failed:
        raise typer.Exit(code=3)


def _print_batch(s: dict) -> None:
    t = Table(title=f"satcheck batch {s['period']}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    if s["already_complete"]:
        t.add_row("state", "already complete: nothing to do (--force redoes it)")
    t.add_row("tiles", f"{s['tiles']} ({s['processed']} processed now, {s['skipped']} already done, "
                       f"{len(s['failed'])} failed) on {s['workers']}")
    for name, why in s["failed"].items():
        t.add_row(f"  failed {name}", why)
    if s["area_km2"] is not None:
        t.add_row("area covered", f"{s['area_km2']} km²")
        t.add_row("changes", str(s["changes"]))
    if s.get("patches"):
        p = s["patches"]
        t.add_row("patches", _patch_count(p))
        for k, v in p["by_class"].items():
            t.add_row(f"  {k}", f"{plural(v['count'], 'patch')}, {v['area_m2']:.0f} m² ({v['area_mu']:.2f} mu)")
    if s.get("ledger"):
        lg = s["ledger"]
        t.add_row("ledger", f"{lg['path']}: {lg['added']} new, {lg['rereview']} back for review, {lg['linked']} linked"
                  + (f", {lg['updated']} not yet reviewed brought up to date" if lg.get("updated") else ""))
    t.add_row("time", f"{s['seconds']} s ({s['mpx_per_s']} Mpx/s over the tiles processed now)")
    t.add_row("outputs", s["out"])
    t.add_row("log", s["log"])
    out.print(t)
    _print_warnings([*s["warnings"], *s.get("rule_problems", [])])


def _patch_count(p: dict) -> str:
    """How many patches the field files hold, and how many more only patches.gpkg (approved, other_change)."""
    kept = p["count"] - p["exported"]
    return f"{p['exported']} in the field files" + (f", {kept} more in patches.gpkg only" if kept else "")


def _print_warnings(lines: list[str]) -> None:
    for line in lines:
        err.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)


def main() -> None:
    app()


def _register_subcommands() -> None:
    from satcheck.cli_review import review_app

    app.add_typer(review_app, name="review")


_register_subcommands()


if __name__ == "__main__":
    main()
