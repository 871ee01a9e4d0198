"""Issue 19: a ledger whose file has damaged pages (garbage written into its middle: a bad disk, a copy cut short
and patched) is refused when opened, with one line naming the file and the fix, before anything is written. A
query used to meet the damage only when it read those pages: tracebacks ('database disk image is malformed')
from list, stats and export, while accept went on writing into the damaged file."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from satcheck.review.ledger import Ledger, LedgerError
from tests.cli_results import invoke, ok, one_line_error
from tests.review_data import patch_file

N = 2000
PID = "360821-202610-0007"


def _grid(n: int) -> list:
    return [(f"{i + 1:04d}", "farmland_construction", ((i % 50) * 40.0, (i // 50) * 40.0, 20.0, 20.0))
            for i in range(n)]


@pytest.fixture(scope="module")
def _healthy(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("healthy")
    lg = tmp / "ledger.sqlite"
    ok(invoke("review", "import", lg, patch_file(tmp / "p.gpkg", "2026-10", _grid(N))))
    with sqlite3.connect(lg) as db:  # everything in the main file, none in the WAL: what a copy of it holds
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return lg


@pytest.fixture()
def healthy(_healthy, tmp_path) -> Path:
    shutil.copy(_healthy, tmp_path / "ledger.sqlite")
    return tmp_path / "ledger.sqlite"


@pytest.fixture()
def damaged(healthy) -> Path:
    """The ledger with three pages' worth of garbage written over the middle of its file."""
    size = healthy.stat().st_size
    assert size > 40 * 4096, "make the ledger larger: its middle must be patch data"
    with open(healthy, "r+b") as f:
        f.seek(size // 2)
        f.write(random.Random(19).randbytes(3 * 4096))
    return healthy


def test_a_healthy_ledger_opens(healthy):
    with Ledger(healthy, create=False) as lg:
        assert lg.db.execute("SELECT COUNT(*) FROM patches").fetchone()[0] == N


@pytest.mark.parametrize("args", [
    ("list", "{lg}"), ("stats", "{lg}"), ("show", "{lg}", PID), ("accept", "{lg}", PID, "--by", "wang"),
    ("reject", "{lg}", PID, "--by", "wang", "--reason", "seasonal"), ("export", "{lg}", "--out", "{tmp}/a.csv"),
])
def test_a_ledger_with_damaged_pages_is_a_one_line_error(damaged, args):
    before = damaged.read_bytes()
    line = one_line_error(invoke("review", *(a.format(lg=damaged, tmp=damaged.parent) for a in args)),
                          str(damaged), "damaged ledger file", "nothing was changed", "restore it from a backup")
    assert "satcheck cannot repair" in line
    assert damaged.read_bytes() == before  # nothing written into it
    assert not (damaged.parent / "a.csv").exists()


def test_an_import_into_a_damaged_ledger_is_refused(damaged, tmp_path):
    f = patch_file(tmp_path / "p2.gpkg", "2026-11", _grid(3))
    one_line_error(invoke("review", "import", damaged, f), str(damaged), "damaged ledger file", "backup")


def test_the_review_page_does_not_start_on_a_damaged_ledger(damaged):
    from satcheck.review.server import create_app

    one_line_error(invoke("review", "serve", damaged, "--port", "1"), str(damaged), "damaged ledger file")
    with pytest.raises(LedgerError, match="damaged ledger file"):
        create_app(damaged)
