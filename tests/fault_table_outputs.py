"""Fault catalogue rows (tests/fault_catalogue.py): weights, exports, scoring, the review ledger, train and eval."""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
from pathlib import Path

import geopandas as gpd
import pytest
import yaml

from tests.cli_results import invoke
from tests.fault_catalogue import Case, Inputs, cfg, last, read_only, run_pair, weights

P1 = "360821-202610-0001"


# ------------------------------------------------------------------------------------------- helpers
def _model(tmp: Path, inp: Inputs, weights: Path, engine: str = "onnx") -> list:
    c = cfg(tmp, yaml.safe_dump({"detect": {"detector": "model", "model": {"weights": str(weights), "engine": engine}}}))
    return ["run", inp.before, inp.after, "--out", tmp / "out", "--config", c, "--device", "cpu"]


def _damaged_cache(tmp: Path, inp: Inputs, mp, damage: str) -> list:
    """A cache entry cut short used to fail every run until the cache was deleted by hand: now it is no hit."""
    mp.setenv("SATCHECK_CACHE", str(tmp / "cache"))
    args = _model(tmp, inp, weights(tmp))
    assert invoke(*args, "--json").exit_code == 0
    (graph,) = (tmp / "cache" / "onnx").glob("*.onnx")
    whole = graph.read_bytes()
    (tmp / "whole.onnx").write_bytes(whole)
    graph.write_bytes(whole[: len(whole) // 2] if damage == "truncate" else b"\0" * len(whole))
    return [*args[:4], tmp / "out2", *args[5:], "--json"]


def _cache_healed(tmp: Path, _r) -> None:
    (graph,) = (tmp / "cache" / "onnx").glob("*.onnx")
    assert graph.read_bytes() == (tmp / "whole.onnx").read_bytes()


def _nothing_in(folder_name: str):
    def check(tmp: Path, _r) -> None:
        assert not list((tmp / folder_name).iterdir())
    return check


def _disk_full(tmp: Path, inp: Inputs, mp) -> list:
    import satcheck.export as export

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    mp.setattr(export.gpd.GeoDataFrame, "to_file", full)
    (tmp / "out").mkdir()
    return ["export", inp.patches, "--out", tmp / "out", "--format", "gpkg"]


def _edited(tmp: Path, inp: Inputs, edit) -> Path:
    """The run's patches.gpkg copied and edited as another tool would."""
    g = gpd.read_file(inp.patches, layer="patches")
    g = edit(g)
    g.to_file(tmp / "patches.gpkg", layer="patches")
    return tmp / "patches.gpkg"


def _set(col, value):
    return lambda g: g.assign(**{col: value})


def lg(tmp: Path, inp: Inputs) -> Path:
    shutil.copy(inp.ledger, tmp / "ledger.sqlite")
    return tmp / "ledger.sqlite"


def _state(tmp: Path, pid: str = P1) -> str:
    return json.loads(invoke("review", "show", tmp / "ledger.sqlite", pid, "--json").output)["state"]


def _bulk(tmp: Path, inp: Inputs, data: bytes | str, encoding: str = "utf-8") -> list:
    (tmp / "d.csv").write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return ["review", "bulk", lg(tmp, inp), tmp / "d.csv", "--by", "wang"]


def _read_only_db(tmp: Path, inp: Inputs, mp) -> Path:
    """The ledger on a read-only file system: SQLite opens it read-only (as it does where it cannot write)."""
    real = sqlite3.connect
    mp.setattr(sqlite3, "connect", lambda p, *a, **k: real(f"file:{p}?mode=ro", *a, uri=True, **k))
    return lg(tmp, inp)


def _sql(tmp: Path, inp: Inputs, statement: str) -> Path:
    path = lg(tmp, inp)
    with sqlite3.connect(path) as db:
        db.execute(statement)
    return path


def _foreign(tmp: Path) -> Path:
    with sqlite3.connect(tmp / "other.sqlite") as db:
        db.execute("CREATE TABLE fields (id INTEGER)")
    return tmp / "other.sqlite"


def _untouched(tmp: Path, _r) -> None:
    with sqlite3.connect(tmp / "other.sqlite") as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["fields"]


def _score_bad(tmp: Path, inp: Inputs, what: str, side: str) -> list:
    bad = {"tif": inp.after, "text": tmp / "notes.gpkg", "empty": tmp / "empty.geojson"}[what]
    if what == "text":
        bad.write_text("not a GeoPackage\n")
    elif what == "empty":
        bad.write_text("")
    return ["score", bad, inp.patches] if side == "result" else ["score", inp.patches, bad]


def _truth(tmp: Path, geoms) -> Path:
    gpd.GeoDataFrame(geometry=list(geoms), crs="EPSG:4547").to_file(tmp / "truth.gpkg")
    return tmp / "truth.gpkg"


def _dataset(tmp: Path) -> Path:
    """A labelled A/B/label dataset of one 64 px pair."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    for sub in ("A", "B", "label"):
        (tmp / "ds" / sub).mkdir(parents=True)
        img = np.zeros((64, 64), np.uint8) if sub == "label" else rng.integers(0, 255, (64, 64, 3), np.uint8)
        Image.fromarray(img).save(tmp / "ds" / sub / "x.png")
    return tmp / "ds"


def _csv_rows(tmp: Path, name: str) -> int:
    return len((tmp / "out" / name).read_text(encoding="utf-8-sig").strip().splitlines())


# ------------------------------------------------------------------------------------------- the table
CASES: list[Case] = [
    # ---- weights and the ONNX cache
    Case("weights-missing", "detect.model.weights of a file that is not there (run has no --model)",
         lambda t, i, m: ["run", i.before, i.after, "--out", t / "out", "--config",
                          cfg(t, f"detect:\n  detector: model\n  model:\n    weights: {t / 'nope.pt'}\n")],
         says=("weights file not found", "detect.model.weights"), names="nope.pt"),
    Case("weights-garbage", "a weights file of garbage",
         lambda t, i, m: last((t / "w.pt").write_bytes(b"garbage" * 10), _model(t, i, t / "w.pt")),
         says=("not a satcheck weights file", "retrain or re-download"), names="w.pt"),
    Case("weights-empty", "a zero-byte weights file",
         lambda t, i, m: last((t / "w.pt").write_bytes(b""), _model(t, i, t / "w.pt")),
         says=("not a satcheck weights file",), names="w.pt"),
    *[Case(f"weights-meta-{kind}-{engine}", f"meta_json {kind} in the weights ({engine})",
           lambda t, i, m, mj=mj, engine=engine: _model(t, i, weights(t, mj), engine),
           says=("meta_json", needle, "retrain or re-download"), names="w.pt")
      for kind, mj, needle in (("not-json", "{not json", "not valid JSON"), ("a-list", "[1, 2]", "a JSON list"))
      for engine in ("onnx", "torch")],
    Case("weights-nan", "weights of a training run that diverged (NaN)",
         lambda t, i, m: _model(t, i, weights(t, nan=True), "torch"), says=("NaN or infinity", "retrain"),
         names="w.pt", check=lambda t, r: not (t / "out" / "changes.gpkg").exists() or pytest.fail("written")),
    *[Case(f"onnx-cache-{damage}", f"an ONNX cache entry {damage}d: exported again, the run goes on",
           lambda t, i, m, damage=damage: _damaged_cache(t, i, m, damage), code=0, check=_cache_healed)
      for damage in ("truncate", "garbage")],
    # ---- export
    Case("export-missing", "export of a patches file that is not there",
         lambda t, i, m: ["export", t / "nope.gpkg", "--out", t / "out"], says=("patches file not found",),
         names="nope.gpkg"),
    Case("export-folder", "export of a folder", lambda t, i, m: ["export", t, "--out", t / "out"],
         says=("patches file not found",), names="{tmp}"),
    Case("export-empty-file", "export of a zero-byte .gpkg",
         lambda t, i, m: last((t / "e.gpkg").write_bytes(b""), ["export", t / "e.gpkg", "--out", t / "out"]),
         says=("has no 'patches' layer",), names="e.gpkg"),
    Case("export-changes-not-patches", "export of changes.gpkg (a run without --rules)",
         lambda t, i, m: ["export", i.site / "run" / "changes.gpkg", "--out", t / "out"],
         says=("has no 'patches' layer", "pass a patches.gpkg"), names="changes.gpkg"),
    Case("export-out-a-file", "export --out of a file",
         lambda t, i, m: last((t / "o").write_text(""), ["export", i.patches, "--out", t / "o", "-f", "csv"]),
         says=("cannot be written",), names="o"),
    *[Case(f"export-name-{n}", f"export --name {name!r} (would write outside --out)",
           lambda t, i, m, name=name: ["export", i.patches, "--out", t / "out", "--name", name, "-f", "csv"],
           says=("not a file name",), names="--name",
           check=lambda t, r: not (t / "out").exists() and not list(t.parent.glob("x.*")) or pytest.fail("written"))
      for n, name in (("up-up", "../../x"), ("up", "../x"), ("sub", "sub/x"), ("dots", ".."), ("empty", ""))],
    Case("export-name-ok", "export --name patches_2026_10",
         lambda t, i, m: ["export", i.patches, "--out", t / "out", "--name", "patches_2026_10", "-f", "csv"], code=0,
         check=lambda t, r: _csv_rows(t, "patches_2026_10.csv") == 8 or pytest.fail(r.output)),
    *[Case(f"export-read-only-{fmt}", f"export {fmt} into a read-only folder",
           lambda t, i, m, fmt=fmt: ["export", i.patches, "--out", read_only(t, m), "--format", fmt],
           says=("cannot be written",), names=f"patches.{fmt}", check=_nothing_in("ro"))
      for fmt in ("gpkg", "shp", "csv")],
    Case("export-folder-cannot-be-made", "export --out under a file",
         lambda t, i, m: last((t / "file").write_text(""), ["export", i.patches, "--out", t / "file" / "out"]),
         says=("cannot be written",), names="file/out"),
    Case("export-disk-full", "a full disk while exporting", _disk_full,
         says=("No space left on device", "free some space"), names="patches.gpkg", check=_nothing_in("out")),
    Case("export-min-area-negative", "export --min-area -5",
         lambda t, i, m: ["export", i.patches, "--out", t / "out", "--min-area", "-5"], usage=True,
         says=("below 0",), names="--min-area"),
    Case("export-format", "export --format pdf", lambda t, i, m: ["export", i.patches, "--out", t / "out", "-f", "pdf"],
         usage=True, says=("'pdf' is not one of",), names="--format"),
    Case("export-nothing-matches", "export of a filter that matches nothing: an empty file with its header",
         lambda t, i, m: ["export", i.patches, "--out", t / "out", "-f", "csv", "--admin", "9999"], code=0,
         says=("0 patches",), check=lambda t, r: _csv_rows(t, "patches.csv") == 1 or pytest.fail("rows")),
    Case("export-duplicate-ids", "a patches file where every patch has the same id",
         lambda t, i, m: ["export", _edited(t, i, _set("patch_id", P1)), "--out", t / "out"],
         says=(f"patch id '{P1}' is given to 7 features",), names="patches.gpkg"),
    Case("export-no-crs", "export to KML of patches without a CRS (was a traceback)",
         lambda t, i, m: ["export", _edited(t, i, lambda g: g.set_crs(None, allow_override=True)), "--out", t / "out",
                          "-f", "kml"], says=("has no CRS", "define its CRS"), names="patches.gpkg"),
    Case("import-no-crs", "review import of patches without a CRS (was imported, unsaid)",
         lambda t, i, m: ["review", "import", t / "l.sqlite", _edited(t, i, lambda g: g.set_crs(None, allow_override=True))],
         says=("has no CRS",), names="patches.gpkg"),
    Case("export-over-its-input", "export of a subset into the folder it reads from (replaced patches.gpkg, unsaid)",
         lambda t, i, m: ["export", _edited(t, i, lambda g: g), "--out", t, "--class", "illegal_mining", "-f", "gpkg"],
         usage=True, says=("which patches.* would replace",), names="--out",
         check=lambda t, r: len(gpd.read_file(t / "patches.gpkg")) == 7 or pytest.fail("replaced")),
    Case("export-no-patch-id", "a patches file without its patch_id column",
         lambda t, i, m: ["export", _edited(t, i, lambda g: g.drop(columns=["patch_id"])), "--out", t / "out"],
         says=("no patch_id column",), names="patches.gpkg"),
    # ---- score
    *[Case(f"score-{what}-as-{side}", f"score with a {what} file as the {side}",
           lambda t, i, m, what=what, side=side: _score_bad(t, i, what, side), says=("not a vector file",),
           names={"tif": "T_20261001.tif", "text": "notes.gpkg", "empty": "empty.geojson"}[what])
      for what in ("tif", "text", "empty") for side in ("result", "truth")],
    Case("score-missing", "score of a result that is not there", lambda t, i, m: ["score", t / "n.gpkg", i.patches],
         says=("not found",), names="n.gpkg"),
    Case("score-truth-missing", "score against true changes that are not there",
         lambda t, i, m: ["score", i.patches, t / "truth.gpkg"], says=("not found", "true changes"), names="truth.gpkg"),
    Case("score-damaged-run-json", "score beside a run.json cut short",
         lambda t, i, m: last(shutil.copy(i.patches, t / "patches.gpkg"), (t / "run.json").write_text('{"area_km2": '),
                              ["score", t / "patches.gpkg", i.patches]),
         says=("not a run summary",), names="run.json"),
    Case("score-truth-points", "true changes given as points (no area: nothing would be scored)",
         lambda t, i, m: ["score", i.patches, _truth(t, [__import__("shapely").Point(592010, 2993990)])],
         says=("holds Point geometries", "polygons"), names="truth.gpkg"),
    Case("score-no-truths", "no true change at all: recall is null in JSON, not NaN",
         lambda t, i, m: ["score", i.patches, _truth(t, []), "--json"], code=0,
         check=lambda t, r: json.loads(r.output, parse_constant=pytest.fail)["recall"] is None or pytest.fail("recall")),
    Case("score-iou-0", "score --iou 0", lambda t, i, m: ["score", i.patches, i.patches, "--iou", "0"], usage=True,
         says=("not an overlap",), names="--iou"),
    # ---- the ledger
    Case("ledger-missing", "review list of a ledger that is not there",
         lambda t, i, m: ["review", "list", t / "nope.sqlite"], says=("ledger not found", "satcheck review import"),
         names="nope.sqlite"),
    Case("ledger-folder", "review list of a folder", lambda t, i, m: ["review", "list", t],
         says=("not a satcheck ledger",), names="{tmp}"),
    Case("ledger-text", "review list of a text file",
         lambda t, i, m: last((t / "x.sqlite").write_text("hello"), ["review", "list", t / "x.sqlite"]),
         says=("not a satcheck ledger",), names="x.sqlite"),
    Case("ledger-empty-file", "review list of a zero-byte file (used to list nothing and make it a ledger)",
         lambda t, i, m: last((t / "x.sqlite").write_bytes(b""), ["review", "list", t / "x.sqlite"]),
         says=("an empty file, not a satcheck ledger",), names="x.sqlite",
         check=lambda t, r: (t / "x.sqlite").stat().st_size == 0 or pytest.fail("written")),
    Case("ledger-foreign-list", "review list of another program's SQLite database",
         lambda t, i, m: ["review", "list", _foreign(t)], says=("not a satcheck ledger",), names="other.sqlite",
         check=_untouched),
    Case("ledger-foreign-import", "review import into another program's SQLite database",
         lambda t, i, m: ["review", "import", _foreign(t), i.patches], says=("it holds other tables",),
         names="other.sqlite", check=_untouched),
    Case("ledger-newer-schema", "a ledger of a newer satcheck",
         lambda t, i, m: ["review", "list", _sql(t, i, "UPDATE meta SET value='99' WHERE key='schema_version'")],
         says=("newer than this satcheck", "upgrade satcheck"), names="ledger.sqlite"),
    Case("ledger-damaged", "a ledger whose append-only trigger was dropped",
         lambda t, i, m: ["review", "accept", _sql(t, i, "DROP TRIGGER events_no_update"), P1, "--by", "wang"],
         says=("damaged ledger", "restore it from a backup"), names="ledger.sqlite"),
    Case("ledger-read-only-decide", "a decision in a ledger on a read-only file system",
         lambda t, i, m: ["review", "accept", _read_only_db(t, i, m), P1, "--by", "wang"],
         says=("cannot be written", "writable"), names="ledger.sqlite"),
    Case("ledger-read-only-list", "a ledger on a read-only file system can still be listed",
         lambda t, i, m: ["review", "list", _read_only_db(t, i, m), "--json"], code=0,
         check=lambda t, r: len(json.loads(r.output)["patches"]) == 6 or pytest.fail(r.output)),
    Case("review-show-unknown", "review show of an id the ledger lacks",
         lambda t, i, m: ["review", "show", i.ledger, "NOPE-1"], says=("no patch 'NOPE-1'", "review list"),
         names="ledger.sqlite"),
    Case("review-accept-some-unknown", "accept of two known ids and one unknown: none applied",
         lambda t, i, m: ["review", "accept", lg(t, i), P1, "360821-202610-0002", "NOPE", "--by", "wang"],
         says=("no patch 'NOPE'",), names="ledger.sqlite",
         check=lambda t, r: _state(t) == "pending" or pytest.fail("applied")),
    Case("review-reject-reason", "reject with a reason that is not configured",
         lambda t, i, m: ["review", "reject", lg(t, i), P1, "--by", "wang", "--reason", "bogus"],
         says=("'bogus' is not a rejection reason", "seasonal"), names=P1),
    Case("review-no-reviewer", "a decision with --by ''",
         lambda t, i, m: ["review", "accept", lg(t, i), P1, "--by", ""], says=("needs a reviewer name",), names="--by"),
    Case("import-missing", "review import of a patches file that is not there",
         lambda t, i, m: ["review", "import", t / "l.sqlite", t / "nope.gpkg"], says=("patches file not found",),
         names="nope.gpkg"),
    Case("import-changes", "review import of changes.gpkg",
         lambda t, i, m: ["review", "import", t / "l.sqlite", i.site / "run" / "changes.gpkg"],
         says=("has no 'patches' layer",), names="changes.gpkg"),
    Case("import-into-folder", "review import with a folder as the ledger",
         lambda t, i, m: ["review", "import", t, i.patches], says=("not a satcheck ledger",), names="{tmp}"),
    Case("import-no-patch-id", "review import of patches without the patch_id column",
         lambda t, i, m: ["review", "import", t / "l.sqlite", _edited(t, i, lambda g: g.drop(columns=["patch_id"]))],
         says=("no patch_id column", "not an edited copy"), names="patches.gpkg"),
    Case("import-duplicate-ids", "review import of patches that share one id (used to import 1 of 7, unsaid)",
         lambda t, i, m: ["review", "import", t / "l.sqlite", _edited(t, i, _set("patch_id", P1))],
         says=("is given to 7 features",), names="patches.gpkg",
         check=lambda t, r: not list(t.glob("l.sqlite*")) or pytest.fail("a refused first import left a ledger")),
    Case("import-no-period", "review import of patches without a period",
         lambda t, i, m: ["review", "import", t / "l.sqlite", _edited(t, i, _set("period", None))],
         says=("feature 1 has no period",), names="patches.gpkg"),
    Case("import-unknown-class", "review import of patches of a class satcheck does not know (used to import 0, unsaid)",
         lambda t, i, m: ["review", "import", t / "l.sqlite", _edited(t, i, _set("class", "bogus"))],
         says=("class 'bogus' is not a satcheck class",), names="patches.gpkg"),
    Case("import-twice", "the same patches imported twice: nothing changes",
         lambda t, i, m: ["review", "import", lg(t, i), i.patches], code=0, says=("already imported; nothing changed",)),
    # ---- bulk decisions from a CSV
    Case("bulk-missing", "review bulk of a CSV that is not there",
         lambda t, i, m: ["review", "bulk", lg(t, i), t / "n.csv", "--by", "wang"], says=("cannot be read",),
         names="n.csv"),
    Case("bulk-folder", "review bulk of a folder", lambda t, i, m: ["review", "bulk", lg(t, i), t, "--by", "wang"],
         says=("cannot be read",), names="{tmp}"),
    Case("bulk-empty", "an empty CSV", lambda t, i, m: _bulk(t, i, b""), says=("has no patch_id or decision column",),
         names="d.csv"),
    Case("bulk-missing-column", "a CSV without the patch_id column (used to read as row 2: no patch '')",
         lambda t, i, m: _bulk(t, i, f"patch,decision\n{P1},accept\n"),
         says=("has no patch_id column", "patch, decision"), names="d.csv",
         check=lambda t, r: _state(t) == "pending" or pytest.fail("applied")),
    Case("bulk-binary", "a CSV of binary bytes", lambda t, i, m: _bulk(t, i, b"\0\1\2\xff\xfe" * 20),
         says=("not a text file", "CSV UTF-8"), names="d.csv"),
    Case("bulk-utf16", "a CSV saved as UTF-16", lambda t, i, m: _bulk(t, i, f"patch_id,decision\n{P1},accept\n", "utf-16"),
         says=("UTF-16", "CSV UTF-8"), names="d.csv"),
    Case("bulk-gbk", "a CSV from Excel in GBK with Chinese headers is read",
         lambda t, i, m: _bulk(t, i, f"图斑编号,决定,原因,备注\r\n{P1},accept,,现场有新房\r\n", "gbk"), code=0,
         says=("1 decisions applied",), check=lambda t, r: _state(t) == "accepted" or pytest.fail("not applied")),
    Case("bulk-semicolons", "a CSV separated by semicolons is read",
         lambda t, i, m: _bulk(t, i, f"patch_id;decision\n{P1};accept\n"), code=0,
         check=lambda t, r: _state(t) == "accepted" or pytest.fail("not applied")),
    Case("bulk-excel-sep-line", "a CSV starting with Excel's 'sep=;' line is read (was 'no patch_id column')",
         lambda t, i, m: _bulk(t, i, f"sep=;\r\npatch_id;decision\r\n{P1};accept\r\n"), code=0,
         check=lambda t, r: _state(t) == "accepted" or pytest.fail("not applied")),
    Case("bulk-decision-capitalised", "a CSV deciding 'Accept': the decisions are lower case, and listed",
         lambda t, i, m: _bulk(t, i, f"patch_id,decision\n{P1},Accept\n"), says=("'Accept' is not a decision", "accept"),
         names="d.csv"),
    Case("bulk-header-only", "a CSV of its header alone: no decision",
         lambda t, i, m: _bulk(t, i, "patch_id,decision\n"), code=0, says=("0 decisions applied",)),
    Case("bulk-duplicate-rows", "one patch accepted twice in a CSV: none applied",
         lambda t, i, m: _bulk(t, i, f"patch_id,decision\n{P1},accept\n{P1},accept\n"),
         says=("row 3", "cannot go from accepted to accepted", "nothing was applied"), names="d.csv",
         check=lambda t, r: _state(t) == "pending" or pytest.fail("applied")),
    Case("bulk-unknown-id", "a CSV row of an unknown id", lambda t, i, m: _bulk(t, i, "patch_id,decision\nNOPE,accept\n"),
         says=("row 2: no patch 'NOPE'", "nothing was applied"), names="d.csv"),
    Case("bulk-bad-decision", "a CSV row deciding 'maybe'",
         lambda t, i, m: _bulk(t, i, f"patch_id,decision\n{P1},maybe\n"), says=("'maybe' is not a decision",),
         names="d.csv"),
    Case("bulk-reject-no-reason", "a CSV rejection without a reason",
         lambda t, i, m: _bulk(t, i, f"patch_id,decision,reason\n{P1},reject,\n"), says=("a rejection needs a reason",),
         names="d.csv"),
    # ---- review outputs
    Case("review-export-suffix", "review export --out x.txt",
         lambda t, i, m: ["review", "export", i.ledger, "--out", t / "x.txt"], usage=True,
         says=("'.txt' is not one of",), names="--out"),
    Case("review-export-folder", "review export --out of a folder",
         lambda t, i, m: ["review", "export", i.ledger, "--out", t], usage=True, says=("is a folder",), names="--out"),
    Case("review-config-missing", "review list --config of a file that is not there",
         lambda t, i, m: ["review", "list", i.ledger, "--config", t / "nope.yaml"], says=("config file not found",),
         names="nope.yaml"),
    Case("review-export-new-folder", "review export into folders that are not there yet: they are made",
         lambda t, i, m: ["review", "export", i.ledger, "--out", t / "a" / "b" / "x.csv"], code=0,
         says=("6 patches",), check=lambda t, r: (t / "a" / "b" / "x.csv").is_file() or pytest.fail("no file")),
    Case("export-class", "export --class farmland (not a class)",
         lambda t, i, m: ["export", i.patches, "--out", t / "out", "--class", "farmland"], usage=True,
         says=("'farmland' is not one of", "farmland_construction"), names="--class"),
    Case("review-export-read-only", "review export into a read-only folder",
         lambda t, i, m: ["review", "export", i.ledger, "--out", read_only(t, m) / "accepted.xlsx"],
         says=("cannot be written", "writable"), names="accepted.xlsx", check=_nothing_in("ro")),
    Case("stats-chart-read-only", "review stats --chart into a read-only folder",
         lambda t, i, m: ["review", "stats", i.ledger, "--chart", read_only(t, m) / "stats.png"],
         says=("cannot be written",), names="stats.png"),
    Case("stats-chart-not-png", "review stats --chart c.txt (a PNG under another name)",
         lambda t, i, m: ["review", "stats", i.ledger, "--chart", t / "c.txt"], usage=True, says=("ending in .png",),
         names="--chart"),
    Case("package-out-a-file", "review package --out of a file",
         lambda t, i, m: last((t / "f").write_text(""), ["review", "package", i.ledger, "--out", t / "f"]),
         says=("cannot be made a folder",), names="f"),
    Case("serve-rules-missing", "review serve --rules of a folder that is not there",
         lambda t, i, m: ["review", "serve", i.ledger, "--rules", t / "nope"], usage=True, says=("is not a folder",),
         names="--rules"),
    Case("serve-ledger-missing", "review serve of a ledger that is not there",
         lambda t, i, m: ["review", "serve", t / "nope.sqlite"], says=("ledger not found",), names="nope.sqlite"),
    # ---- train, eval
    Case("train-dataset-missing", "train --dataset of a folder that is not there (used to train without it)",
         lambda t, i, m: ["train", "--dataset", t / "nope", "--out", t / "m.pt", "--steps", "1"], usage=True,
         says=("is not a folder",), names="--dataset"),
    Case("train-out-under-a-file", "train --out under a file (found after training, before)",
         lambda t, i, m: last((t / "f").write_text(""), ["train", "--out", t / "f" / "m.pt", "--steps", "1"]),
         usage=True, says=("its folder cannot be made",), names="--out"),
    Case("train-out-a-folder", "train --out of a folder",
         lambda t, i, m: ["train", "--out", t, "--steps", "1"], usage=True, says=("is a folder",), names="--out"),
    Case("train-config-missing", "train --config of a file that is not there",
         lambda t, i, m: ["train", "--config", t / "n.yaml", "--out", t / "m.pt"], says=("config file not found",),
         names="n.yaml"),
    Case("eval-model-missing", "eval --model of a file that is not there",
         lambda t, i, m: ["eval", _dataset(t), "--model", t / "nope.pt", "--detector", "model"],
         says=("weights file not found", "--model"), names="nope.pt"),
    Case("eval-dataset-missing", "eval of a dataset folder that is not there", lambda t, i, m: ["eval", t / "nope"],
         says=("no 'A' folder", "A/, B/ and label/"), names="nope"),
    Case("option-model-run", "a run with the model and --device tpu",
         lambda t, i, m: run_pair(t, i, "--device", "tpu"), usage=True, says=("'tpu'",), names="--device"),
]
