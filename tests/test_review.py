"""The review ledger: state machine, append-only events, dedup across periods, bulk, concurrency, web API."""

import multiprocessing as mp
import sqlite3

import pytest
from starlette.testclient import TestClient

from satcheck.review.ledger import Ledger
from satcheck.review.server import create_app
from satcheck.review.states import STATES, TRANSITIONS, ConflictError, TransitionError, check
from tests.review_data import BASE, page_client, patch_file

REASONS = {"seasonal", "other"}


@pytest.mark.parametrize("frm, to", [(f, t) for f in TRANSITIONS for t in STATES])
def test_state_machine(frm, to):
    reason = "seasonal" if to == "rejected" else None
    if to in TRANSITIONS[frm]:
        check("P", frm, to, reason, REASONS)
    else:
        with pytest.raises(TransitionError):
            check("P", frm, to, reason, REASONS)


def test_rejection_needs_a_known_reason():
    with pytest.raises(TransitionError, match="needs a reason"):
        check("P", "pending", "rejected", None, REASONS)
    with pytest.raises(TransitionError, match="not a rejection reason"):
        check("P", "pending", "rejected", "boredom", REASONS)


@pytest.fixture()
def ledger(tmp_path):
    f = patch_file(tmp_path / "p1.gpkg", "2026-08", [("0001", "farmland_construction", (0, 0, 20, 20)),
                                                    ("0002", "farmland_construction", (100, 0, 20, 20)),
                                                    ("0003", "illegal_mining", (300, 0, 50, 50))])
    lg = Ledger(tmp_path / "ledger.sqlite")
    lg.import_patches(f)
    yield lg
    lg.close()


