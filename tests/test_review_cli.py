"""Issue 18, review side, through the command line: undo, bad input, portable ledgers, exports and the field package."""

import csv
import json
import shutil
import sqlite3
import xml.etree.ElementTree as ET
import zipfile

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from satcheck.cli import app
from satcheck.review.ledger import Ledger
from satcheck.review.server import create_app
from tests.review_data import page_client, patch_file

runner = CliRunner()
P1, P2, P3 = "360821-202610-0001", "360821-202610-0002", "360821-202610-0003"


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _ok(r):
    assert r.exit_code == 0, r.output
    return r.output


def _error(r, *needles):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in r.output, r.output
    return r.output


def _run_folder(root, chips=True):
    """A run folder as `satcheck run --rules` leaves it: patches.gpkg with chips/ beside it."""
    run = root / "runs" / "2026-10"
    run.mkdir(parents=True)
    f = patch_file(run / "patches.gpkg", "2026-10", [("0001", "farmland_construction", (0, 0, 20, 20)),
                                                     ("0002", "farmland_construction", (100, 0, 20, 20)),
                                                     ("0003", "illegal_mining", (300, 0, 50, 50))])
    gdf = gpd.read_file(f, layer="patches")
    gdf["change_type"] = ["building", "hardened", "excavation"]
    gdf["farmland_class"] = ["0101", "0102", None]
    gdf["on_basic_farmland"] = [True, False, False]
    gdf["basic_farmland_area_m2"] = [120.0, 0.0, np.nan]
    gdf["permit_no"] = [None, None, np.nan]
    from satcheck.export import write_gpkg

    write_gpkg(gdf, f)
    if chips:
        (run / "chips").mkdir()
        for pid in (P1, P2, P3):
            for w, colour in (("before", (40, 90, 40)), ("after", (150, 140, 120)), ("locator", (20, 20, 80))):
                Image.new("RGB", (256, 256), colour).save(run / "chips" / f"{pid}_{w}.png")
    return f


@pytest.fixture()
def ledger(tmp_path):
    f = _run_folder(tmp_path / "office")
    lg = tmp_path / "office" / "ledger.sqlite"
    _ok(_run("review", "import", lg, f))
    return lg


# ------------------------------------------------------------------------------------------- 4. undo

def test_reopen_undoes_the_latest_decision_as_a_new_event(ledger):
    _ok(_run("review", "accept", ledger, P1, "--by", "张三"))
    out = _ok(_run("review", "reopen", ledger, P1, "--by", "张三", "--note", "按错了"))
    assert "accepted → pending" in out
    with Ledger(ledger) as lg:
        h = lg.history(P1)
        assert lg.state(P1) == "pending"
    assert [(e.from_state, e.to_state) for e in h] == [("new", "pending"), ("pending", "accepted"), ("accepted", "pending")]
    assert h[-1].note == "按错了" and h[-1].reason == "undo" and h[-1].reviewer == "张三"
    # Undo twice walks back, never redoes; the import itself cannot be undone.
    _ok(_run("review", "defer", ledger, P2, "--by", "li"))
    _ok(_run("review", "accept", ledger, P2, "--by", "li"))
    _ok(_run("review", "reopen", ledger, P2, "--by", "li"))
    _ok(_run("review", "reopen", ledger, P2, "--by", "li"))
    with Ledger(ledger) as lg:
        assert lg.state(P2) == "pending"
        assert len(lg.history(P2)) == 5
    _error(_run("review", "reopen", ledger, P2, "--by", "li"), "nothing to undo")
    # A final state can be undone too, and field results.
    _ok(_run("review", "reject", ledger, P3, "--by", "li", "--reason", "seasonal"))
    _ok(_run("review", "reopen", ledger, P3, "--by", "li"))
    _ok(_run("review", "accept", ledger, P3, "--by", "li"))
    _ok(_run("review", "field", ledger, P3, "--result", "verified_illegal", "--by", "wang"))
    _ok(_run("review", "reopen", ledger, P3, "--by", "wang"))
    with Ledger(ledger) as lg:
        assert lg.state(P3) == "accepted"
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            lg.db.execute("DELETE FROM events")


