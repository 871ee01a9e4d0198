"""`satcheck review ...`: the ledger from the command line (exports and the field package: cli_review_out.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from satcheck.cli_common import err, fail, out
from satcheck.errors import SatcheckError

review_app = typer.Typer(help="Review ledger: import patches, decide, undo, export, field package, statistics, "
                              "local web page.", no_args_is_help=True)

LEDGER = typer.Argument(..., help="Ledger file (SQLite), one per jurisdiction.")


def _open(ledger: Path, config: Optional[Path], create: bool = False, tell_wait: bool = False):
    """``tell_wait``: a decision that waits for another process's write lock says so on stderr, else it would
    look hung for up to ledger.BUSY_TIMEOUT_S."""
    from satcheck.config import load_config
    from satcheck.review.ledger import Ledger

    def waiting(left: float) -> None:
        err.print(f"waiting for {ledger}: another process (an import, another reviewer) is writing it; the decision "
                  f"goes through once it lets go (up to {left:.0f} s more) ...", highlight=False, soft_wrap=True)

    return Ledger(ledger, load_config(config).review, create=create, on_wait=waiting if tell_wait else None)


CONFIG = typer.Option(None, "--config", "-c", help="Run configuration (YAML) with the review section.")
BY = typer.Option(..., "--by", help="Reviewer name, recorded with the decision.")
NOTE = typer.Option(None, "--note", help="Free text kept with the decision.")
PERIOD = typer.Option(None, "--period", help="YYYY-MM, e.g. 2026-10.")
CLASS = typer.Option(None, "--class", help="Patch class, e.g. farmland_construction.")
ADMIN = typer.Option(None, "--admin", help="Admin code or its leading digits, e.g. 3608.")


def checked_filters(lg, period: Optional[str], cls: Optional[str], state: Optional[str], admin: Optional[str],
                    states: Optional[tuple[str, ...]] = None) -> None:
    """Unknown states, classes, periods and admin codes are errors that list the valid ones."""
    from satcheck.review.filters import FilterError, check_admin, check_class, check_period, check_state
    from satcheck.review.states import STATES

    known = [r[0] for r in lg.db.execute("SELECT DISTINCT period FROM patches ORDER BY period")]
    for hint, check in (("--state", lambda: check_state(state, states or STATES)), ("--class", lambda: check_class(cls)),
                        ("--period", lambda: check_period(period, known)), ("--admin", lambda: check_admin(admin))):
        try:
            check()
        except FilterError as exc:
            raise typer.BadParameter(str(exc), param_hint=hint) from None


@review_app.command("import")
def import_(ledger: Path = LEDGER, patches: Path = typer.Argument(..., help="patches.gpkg of a run."),
            config: Optional[Path] = CONFIG) -> None:
    """Add a period's patches; patches that continue a known case are linked to it."""
    from satcheck.outfolder import check_complete
    from satcheck.review.paths import make_portable

    existed = ledger.exists()
    try:
        check_complete(patches)  # before the ledger is made: a refused import leaves no empty ledger behind
        with _open(ledger, config, create=True) as lg:
            r = lg.import_patches(patches)
            make_portable(lg)  # chips and source relative to the ledger: the folder can move
    except SatcheckError as exc:
        if not existed:
            _remove_if_empty(ledger)
        raise fail(exc) from None
    if r.already_imported:
        out.print(f"{patches}: already imported; nothing changed")
    else:
        out.print(f"{r.added} new, {r.rereview} known cases back for review, {r.linked} linked to known cases"
                  + (f", {r.skipped} already in the ledger" if r.skipped else ""))


def _remove_if_empty(ledger: Path) -> None:
    """Remove a ledger this import made and put nothing in: a refused first import leaves no empty ledger.

    One that holds patches stays: an import stopped part-way resumes from it."""
    import contextlib

    from satcheck.review.ledger import Ledger

    with contextlib.suppress(SatcheckError, OSError):
        with Ledger(ledger, create=False) as lg:
            empty = lg.db.execute("SELECT COUNT(*) FROM patches").fetchone()[0] == 0
        if empty:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{ledger}{suffix}").unlink(missing_ok=True)


