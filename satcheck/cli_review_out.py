"""`satcheck review export` and `satcheck review package`: what leaves the ledger for GIS and for the field."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from satcheck.cli_common import err, fail, out, plural
from satcheck.cli_review import ADMIN, CLASS, CONFIG, LEDGER, PERIOD, checked_filters
from satcheck.errors import SatcheckError

LANG = typer.Option(None, "--lang", help="en or zh: headers and values (class, change type, state, yes/no) of CSV, "
                                         "KML and .xlsx; default patches.lang of the config.")


def _lang(lang: Optional[str], cfg) -> str:
    if lang is None:
        lang = cfg.patches.lang
    if lang not in ("en", "zh"):
        raise typer.BadParameter(f"'{lang}' is not one of en, zh", param_hint="--lang")
    return lang


def export(ledger: Path = LEDGER,
           out_file: Path = typer.Option(..., "--out", "-o", help="File: .gpkg, .geojson, .kml, .csv, .shp or .xlsx"),
           state: Optional[str] = typer.Option(None, "--state", help="e.g. accepted: the list for the field teams"),
           period: Optional[str] = PERIOD, cls: Optional[str] = CLASS, admin: Optional[str] = ADMIN,
           lang: Optional[str] = LANG, config: Optional[Path] = CONFIG) -> None:
    """Export patches with their current state (status) and latest decision (reviewer, decided_at, reason, note)."""
    from satcheck.config import load_config
    from satcheck.export import FORMATS, write_all
    from satcheck.review.frames import review_frame
    from satcheck.review.ledger import Ledger

    fmt = out_file.suffix.lstrip(".").lower()
    if out_file.is_dir():
        raise typer.BadParameter(f"{out_file} is a folder; pass a file in it, e.g. {out_file / 'accepted.xlsx'}",
                                 param_hint="--out")
    if fmt not in FORMATS:
        raise typer.BadParameter(f"'{out_file.suffix}' is not one of .{', .'.join(FORMATS)}", param_hint="--out")
    try:
        cfg = load_config(config)
        lang = _lang(lang, cfg)
        with Ledger(ledger, cfg.review, create=False) as lg:
            checked_filters(lg, period, cls, state, admin)
            gdf = review_frame(lg, period=period, cls=cls, state=state, admin=admin)
        written = write_all(gdf, out_file.parent, (fmt,), lang, stem=out_file.stem)
    except SatcheckError as exc:
        raise fail(exc) from None
    if len(gdf) == 0:
        out.print(f"no patches match; wrote an empty {written[fmt]}", highlight=False)
    else:
        out.print(f"{plural(len(gdf), 'patch')} → {written[fmt]}", highlight=False)


def package(ledger: Path = LEDGER, out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder."),
            state: str = typer.Option("accepted", "--state", help="accepted (default) or verified_illegal."),
            period: Optional[str] = PERIOD, cls: Optional[str] = CLASS, admin: Optional[str] = ADMIN,
            lang: Optional[str] = LANG, config: Optional[Path] = CONFIG) -> None:
    """What a field team takes out: sheets (HTML, PDF) with each decision, reviewer, note, history; GPKG, KML, CSV, XLSX."""
    from satcheck.config import load_config
    from satcheck.review.ledger import Ledger
    from satcheck.review.package import PACKAGE_STATES, write_package

    try:
        cfg = load_config(config)
        lang = _lang(lang, cfg)
        with Ledger(ledger, cfg.review, create=False) as lg:
            checked_filters(lg, period, cls, state, admin, states=PACKAGE_STATES)
            pkg = write_package(lg, out_dir, state, period, cls, admin, lang, cfg.report.cjk_font)
    except SatcheckError as exc:
        raise fail(exc) from None
    if pkg.count == 0:
        out.print(f"no {state} patches match: the files in {out_dir} are empty", highlight=False)
    else:
        out.print(f"field package: {plural(pkg.count, 'patch')} ({state})", highlight=False)
    width = max(map(len, pkg.outputs), default=0)
    for k, v in pkg.outputs.items():
        out.print(f"  {k:<{width}} {v}", highlight=False)
    for w in pkg.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(export)
    app.command()(package)