def test_undo_on_the_page_api_and_its_conflict(ledger):
    client = page_client(create_app(ledger))
    r = client.post(f"/api/patches/{P1}/decision", json={"decision": "accept", "reviewer": "wang", "expected": "pending"})
    assert r.status_code == 200
    stale = client.post(f"/api/patches/{P1}/decision", json={"decision": "undo", "reviewer": "li", "expected": "pending"})
    assert stale.status_code == 409
    r = client.post(f"/api/patches/{P1}/decision", json={"decision": "undo", "reviewer": "li", "expected": "accepted"})
    assert r.status_code == 200 and r.json()["event"]["to_state"] == "pending"
    assert r.json()["progress"]["reviewed"] == 0
    assert client.post(f"/api/patches/{P1}/decision", json={"decision": "undo", "reviewer": "li"}).status_code == 400


# ------------------------------------------------------------------------------------------- 5. bad input

def _csv(path, text, encoding):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_bulk_reads_excel_csv_encodings(ledger, tmp_path, encoding):
    f = _csv(tmp_path / "d.csv", f"patch_id,decision,reason,note\r\n{P1},accept,,新建厂房\r\n"
                                 f"{P2},reject,seasonal,稻田收割\r\n", encoding)
    _ok(_run("review", "bulk", ledger, f, "--by", "张三"))
    with Ledger(ledger) as lg:
        assert lg.history(P1)[-1].note == "新建厂房"
        assert lg.history(P2)[-1].note == "稻田收割" and lg.state(P2) == "rejected"


def test_bulk_reopen_undoes_like_review_reopen(ledger, tmp_path):
    """A reopen row takes back the patch's latest decision, one made earlier in the same CSV too, as an undo event;
    a reopen with nothing to undo stops the whole CSV."""
    _ok(_run("review", "accept", ledger, P1, "--by", "li"))
    _ok(_run("review", "defer", ledger, P3, "--by", "li"))
    _ok(_run("review", "reject", ledger, P3, "--by", "li", "--reason", "seasonal"))
    f = _csv(tmp_path / "d.csv", f"patch_id,decision,reason,note\r\n{P1},reopen,,按错了\r\n"
                                 f"{P2},accept,,\r\n{P2},reopen,,\r\n{P3},reopen,,\r\n", "gbk")
    _ok(_run("review", "bulk", ledger, f, "--by", "张三"))
    with Ledger(ledger) as lg:
        assert [lg.state(p) for p in (P1, P2, P3)] == ["pending", "pending", "deferred"]
        h1, h2, h3 = (lg.history(p) for p in (P1, P2, P3))
    assert [(e.from_state, e.to_state, e.reason) for e in h1[1:]] == [("pending", "accepted", None),
                                                                       ("accepted", "pending", "undo")]
    assert h1[-1].note == "按错了" and h1[-1].reviewer == "张三"
    assert [(e.from_state, e.to_state, e.reason) for e in h2[1:]] == [("pending", "accepted", None),
                                                                       ("accepted", "pending", "undo")]
    assert (h3[-1].from_state, h3[-1].to_state, h3[-1].reason) == ("rejected", "deferred", "undo")
    again = _csv(tmp_path / "e.csv", f"patch_id,decision\n{P3},accept\n{P2},reopen\n", "utf-8")
    _error(_run("review", "bulk", ledger, again, "--by", "x"), "e.csv", "row 3", "nothing to undo", "nothing was applied")
    with Ledger(ledger) as lg:
        assert lg.state(P3) == "deferred" and len(lg.history(P2)) == 3


def test_bulk_chinese_headers_from_excel(ledger, tmp_path):
    f = _csv(tmp_path / "d.csv", f"图斑编号,决定,原因,备注\r\n{P1},accept,,现场有新房\r\n", "gbk")
    _ok(_run("review", "bulk", ledger, f, "--by", "张三"))
    with Ledger(ledger) as lg:
        assert lg.state(P1) == "accepted"


def test_bulk_other_encodings_are_one_line_errors(ledger, tmp_path):
    f = _csv(tmp_path / "u16.csv", f"patch_id,decision\n{P1},accept\n", "utf-16")
    out = _error(_run("review", "bulk", ledger, f, "--by", "x"), "u16.csv", "UTF-16", "CSV UTF-8")
    assert "Traceback" not in out and len(out.strip().splitlines()) <= 2
    bad = tmp_path / "cols.csv"
    bad.write_text("id;what\n1;2\n", encoding="utf-8")
    _error(_run("review", "bulk", ledger, bad, "--by", "x"), "cols.csv", "patch_id", "decision")
    with Ledger(ledger) as lg:
        assert lg.state(P1) == "pending"