@review_app.command("list")
def list_(ledger: Path = LEDGER, period: Optional[str] = PERIOD, cls: Optional[str] = CLASS,
          state: Optional[str] = typer.Option(None, "--state"), admin: Optional[str] = ADMIN,
          min_area: Optional[float] = typer.Option(None, "--min-area"),
          as_json: bool = typer.Option(False, "--json"), config: Optional[Path] = CONFIG) -> None:
    """Patches with their current state, filtered."""
    try:
        with _open(ledger, config) as lg:
            checked_filters(lg, period, cls, state, admin)
            rows = lg.patches(period, cls, state, admin, min_area)
            reviewed, total = lg.progress(period)
    except SatcheckError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"patches": rows, "reviewed": reviewed, "in_review": total}, ensure_ascii=False))
        return
    if not rows:
        out.print(f"{ledger}: no patches match ({reviewed} / {total} reviewed)", highlight=False)
        return
    t = Table(title=f"{ledger}: {reviewed} / {total} reviewed", title_justify="left")
    for c in ("patch_id", "period", "class", "area_m2", "admin", "state", "by"):
        t.add_column(c, no_wrap=True)
    for r in rows:
        t.add_row(r["patch_id"], r["period"], r["class"], f"{r['area_m2']:.0f}", r["admin_name"] or "", r["state"],
                  r["reviewer"])
    out.print(t)


@review_app.command()
def show(ledger: Path = LEDGER, patch_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json"),
         config: Optional[Path] = CONFIG) -> None:
    """One patch: attributes, chips and the history of decisions."""
    from satcheck.review.paths import chips

    try:
        with _open(ledger, config) as lg:
            d = lg.patch(patch_id)
            d["chips"] = {w: c.as_dict() for w, c in chips(lg, patch_id).items()}
    except SatcheckError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(d, ensure_ascii=False))
        return
    t = Table(title=f"{patch_id}: {d['state']}", show_header=False, title_justify="left")
    for k, v in d["attrs"].items():
        if v not in (None, ""):
            t.add_row(k, str(v))
    for w, c in d["chips"].items():
        if c["path"]:
            t.add_row(f"chip {w}", c["path"] if c["ok"] else f"MISSING: {c['path']}")
    out.print(t)
    for e in d["history"]:
        out.print(f"  {e['at'][:19]} {e['reviewer']}: {e['from_state']} → {e['to_state']}"
                  + (f" ({e['reason']})" if e["reason"] else "") + (f" — {e['note']}" if e["note"] else ""),
                  highlight=False)


def _decide(ledger: Path, ids: list[str], to: str, by: str, reason: Optional[str], note: Optional[str],
            config: Optional[Path]) -> None:
    try:
        with _open(ledger, config, tell_wait=True) as lg:
            events = lg.decide_many(ids, to, by, reason, note)  # all of them or none
    except SatcheckError as exc:
        raise fail(exc) from None
    for e in events:
        out.print(f"{e.patch_id}: {e.from_state} → {e.to_state}")


IDS = typer.Argument(..., help="One or more patch ids: all of them are decided, or none if any cannot be.")


@review_app.command()
def accept(ledger: Path = LEDGER, patch_ids: list[str] = IDS, by: str = BY, note: Optional[str] = NOTE,
           config: Optional[Path] = CONFIG) -> None:
    """Accept: a confirmed suspect, goes to the field."""
    _decide(ledger, patch_ids, "accepted", by, None, note, config)


@review_app.command()
def reject(ledger: Path = LEDGER, patch_ids: list[str] = IDS, by: str = BY,
           reason: str = typer.Option(..., "--reason", help="seasonal, cloud_shadow, misregistration, approved_legal, "
                                                            "existed_before, other (configurable)"),
           note: Optional[str] = NOTE, config: Optional[Path] = CONFIG) -> None:
    """Reject as a false alarm, with a reason."""
    _decide(ledger, patch_ids, "rejected", by, reason, note, config)


@review_app.command()
def defer(ledger: Path = LEDGER, patch_ids: list[str] = IDS, by: str = BY, note: Optional[str] = NOTE,
          config: Optional[Path] = CONFIG) -> None:
    """Defer: decide later."""
    _decide(ledger, patch_ids, "deferred", by, None, note, config)


@review_app.command()
def reopen(ledger: Path = LEDGER, patch_ids: list[str] = IDS, by: str = BY,
           note: Optional[str] = typer.Option(None, "--note", help="Why the decision is undone."),
           config: Optional[Path] = CONFIG) -> None:
    """Undo the latest decision: the patch goes back to its previous state (a new event; history is kept).
    Several ids: all of them or none."""
    from satcheck.review.undo import reopen_many

    try:
        with _open(ledger, config, tell_wait=True) as lg:
            done = reopen_many(lg, patch_ids, by, note)  # all of them or none
    except SatcheckError as exc:
        raise fail(exc) from None
    for e, undone in done:
        out.print(f"{e.patch_id}: {e.from_state} → {e.to_state} (undoes {undone.reviewer}'s decision of "
                  f"{undone.at[:19].replace('T', ' ')})", highlight=False)


