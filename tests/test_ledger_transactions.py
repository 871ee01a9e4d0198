"""Issue 19, ledger side, through the command line: multi-id and bulk decisions are all or nothing (killed too),
an import writes in short transactions (decisions wait for it and say so, a lock that is not released is a
one-line error), a killed import resumes, and a damaged ledger or a full disk is a one-line error naming the
cause."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from satcheck.cli import app
from satcheck.review.ledger import _is_busy  # what the ledger itself counts as another writer holding the lock
from tests.cli_results import invoke as _run
from tests.cli_results import ok as _ok
from tests.cli_results import one_line_error as _one_line_error
from tests.cli_results import runner
from tests.review_data import patch_file

ROOT = Path(__file__).resolve().parents[1]
P1, P2, P3 = "360821-202610-0001", "360821-202610-0002", "360821-202610-0003"








def _grid(n: int, shift: float = 0.0) -> list:
    """``n`` patches 20 m square on a 30 m grid (``shift`` moves them all east, so they stay the same places)."""
    side = int(n ** 0.5) + 1
    return [(f"{i:04d}", "farmland_construction", ((i % side) * 30.0 + shift, (i // side) * 30.0, 20, 20))
            for i in range(1, n + 1)]


def _states(lg: Path) -> dict[str, str]:
    with sqlite3.connect(lg) as db:
        return dict(db.execute("SELECT e.patch_id, e.to_state FROM events e WHERE e.id = "
                               "(SELECT MAX(id) FROM events WHERE patch_id = e.patch_id)").fetchall())


def _count(lg: Path, what: str = "events") -> int:
    db = sqlite3.connect(lg, timeout=30)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {what}").fetchone()[0]
    finally:
        db.close()


@pytest.fixture()
def ledger(tmp_path) -> Path:
    f = patch_file(tmp_path / "p.gpkg", "2026-10", _grid(3))
    lg = tmp_path / "ledger.sqlite"
    _ok(_run("review", "import", lg, f))
    return lg


# ------------------------------------------------------------------------------------------- all or nothing
def test_accept_with_an_unknown_id_applies_none(ledger):
    line = _one_line_error(_run("review", "accept", ledger, P1, P2, "NOPE", "--by", "wang"),
                           "NOPE", "none of the 3 decisions was applied")
    assert "satcheck review list" in line
    assert set(_states(ledger).values()) == {"pending"}
    out = _ok(_run("review", "accept", ledger, P1, P2, "--by", "wang"))  # the same ids without the wrong one
    assert f"{P1}: pending → accepted" in out and f"{P2}: pending → accepted" in out


def test_a_decision_its_state_does_not_allow_applies_none(ledger):
    _ok(_run("review", "reject", ledger, P3, "--by", "wang", "--reason", "seasonal"))
    _one_line_error(_run("review", "accept", ledger, P1, P2, P3, "--by", "li"), P3, "cannot go from rejected",
                    "none of the 3")
    assert _states(ledger) == {P1: "pending", P2: "pending", P3: "rejected"}


def test_an_id_given_twice_is_decided_once(ledger):
    _ok(_run("review", "accept", ledger, P1, P1, "--by", "wang"))
    assert _count(ledger) == 4  # three imports and one decision


def test_reopen_of_several_is_all_or_nothing(ledger):
    _ok(_run("review", "accept", ledger, P1, P2, "--by", "wang"))
    _one_line_error(_run("review", "reopen", ledger, P1, P2, P3, "--by", "wang"), P3, "nothing to undo",
                    "none of the 3")
    assert _states(ledger) == {P1: "accepted", P2: "accepted", P3: "pending"}
    out = _ok(_run("review", "reopen", ledger, P1, P2, "--by", "wang"))
    assert out.count("accepted → pending (undoes wang's decision") == 2


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "satcheck.cli", *map(str, args)]


@pytest.mark.slow
def test_killed_long_decision_leaves_none_applied_and_can_be_rerun(tmp_path):
    """kill -9 of `review accept` (and `review reopen`) of 1,500 ids at random moments: every patch or none moved;
    a command killed before it committed is the same command again."""
    n = 1500
    f = patch_file(tmp_path / "p.gpkg", "2026-10", _grid(n))
    lg = tmp_path / "ledger.sqlite"
    _ok(_run("review", "import", lg, f))
    ids = [f"360821-202610-{i:04d}" for i in range(1, n + 1)]
    rng = random.Random(19)
    events = _count(lg)
    for attempt in range(3):
        accepted = set(_states(lg).values()) == {"accepted"}
        cmd = _cli("review", "reopen" if accepted else "accept", lg, *ids, "--by", "wang")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.time() + rng.uniform(0.5, 8.0)  # most kills land before the commit, some after
        while time.time() < deadline and proc.poll() is None and _count(lg) == events:
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        now = _count(lg)
        assert now in (events, events + n), f"attempt {attempt}: {now - events} of {n} decisions applied"
        states = set(_states(lg).values())
        assert len(states) == 1, states
        if now == events:  # killed before it committed: the same command finishes the job
            r = runner.invoke(app, [str(a) for a in cmd[3:]])
            _ok(r)
            now = _count(lg)
            assert now == events + n
        events = now


def _writing(lg: Path) -> bool:
    """Whether another process holds the ledger's write lock now (taken and let go at once where free)."""
    db = sqlite3.connect(lg, timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if not _is_busy(exc):
            raise
        return True
    finally:
        db.close()


@pytest.mark.slow
def test_killed_bulk_leaves_none_applied_and_the_same_command_finishes_it(tmp_path):
    """kill -9 of `review bulk` of a 1,500-row CSV (accept and reject, then reopen of them all) at random moments,
    half of them aimed inside its transaction: every row applied or none; the same command again applies them all
    where none was, and nothing where all were (refused, so no row is applied twice)."""
    n = 1500
    lg = tmp_path / "ledger.sqlite"
    _ok(_run("review", "import", lg, patch_file(tmp_path / "p.gpkg", "2026-10", _grid(n))))
    ids = [f"360821-202610-{i:04d}" for i in range(1, n + 1)]
    decided = {pid: "rejected" if i % 3 == 0 else "accepted" for i, pid in enumerate(ids)}
    csvs = {"pending": tmp_path / "decide.csv", "decided": tmp_path / "reopen.csv"}
    csvs["pending"].write_text("patch_id,decision,reason,note\n" + "".join(
        f"{pid},{'reject,seasonal' if to == 'rejected' else 'accept,'},bulk {pid}\n" for pid, to in decided.items()),
        encoding="utf-8")
    _csv(csvs["decided"], [(pid, "reopen") for pid in ids])
    rng = random.Random(1519)
    events, inside, start = _count(lg), 0, time.monotonic()
    for attempt in range(6):
        if attempt >= 3 and time.monotonic() - start > 30:  # bounded: three kills at least, then while time is left
            break
        before = _states(lg)
        was = "pending" if set(before.values()) == {"pending"} else "decided"
        assert was == "pending" or before == decided, f"attempt {attempt}: a mixture of states"
        cmd = _cli("review", "bulk", lg, csvs[was], "--by", "wang")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        aimed, seen_writing = attempt % 2 == 0, False
        deadline = time.time() + (30 if aimed else rng.uniform(0.2, 2.5))  # not aimed: start-up, reading, writing
        while time.time() < deadline and proc.poll() is None and _count(lg) == events:
            if aimed and _writing(lg):  # nothing else writes it: the bulk holds its transaction open
                seen_writing = True
                time.sleep(rng.uniform(0, 0.03))
                break
            time.sleep(0.002 if aimed else 0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        now, states = _count(lg), _states(lg)
        assert now in (events, events + n), f"attempt {attempt}: {now - events} of {n} rows applied"
        if now == events:
            assert states == before, f"attempt {attempt}: no event written, yet states changed"
            inside += seen_writing
        else:
            assert states == (decided if was == "pending" else {pid: "pending" for pid in ids}), attempt
        r = runner.invoke(app, [str(a) for a in cmd[3:]])  # the same command again
        if now == events:  # killed before it committed: it finishes the job
            assert f"{n} decisions applied" in _ok(r)
            now = _count(lg)
        else:  # it had committed: refused, nothing applied twice
            _one_line_error(r, "row 2", "nothing was applied")
        assert now == _count(lg) == events + n, f"attempt {attempt}"
        events = now
    assert inside >= 1, "no kill landed inside the bulk's transaction; aim later"
    with sqlite3.connect(lg) as db:  # each row once per run of it: one event per patch and per CSV applied
        per_patch = {c for (c,) in db.execute("SELECT COUNT(*) FROM events GROUP BY patch_id")}
    assert per_patch == {1 + (events - n) // n}


# ------------------------------------------------------------------------------------------- short transactions
def test_a_decision_that_cannot_get_the_lock_is_a_one_line_error(ledger, monkeypatch, tmp_path):
    import satcheck.review.ledger as ledger_mod

    monkeypatch.setattr(ledger_mod, "BUSY_TIMEOUT_S", 0.3)
    holder = sqlite3.connect(ledger, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
    try:
        t0 = time.perf_counter()
        _one_line_error(_run("review", "accept", ledger, P1, "--by", "wang"), str(ledger), "busy",
                        "nothing was changed", "run the command again")
        assert time.perf_counter() - t0 < 10
        f = patch_file(tmp_path / "p2.gpkg", "2026-11", _grid(2))
        _one_line_error(_run("review", "import", ledger, f), "busy")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _ok(_run("review", "accept", ledger, P1, "--by", "wang"))


def test_a_decision_waiting_for_the_lock_says_so_then_goes_through(ledger, monkeypatch):
    """Waiting for another process's write lock, a decision says so on stderr after a second (before: silent for
    up to BUSY_TIMEOUT_S, as if hung), then goes through once the lock is let go; one that gets the lock at once
    says nothing, and one whose wait runs out is still the one-line busy error."""
    import satcheck.review.ledger as ledger_mod

    holder = sqlite3.connect(ledger, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(2.0, lambda: holder.execute("ROLLBACK"))  # another writer, done after 2 s
    release.start()
    try:
        t0 = time.perf_counter()
        r = _run("review", "accept", ledger, P1, "--by", "wang")
        waited = time.perf_counter() - t0
    finally:
        release.join()
    assert f"{P1}: pending → accepted" in _ok(r) and waited > 1.5
    said = r.stderr.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(f"waiting for {ledger}: another process (an import, another "
                                                 "reviewer) is writing it"), said
    assert "waiting" not in r.stdout

    r = _run("review", "defer", ledger, P2, "--by", "wang")  # nobody else writing: not a word about waiting
    assert "waiting" not in _ok(r) and not r.stderr

    monkeypatch.setattr(ledger_mod, "BUSY_TIMEOUT_S", 1.8)
    holder.execute("BEGIN IMMEDIATE")  # and now not letting go
    try:
        r = _run("review", "bulk", ledger, _csv(ledger.parent / "d.csv", [(P3, "accept")]), "--by", "wang")
        _one_line_error(r, "busy", "nothing was changed")
        assert r.stderr.startswith("waiting for ")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _states(ledger)[P3] == "pending"


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("patch_id,decision,reason,note\n" + "".join(f"{p},{d},,\n" for p, d in rows), encoding="utf-8")
    return path


@pytest.mark.slow
def test_decisions_go_through_while_a_large_import_runs(tmp_path, monkeypatch):
    """The import writes in short transactions: a decision made meanwhile waits a moment, never the whole import
    (before: one transaction of minutes, every decision meanwhile 'database is locked')."""
    import satcheck.review.ledger as ledger_mod

    n = 6000
    lg = tmp_path / "ledger.sqlite"
    _ok(_run("review", "import", lg, patch_file(tmp_path / "p1.gpkg", "2026-09", _grid(n))))
    later = patch_file(tmp_path / "p2.gpkg", "2026-10", _grid(n, shift=2.0))  # the same places: all linked
    monkeypatch.setattr(ledger_mod, "BUSY_TIMEOUT_S", 5.0)  # far longer than a chunk, far shorter than the import
    before = _count(lg)
    proc = subprocess.Popen(_cli("review", "import", lg, later), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        while proc.poll() is None and _count(lg) == before:  # until the import has begun writing
            time.sleep(0.01)
        during, i = 0, 1
        while proc.poll() is None:
            t0 = time.perf_counter()
            _ok(_run("review", "accept", lg, f"360821-202609-{i:04d}", "--by", "wang"))
            if proc.poll() is None:
                during += 1
                assert time.perf_counter() - t0 < 5
            i += 1
        out, _ = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert f"0 new, 0 known cases back for review, {n} linked" in out
    assert during >= 1, "the import ended before a decision could be made during it; make it larger"
    assert _count(lg, "patches") == 2 * n
    assert _count(lg) == 2 * n + i - 1


@pytest.mark.slow
def test_import_killed_half_way_resumes_with_nothing_lost_or_twice(tmp_path):
    n = 3000
    f = patch_file(tmp_path / "p.gpkg", "2026-10", _grid(n))
    lg = tmp_path / "ledger.sqlite"
    _ok(_run("review", "import", lg, patch_file(tmp_path / "p0.gpkg", "2026-09", _grid(1, shift=-5000.0))))  # elsewhere
    proc = subprocess.Popen(_cli("review", "import", lg, f), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _count(lg, "patches") <= 1:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    got = _count(lg, "patches") - 1
    assert 0 < got < n, f"the import was not caught half-way ({got} of {n} in the ledger when killed)"
    out = _ok(_run("review", "import", lg, f))
    assert f"{n} new, 0 known cases back for review, 0 linked" in out  # counts as if never killed
    assert _count(lg, "patches") == n + 1 and _count(lg) == n + 1  # one patch and one event each
    assert "nothing changed" in _ok(_run("review", "import", lg, f))


# ------------------------------------------------------------------------------------------- damage, full disk
@pytest.mark.parametrize("damage, needle", [
    ("DROP TABLE imports", "no table 'imports'"),
    ("ALTER TABLE patches DROP COLUMN chip_before", "table 'patches' lacks column chip_before"),
    ("DROP VIEW current", "no view 'current'"),
])
def test_damaged_ledger_schema_is_a_one_line_error(ledger, damage, needle):
    with sqlite3.connect(ledger) as db:
        db.execute(damage)
    for args in (("list", ledger), ("accept", ledger, P1, "--by", "wang"), ("stats", ledger)):
        _one_line_error(_run("review", *args), str(ledger), "damaged ledger", needle, "restore it from a backup")


def test_full_disk_during_import_names_the_real_cause(ledger, tmp_path, monkeypatch):
    """SQLite rolls back by itself when the disk is full; the error said 'cannot rollback - no transaction is
    active' and hid why. The disk is made full by capping the ledger's size (SQLITE_FULL, as on a full disk)."""
    real = sqlite3.connect

    def capped(*a, **k):
        db = real(*a, **k)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages + 8}")
        return db

    f = patch_file(tmp_path / "big.gpkg", "2026-11", _grid(1500, shift=5000.0))  # new places
    monkeypatch.setattr(sqlite3, "connect", capped)
    line = _one_line_error(_run("review", "import", ledger, f), str(ledger), "disk is full", "free some space")
    assert "cannot rollback" not in line
    monkeypatch.setattr(sqlite3, "connect", real)
    out = _ok(_run("review", "import", ledger, f))  # space freed: the same import finishes
    assert "1500 new" in out
    assert _count(ledger, "patches") == 1503 and _count(ledger) == 1503