def test_unknown_filters_list_the_valid_values(ledger):
    out = _error(_run("review", "list", ledger, "--state", "acepted"))
    assert "accepted" in out and "pending" in out
    out = _error(_run("review", "list", ledger, "--period", "202610"))
    assert "2026-10" in out and "YYYY-MM" in out
    out = _error(_run("review", "list", ledger, "--class", "farmland"))
    assert "farmland_construction" in out
    _error(_run("review", "export", ledger, "--out", ledger.parent / "x.csv", "--state", "acepted"), "accepted")
    assert not (ledger.parent / "x.csv").exists()
    assert "YYYY-MM" in page_client(create_app(ledger)).get("/api/patches?period=202610").json()["error"]
    # A well-formed filter that matches nothing is an empty result, not an error.
    out = _ok(_run("review", "list", ledger, "--period", "2025-01"))
    assert "no patches match" in out


@pytest.mark.parametrize("suffix", ["csv", "gpkg", "kml", "geojson", "xlsx"])
def test_export_of_nothing_is_an_empty_file(ledger, tmp_path, suffix):
    target = tmp_path / f"none.{suffix}"
    out = _ok(_run("review", "export", ledger, "--state", "accepted", "--out", target))
    assert "no patches match" in out and target.is_file()
    if suffix == "csv":
        with open(target, encoding="utf-8-sig") as f:
            assert len(list(csv.reader(f))) == 1  # the header only


# ------------------------------------------------------------------------------------------- 3. portable ledgers

def test_ledger_and_runs_move_together(ledger, tmp_path):
    with Ledger(ledger) as lg:
        before, after, source = lg.db.execute("SELECT chip_before, chip_after, source FROM patches "
                                              "WHERE patch_id=?", (P1,)).fetchone()
    assert before == f"runs/2026-10/chips/{P1}_before.png" and not after.startswith("/")
    assert source == "runs/2026-10/patches.gpkg"
    moved = tmp_path / "elsewhere" / "office"
    shutil.move(str(tmp_path / "office"), moved)
    client = page_client(create_app(moved / "ledger.sqlite"))
    assert client.get(f"/chips/{P1}/before.png").status_code == 200
    assert client.get(f"/api/patches/{P1}").json()["chips"]["after"]["ok"]
    d = json.loads(_ok(_run("review", "show", moved / "ledger.sqlite", P1, "--json")))
    assert d["chips"]["before"]["ok"] and d["chips"]["locator"]["ok"]


def test_a_ledger_with_absolute_paths_still_finds_moved_chips(ledger, tmp_path):
    with Ledger(ledger) as lg:  # as ledgers were written before: absolute paths
        old = ledger.parent / "runs/2026-10/chips" / f"{P1}_before.png"
        lg.db.execute("UPDATE patches SET chip_before = ?", (str(old),))
    moved = tmp_path / "moved"
    shutil.move(str(ledger.parent), moved)
    assert page_client(create_app(moved / "ledger.sqlite")).get(f"/chips/{P1}/before.png").status_code == 200


def test_missing_chips_are_shown_and_a_decision_needs_confirming(ledger):
    shutil.rmtree(ledger.parent / "runs" / "2026-10" / "chips")
    client = page_client(create_app(ledger))
    d = client.get(f"/api/patches/{P1}").json()
    assert d["chips"]["before"]["missing"] and "chips" in d["chips"]["before"]["path"]
    assert client.get(f"/chips/{P1}/before.png").json()["error"].startswith("missing")
    r = client.post(f"/api/patches/{P1}/decision", json={"decision": "accept", "reviewer": "wang", "expected": "pending"})
    assert r.status_code == 428 and r.json()["confirm"] and "missing" in r.json()["error"]
    with Ledger(ledger) as lg:
        assert lg.state(P1) == "pending"
    r = client.post(f"/api/patches/{P1}/decision",
                    json={"decision": "accept", "reviewer": "wang", "expected": "pending", "unseen": True})
    assert r.status_code == 200
    assert client.post(f"/api/patches/{P2}/decision", json={"decision": "defer", "reviewer": "wang"}).status_code == 200
    out = _ok(_run("review", "show", ledger, P2))
    assert "MISSING" in out


# ------------------------------------------------------------------------------------------- 8. to the field

def _decided(ledger):
    _ok(_run("review", "accept", ledger, P1, "--by", "张三", "--note", "新建厂房，占用水田"))
    _ok(_run("review", "reject", ledger, P2, "--by", "李四", "--reason", "seasonal", "--note", "收割"))
    _ok(_run("review", "defer", ledger, P3, "--by", "李四"))
    _ok(_run("review", "accept", ledger, P3, "--by", "李四", "--note", "无证采砂"))


