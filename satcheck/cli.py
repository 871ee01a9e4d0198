"""The satcheck command line: a thin layer over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from satcheck import __version__
from satcheck.errors import SatcheckError

app = typer.Typer(
    name="satcheck",
    help="Satellite-image land enforcement: find new construction on farmland and illegal mining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _fail(exc: SatcheckError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


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
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Detect change between two dates and write change polygons (and patches with --rules)."""
    from satcheck.batch.pipeline import detect_changes
    from satcheck.config import load_config

    if device not in (None, "auto", "cpu", "cuda"):
        raise typer.BadParameter(f"'{device}' is not one of auto, cpu, cuda", param_hint="--device")
    try:
        cfg = load_config(config).with_overrides(**{"detect.detector": detector, "detect.device": device})
        if as_json or not sys.stderr.isatty():
            result = detect_changes(before, after, out_dir, cfg, rules=rules)
        else:
            result = _with_progress(lambda p: detect_changes(before, after, out_dir, cfg, progress=p, rules=rules))
    except SatcheckError as exc:
        raise _fail(exc) from None
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    _print_summary(summary)


def _with_progress(job):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("detecting", total=1)

        def progress(name: str, done: int, total: int) -> None:
            bar.update(task, description=f"detecting {name}", completed=done, total=total)

        return job(progress)


def _print_summary(s: dict) -> None:
    t = Table(title="satcheck run", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("detector", str(s["detector"]))
    t.add_row("tile pairs", str(s["pairs"]))
    t.add_row("area", f"{s['area_km2']} km² ({s['megapixels']} Mpx, {s['masked_share'] * 100:.1f} % cloud/shadow)")
    t.add_row("changes", f"{s['changes']} polygons, {s['change_area_m2']:.0f} m²")
    for k, v in s["changes_by_type"].items():
        t.add_row(f"  {k}", f"{v['count']} polygons, {v['area_m2']:.0f} m²")
    if "patches" in s:
        t.add_row("patches", f"{s['patches']['count']} for review")
        for k, v in s["patches"]["by_class"].items():
            t.add_row(f"  {k}", f"{v['count']} patches, {v['area_m2']:.0f} m² ({v['area_mu']:.2f} mu)")
    t.add_row("time", f"{s['seconds']} s ({s['mpx_per_s']} Mpx/s)")
    out.print(t)
    for k, v in s["outputs"].items():
        out.print(f"  {k:<12} {v}")


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
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    t = Table(title=str(tile), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in info.items():
        if k != "path":
            t.add_row(k, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
    out.print(t)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