def test_events_are_append_only(ledger):
    ledger.decide("360821-202608-0001", "accepted", "wang")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ledger.db.execute("UPDATE events SET reviewer='x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ledger.db.execute("DELETE FROM events")
    assert [e.to_state for e in ledger.history("360821-202608-0001")] == ["pending", "accepted"]
    assert ledger.state("360821-202608-0001") == "accepted"


def test_conflict_when_someone_decided_first(ledger):
    ledger.decide("360821-202608-0001", "accepted", "wang", expected="pending")
    with pytest.raises(ConflictError, match="wang set it to accepted"):
        ledger.decide("360821-202608-0001", "rejected", "li", reason="seasonal", expected="pending")


def test_dedup_across_three_periods(ledger, tmp_path):
    ledger.decide("360821-202608-0001", "rejected", "wang", reason="seasonal")
    ledger.decide("360821-202608-0002", "accepted", "wang")
    p2 = patch_file(tmp_path / "p2.gpkg", "2026-09", [
        ("0001", "farmland_construction", (0, 0, 21, 20)),     # rejected place, unchanged: not raised again
        ("0002", "farmland_construction", (100, 0, 30, 20)),   # accepted case grew 50 %: back to review
        ("0003", "out_of_bounds_mining", (300, 0, 50, 50)),    # class changed: back to review
        ("0004", "farmland_construction", (600, 0, 20, 20)),   # new place
    ])
    r = ledger.import_patches(p2)
    assert (r.added, r.rereview, r.linked) == (1, 2, 1)
    assert ledger.state("360821-202609-0001") == "linked"
    assert ledger.patch("360821-202609-0001")["prev_patch_id"] == "360821-202608-0001"
    assert ledger.state("360821-202609-0002") == "pending"
    assert ledger.state("360821-202609-0003") == "pending"
    # Third period: the rejected place grows a lot, so it comes back; the grown case is unchanged now.
    p3 = patch_file(tmp_path / "p3.gpkg", "2026-10", [("0001", "farmland_construction", (0, 0, 40, 20)),
                                                     ("0002", "farmland_construction", (100, 0, 30, 20))])
    r = ledger.import_patches(p3)
    assert (r.added, r.rereview, r.linked) == (0, 1, 1)
    assert ledger.patch("360821-202610-0001")["prev_patch_id"] == "360821-202609-0001"
    assert ledger.patch("360821-202610-0002")["prev_patch_id"] == "360821-202609-0002"


def test_import_is_idempotent(ledger, tmp_path):
    before = ledger.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    r = ledger.import_patches(tmp_path / "p1.gpkg")
    assert r.already_imported
    assert ledger.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == before


def test_bulk_csv_all_or_nothing(ledger, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("patch_id,decision,reason,note\n360821-202608-0001,accept,,\n360821-202608-0002,reject,,no reason\n",
                   encoding="utf-8")
    with pytest.raises(TransitionError, match=r"bad.csv: row 3: .*needs a reason.*nothing was applied"):
        ledger.bulk(bad, "wang")
    assert ledger.state("360821-202608-0001") == "pending"
    good = tmp_path / "good.csv"
    good.write_text("patch_id,decision,reason,note\n360821-202608-0001,accept,,\n"
                    "360821-202608-0002,reject,seasonal,稻田收割\n360821-202608-0001,verified_illegal,,\n",
                    encoding="utf-8")
    assert len(ledger.bulk(good, "wang")) == 3
    assert ledger.state("360821-202608-0001") == "verified_illegal"


def _flip(path, ids, rounds, q):
    lg = Ledger(path)
    n = 0
    for _ in range(rounds):
        for pid in ids:
            lg.decide(pid, "deferred", "proc")
            lg.decide(pid, "pending", "proc")
            n += 2
    q.put(n)


def test_two_processes_lose_nothing(tmp_path):
    f = patch_file(tmp_path / "p.gpkg", "2026-08", [(f"{i:04d}", "farmland_construction", (i * 50, 0, 20, 20))
                                                    for i in range(6)])
    path = tmp_path / "l.sqlite"
    Ledger(path).import_patches(f)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ids = [f"360821-202608-{i:04d}" for i in range(6)]
    procs = [ctx.Process(target=_flip, args=(path, ids[:3], 10, q)), ctx.Process(target=_flip, args=(path, ids[3:], 10, q))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    written = q.get() + q.get()
    lg = Ledger(path)
    assert lg.db.execute("SELECT COUNT(*) FROM events WHERE reviewer='proc'").fetchone()[0] == written == 120


# ------------------------------------------------------------------------------------------------ web API

def test_api_decide_conflict_and_escaping(ledger):
    client = page_client(create_app(ledger.path))
    rows = client.get("/api/patches").json()
    assert rows["progress"] == {"reviewed": 0, "total": 3}
    pid = "360821-202608-0001"
    note = '<img src=x onerror="alert(1)">'
    r = client.post(f"/api/patches/{pid}/decision",
                    json={"decision": "accept", "reviewer": "wang", "expected": "pending", "note": note})
    assert r.status_code == 200 and r.json()["progress"]["reviewed"] == 1
    r = client.post(f"/api/patches/{pid}/decision",
                    json={"decision": "reject", "reason": "seasonal", "reviewer": "li", "expected": "pending"})
    assert r.status_code == 409 and "wang" in r.json()["error"]
    assert client.post(f"/api/patches/{pid}/decision", json={"decision": "accept", "reviewer": ""}).status_code == 400
    detail = client.get(f"/api/patches/{pid}").json()
    assert detail["history"][-1]["note"] == note  # stored verbatim; the page shows it as text
    page = client.get("/").text
    assert "onerror" not in page
    js = client.get("/static/review.js").text
    assert "innerHTML" not in js


def test_token_required_off_loopback(ledger):
    client = TestClient(create_app(ledger.path, token="s3cret"), base_url=BASE)
    assert client.get("/api/patches").status_code == 401
    assert client.get("/api/patches", headers={"X-Satcheck-Token": "s3cret"}).status_code == 200
    assert client.get("/static/review.js").status_code == 401
    assert client.get("/?token=s3cret").status_code == 200  # sets the cookie that the page's requests carry
    assert client.get("/static/review.js").status_code == 200


def test_serve_refuses_public_host_without_token(ledger):
    from typer.testing import CliRunner

    from satcheck.cli import app

    r = CliRunner().invoke(app, ["review", "serve", str(ledger.path), "--host", "0.0.0.0"])
    assert r.exit_code != 0 and "--token" in r.output
