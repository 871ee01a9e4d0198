"""Issue 19: while another process holds the ledger's write lock (a long import), the review page's decisions are
answered 503 with Retry-After and a JSON error, nothing changed, and the page retries saying so; reads go on.
Through a real HTTP client against a server started here, the lock held by another sqlite connection."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import satcheck.review.server as server
from satcheck.review.ledger import Ledger
from tests.review_data import patch_file
from tests.test_review_browser import chromium  # noqa: F401 (the fixture: Debian's chromium, or a skip)

PID = "360821-202608-0001"


@pytest.fixture()
def ledger(tmp_path) -> Path:
    f = patch_file(tmp_path / "p1.gpkg", "2026-08", [("0001", "farmland_construction", (0, 0, 20, 20)),
                                                    ("0002", "farmland_construction", (100, 0, 20, 20))])
    with Ledger(tmp_path / "ledger.sqlite") as lg:
        lg.import_patches(f)
    return tmp_path / "ledger.sqlite"


@contextlib.contextmanager
def _serving(ledger: Path, reviewer: str = ""):
    """The review app under uvicorn on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = server.create_app(ledger, host="127.0.0.1", port=port, reviewer=reviewer)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    end = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < end and t.is_alive(), "the review server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(10)


def _call(base: str, path: str, body: dict | None = None, csrf: str = "") -> tuple[int, dict, dict]:
    """(status, headers by lower-case name, JSON body) of a GET, or with ``body`` a POST as the page sends it."""
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Origin": base,
                                          "X-Satcheck-Csrf": csrf})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read())


def _csrf(base: str) -> str:
    with urllib.request.urlopen(base + "/", timeout=30) as r:
        page = r.read().decode()
    return json.loads(re.search(r'id="satcheck-config">(.*?)</script>', page, re.S).group(1))["csrf"]


def _events(path: Path) -> int:
    with Ledger(path) as lg:
        return lg.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


@contextlib.contextmanager
def _locked(path: Path):
    """Another process writing the ledger and not letting go (as a long import's transaction does)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_decision_on_a_busy_ledger_is_503_with_retry_after(ledger):
    accept = {"decision": "accept", "reviewer": "wang", "expected": "pending"}
    with _serving(ledger) as base:
        csrf = _csrf(base)
        with _locked(ledger):
            t0 = time.perf_counter()
            status, headers, body = _call(base, f"/api/patches/{PID}/decision", accept, csrf)
            waited = time.perf_counter() - t0
            assert status == 503, body
            assert headers["retry-after"] == str(server.RETRY_AFTER_S)
            assert headers["content-type"] == "application/json" and body["busy"] is True
            assert "ledger busy" in body["error"] and "nothing was changed" in body["error"]
            assert str(ledger.parent) not in body["error"]
            assert server.BUSY_WAIT_S - 0.5 < waited < server.BUSY_WAIT_S + 5
            undo = _call(base, f"/api/patches/{PID}/decision", {"decision": "undo", "reviewer": "wang"}, csrf)
            assert undo[0] == 503 and undo[1]["retry-after"]
            status, _, listed = _call(base, "/api/patches")  # reads go on while the lock is held (WAL)
            assert status == 200 and len(listed["patches"]) == 2
            assert _call(base, f"/api/patches/{PID}")[0] == 200
        assert _events(ledger) == 2  # nothing was changed
        status, _, body = _call(base, f"/api/patches/{PID}/decision", accept, csrf)  # the page's retry
        assert status == 200, body
        assert body["event"]["to_state"] == "accepted" and _events(ledger) == 3


def test_a_decision_waiting_for_the_lock_holds_up_no_other_request(ledger, monkeypatch):
    monkeypatch.setattr(server, "BUSY_WAIT_S", 6.0)
    with _serving(ledger) as base:
        csrf = _csrf(base)
        with _locked(ledger):
            answer: list = []
            t = threading.Thread(target=lambda: answer.append(_call(
                base, f"/api/patches/{PID}/decision", {"decision": "defer", "reviewer": "li"}, csrf)))
            t.start()
            time.sleep(0.5)  # the decision is waiting for the lock now
            status, _, _ = _call(base, "/api/patches")
            assert status == 200 and t.is_alive(), "a read waited for the decision waiting for the lock"
            t.join(30)
        assert answer[0][0] == 503


def test_the_page_retries_a_busy_answer_and_says_so(chromium, ledger):  # noqa: F811 (the fixture imported)
    """In a real browser: a decision made while the ledger is locked says 'ledger busy, retrying' and goes
    through once the lock is let go, without a second key press."""
    from playwright.sync_api import sync_playwright

    from tests.test_review_browser import FLAGS, _page, _wait

    with _serving(ledger, reviewer="wang") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        page = _page(browser, 1200, 800)
        page.goto(base + "/")
        _wait(page, "document.getElementById('d-title').textContent.includes('0001')")
        with _locked(ledger):
            page.keyboard.press("a")
            _wait(page, "document.getElementById('message').textContent.startsWith('ledger busy, retrying')")
            assert _events(ledger) == 2
        _wait(page, "document.getElementById('progress').textContent.startsWith('1 / 2')")
        assert "accepted" in page.evaluate("document.getElementById('message').textContent")
        assert page.csp == []
        browser.close()
    with Ledger(ledger) as lg:
        assert lg.state(PID) == "accepted"