def test_export_carries_reviewer_reason_note_and_time(ledger, tmp_path):
    _decided(ledger)
    _ok(_run("review", "export", ledger, "--out", tmp_path / "all.csv"))
    with open(tmp_path / "all.csv", encoding="utf-8-sig", newline="") as f:
        rows = {r["patch_id"]: r for r in csv.DictReader(f)}
    assert rows[P1]["reviewer"] == "张三" and rows[P1]["note"] == "新建厂房，占用水田" and rows[P1]["status"] == "accepted"
    assert rows[P2]["reason"] == "seasonal" and rows[P2]["reviewer"] == "李四"
    assert rows[P1]["decided_at"].startswith("20")
    _ok(_run("review", "export", ledger, "--out", tmp_path / "all.shp"))
    shp = gpd.read_file(tmp_path / "all.shp")
    assert {"reviewer", "decided_at", "reason", "note"} <= set(shp.columns)


def _all_text(folder):
    text = ""
    for p in folder.iterdir():
        if p.suffix in (".csv", ".kml", ".html"):
            text += p.read_text(encoding="utf-8-sig")
        elif p.suffix == ".xlsx":
            with zipfile.ZipFile(p) as z:
                text += "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml"))
    return text


def test_field_package_of_accepted_patches(ledger, tmp_path):
    _decided(ledger)
    out_dir = tmp_path / "field"
    out = _ok(_run("review", "package", ledger, "--state", "accepted", "--out", out_dir, "--lang", "zh"))
    assert "2 patches" in out
    for name in ("field_sheet.html", "patches.kml", "patches.gpkg", "patches.csv", "patches.xlsx"):
        assert (out_dir / name).is_file(), name
    html = (out_dir / "field_sheet.html").read_text(encoding="utf-8")
    assert P1 in html and P3 in html and P2 not in html  # the rejected patch stays out
    assert "审核确认" in html and "张三" in html and "新建厂房，占用水田" in html and "暂缓" in html  # decision, history
    assert "审核用" not in html
    gpkg = gpd.read_file(out_dir / "patches.gpkg")
    assert sorted(gpkg["patch_id"]) == [P1, P3] and set(gpkg["status"]) == {"accepted"}
    # Chinese values, never nan / True / None.
    with open(out_dir / "patches.csv", encoding="utf-8-sig", newline="") as f:
        rows = {r["图斑编号"]: r for r in csv.DictReader(f)}
    assert rows[P1]["变化类型"] == "建筑" and rows[P3]["变化类型"] == "挖损"
    assert rows[P1]["状态"] == "审核确认" and rows[P1]["涉及永久基本农田"] == "是" and rows[P3]["涉及永久基本农田"] == "否"
    assert rows[P1]["图斑类型"] == "耕地非农化建设" and rows[P1]["审核人"] == "张三"
    text = _all_text(out_dir)
    for word in ("nan", "None", "True", "False", "construction", "pending", "accepted"):
        assert f">{word}<" not in text and f",{word}," not in text, word
    kml = ET.parse(out_dir / "patches.kml").getroot()
    desc = "".join(d.text for d in kml.iter("{http://www.opengis.net/kml/2.2}description"))
    assert "nan" not in desc and "建筑" in desc
    # Excel keeps text as text: DLBM 0101 and the period 2026-10.
    from openpyxl import load_workbook

    ws = load_workbook(out_dir / "patches.xlsx").active
    head = [c.value for c in ws[1]]
    row = {h: c for h, c in zip(head, ws[2])}
    assert row["地类编码"].value == "0101" and row["地类编码"].data_type == "s"
    assert row["监测期"].value == "2026-10" and row["监测期"].data_type == "s"
    assert row["面积(平方米)"].data_type == "n"


def test_field_package_pdf_and_size(ledger, tmp_path):
    from satcheck.errors import OutputError
    from satcheck.report.sheets import find_cjk_font

    _decided(ledger)
    out_dir = tmp_path / "field"
    _ok(_run("review", "package", ledger, "--out", out_dir))
    html = (out_dir / "field_sheet.html")
    assert "data:image/jpeg;base64," in html.read_text(encoding="utf-8")
    assert html.stat().st_size < 200_000 * 2
    try:
        find_cjk_font()
    except OutputError:
        return
    pdf = out_dir / "field_sheet.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size < 200_000 * 2


def test_package_of_nothing_and_bad_state(ledger, tmp_path):
    out = _ok(_run("review", "package", ledger, "--out", tmp_path / "p"))
    assert "no accepted patches" in out and (tmp_path / "p" / "patches.csv").is_file()
    _error(_run("review", "package", ledger, "--out", tmp_path / "q", "--state", "rejected"), "accepted")