@review_app.command()
def field(ledger: Path = LEDGER, patch_ids: list[str] = IDS,
          result: str = typer.Option(..., "--result", help="verified_illegal, verified_legal or rectified"),
          by: str = BY, note: Optional[str] = NOTE, config: Optional[Path] = CONFIG) -> None:
    """Record the field team's result for accepted patches."""
    from satcheck.review.states import FIELD_RESULTS

    if result not in FIELD_RESULTS:
        raise typer.BadParameter(f"'{result}' is not one of {', '.join(FIELD_RESULTS)}", param_hint="--result")
    _decide(ledger, patch_ids, result, by, None, note, config)


@review_app.command()
def bulk(ledger: Path = LEDGER, csv_file: Path = typer.Argument(..., help="CSV with patch_id, decision, reason, note "
                                                                          "(UTF-8, UTF-8 with BOM or GBK/GB18030)."),
         by: str = BY, config: Optional[Path] = CONFIG) -> None:
    """Apply many decisions from a CSV: all of them, or none if any row is wrong."""
    try:
        with _open(ledger, config, tell_wait=True) as lg:
            events = lg.bulk(csv_file, by)
    except SatcheckError as exc:
        raise fail(exc) from None
    out.print(f"{len(events)} decisions applied")


@review_app.command()
def stats(ledger: Path = LEDGER, as_json: bool = typer.Option(False, "--json"),
          chart: Optional[Path] = typer.Option(None, "--chart", help="Also write a PNG chart here."),
          config: Optional[Path] = CONFIG) -> None:
    """Counts and areas by period, class, state and admin unit; false alarms by reason; reviewer throughput."""
    from satcheck.review.stats import chart as make_chart
    from satcheck.review.stats import stats as compute

    if chart is not None and (chart.is_dir() or chart.suffix.lower() != ".png"):
        raise typer.BadParameter(f"{chart}: the chart is a PNG image; pass a file name ending in .png",
                                 param_hint="--chart")
    try:
        with _open(ledger, config) as lg:
            s = compute(lg)
        if chart:
            make_chart(s, chart)
    except SatcheckError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(s, ensure_ascii=False))
        return
    out.print(f"[bold]{s['reviewed']} / {s['in_review']} reviewed[/] ({s['patches']} patches in the ledger)")
    for key, title in (("by_period", "period"), ("by_class", "class"), ("by_state", "state"), ("by_admin", "admin code"),
                       ("false_alarms_by_reason", "false alarms by reason")):
        t = Table(title=title, title_justify="left")
        t.add_column(title)
        t.add_column("patches", justify="right")
        t.add_column("area m²", justify="right")
        for r in s[key]:
            t.add_row(str(r["key"]), str(r["n"]), f"{r['area_m2'] or 0:.0f}")
        out.print(t)
    t = Table(title="reviewer throughput", title_justify="left")
    for c in ("reviewer", "day", "decisions"):
        t.add_column(c)
    for r in s["throughput"]:
        t.add_row(r["reviewer"], r["day"], str(r["decisions"]))
    out.print(t)
    if chart:
        out.print(f"chart: {chart}")


@review_app.command()
def serve(ledger: Path = LEDGER, host: str = typer.Option("127.0.0.1", "--host"),
          port: int = typer.Option(8765, "--port"),
          token: Optional[str] = typer.Option(None, "--token", help="Required on any address but loopback."),
          by: str = typer.Option("", "--by", help="Reviewer name filled in on the page."),
          rules: Optional[Path] = typer.Option(None, "--rules", help="Folder of rule layers: farmland, basic farmland, "
                                                                     "permits and admin units drawn on the map."),
          config: Optional[Path] = CONFIG) -> None:
    """Open the local review page (list, map, before/after chips, keyboard decisions, u to undo)."""
    from satcheck.config import load_config
    from satcheck.review.server import serve as run_server
    from satcheck.review.web_guard import is_loopback

    if not is_loopback(host) and not token:
        raise typer.BadParameter(f"{host} is not a loopback address: pass --token so that only reviewers with it "
                                 "can decide", param_hint="--token")
    if rules is not None and not rules.is_dir():
        raise typer.BadParameter(f"{rules} is not a folder; pass the --rules folder of the runs", param_hint="--rules")
    try:
        cfg = load_config(config)
        url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
        out.print(f"review page: {url}  (Ctrl-C to stop)")
        run_server(ledger, host, port, token, cfg.review, by, rules=rules, rules_config=cfg.rules)
    except SatcheckError as exc:
        raise fail(exc) from None


def _register() -> None:
    from satcheck import cli_review_out

    cli_review_out.register(review_app)


_register()
