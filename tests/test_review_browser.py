"""End to end in a real headless browser: review three patches with the keyboard, then read the ledger.

Debian's chromium is driven by Playwright (executable_path; Playwright's own browser download is never
used). The set-up installs chromium with apt-get when it is missing; the test is skipped, saying why,
only where it cannot be installed. The page's Content-Security-Policy stays on (no bypass_csp): waits poll
from Python (:func:`_wait`), since Playwright's own wait_for_function evaluates a string, which the policy
forbids, and any policy violation the page itself causes fails the test (:func:`_page`).
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from satcheck.review.ledger import Ledger
from tests.review_data import patch_file

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    for c in CANDIDATES:
        if os.path.exists(c):
            return c
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _chromium()
    if path is None and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(cmd, env=env, capture_output=True, timeout=900)
            path = _chromium()
            if path:
                break
    if path is None:
        pytest.skip("Debian chromium is not installed and could not be installed here (needs root and apt-get)")
    pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed: pip install playwright")
    return path


def _wait(page, expression: str, timeout: float = 90) -> None:
    """Wait until ``expression`` is true on the page (page.evaluate is not subject to the page's CSP). The time is
    a bound, not a measure: a machine busy with training took over 30 s to draw the history once."""
    end = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def _page(browser, width: int, height: int):
    """A new page that records what the browser says about the Content-Security-Policy."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.csp = []
    page.on("console", lambda m: page.csp.append(m.text) if "Content Security Policy" in m.text else None)
    return page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serve(ledger: Path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "satcheck.cli", "review", "serve", str(ledger), "--port", str(port),
                             "--by", "王五"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    end = time.monotonic() + 60  # the start imports geopandas: seconds on a busy machine
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if time.monotonic() > end or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"review server did not start: {proc.stdout.read().decode()}")
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture()
def server(tmp_path):
    f = patch_file(tmp_path / "p.gpkg", "2026-10", [(f"{i:04d}", "farmland_construction", (i * 60, 0, 25, 25))
                                                    for i in range(1, 5)])
    ledger = tmp_path / "ledger.sqlite"
    with Ledger(ledger) as lg:
        lg.import_patches(f)
        lg.decide("360821-202610-0004", "deferred", "setup", note='<img src=x onerror="window.pwned=1">')
    with _serve(ledger) as url:
        yield url, ledger


def test_review_three_patches_with_the_keyboard(chromium, server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, ledger = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        page = _page(browser, 1400, 900)
        page.goto(url)
        page.wait_for_selector("#list li")
        _wait(page, "document.getElementById('d-title').textContent.includes('0001')")
        page.keyboard.press("a")  # accept 0001
        _wait(page, "document.getElementById('d-title').textContent.includes('0002')")
        page.keyboard.press("r")  # reject 0002 ...
        page.keyboard.press("1")  # ... as seasonal change
        _wait(page, "document.getElementById('d-title').textContent.includes('0003')")
        page.keyboard.press("d")  # defer 0003
        _wait(page, "document.getElementById('progress').textContent.startsWith('2 / 4')")
        # A note with markup is shown as text, never run.
        page.click("#list li:nth-child(4)")
        _wait(page, "document.getElementById('history').textContent.includes('onerror')")
        assert page.evaluate("window.pwned") is None
        assert page.locator("#history img").count() == 0
        shot = Path(os.environ.get("SATCHECK_SCREENSHOT", tmp_path / "review.png"))
        page.screenshot(path=str(shot))
        assert page.csp == []
        browser.close()
    with Ledger(ledger) as lg:
        assert lg.state("360821-202610-0001") == "accepted"
        assert lg.state("360821-202610-0002") == "rejected"
        assert lg.history("360821-202610-0002")[-1].reason == "seasonal"
        assert lg.history("360821-202610-0002")[-1].reviewer == "王五"
        assert lg.state("360821-202610-0003") == "deferred"


def _state(page, pid: str, state: str) -> None:
    _wait(page, f"document.getElementById('d-title').textContent.includes('{pid}') && "
                           f"document.getElementById('d-title').textContent.endsWith('{state}')")


def test_undo_with_u_and_missing_chips(chromium, tmp_path):
    """u takes back the decision just made; a missing chip says so and a decision needs a second press."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    run = tmp_path / "run"
    f = patch_file(run / "patches.gpkg", "2026-10", [(f"{i:04d}", "farmland_construction", (i * 60, 0, 25, 25))
                                                     for i in range(1, 4)])
    (run / "chips").mkdir()
    for i in range(1, 4):
        for w in ("before", "after"):
            Image.new("RGB", (256, 256), (60, 120, 60)).save(run / "chips" / f"360821-202610-{i:04d}_{w}.png")
    ledger = tmp_path / "ledger.sqlite"
    with Ledger(ledger) as lg:
        lg.import_patches(f)
    (run / "chips" / "360821-202610-0002_before.png").unlink()  # as if the run folder lost it
    with _serve(ledger) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        page = _page(browser, 1024, 768)
        page.goto(url)
        _state(page, "0001", "pending")
        # The page fits 1024 px: nothing runs off to the right.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024
        assert page.evaluate("document.getElementById('detail').scrollWidth <= "
                             "document.getElementById('detail').clientWidth + 1")
        page.keyboard.press("a")
        _state(page, "0002", "pending")
        page.keyboard.press("u")  # undo the accept of 0001: the page goes back to it
        _state(page, "0001", "pending")
        _wait(page, "document.getElementById('message').textContent.includes('undone')")
        with Ledger(ledger) as lg:
            assert lg.state("360821-202610-0001") == "pending"
            assert [e.to_state for e in lg.history("360821-202610-0001")] == ["pending", "accepted", "pending"]
        page.keyboard.press("j")
        _state(page, "0002", "pending")
        _wait(page, "document.getElementById('miss-before').textContent.includes('missing')")
        assert page.is_visible("#miss-before") and not page.is_visible("#miss-after")
        page.keyboard.press("a")  # the first press only asks
        _wait(page, "document.getElementById('message').textContent.includes('again')")
        with Ledger(ledger) as lg:
            assert lg.state("360821-202610-0002") == "pending"
        page.keyboard.press("a")  # the second confirms
        _state(page, "0003", "pending")
        shot = Path(os.environ.get("SATCHECK_SCREENSHOT_1024", tmp_path / "review_1024.png"))
        page.screenshot(path=str(shot))
        assert page.csp == []
        browser.close()
    with Ledger(ledger) as lg:
        assert lg.state("360821-202610-0002") == "accepted"


OVERFLOW = """(() => {
  const width = document.documentElement.clientWidth, out = [];
  document.querySelectorAll("body *").forEach((e) => {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > width + 0.5 && !e.closest("#map")) out.push(e.tagName + "#" + e.id);
  });
  const d = document.getElementById("detail");
  if (d.scrollWidth > d.clientWidth + 1) out.push("#detail scrolls sideways");
  if (document.documentElement.scrollWidth > width) out.push("the page scrolls sideways");
  return out;
})()"""


def test_the_page_fits_1024_px_with_long_words(chromium, tmp_path):
    """A note without spaces, a long attribute, a missing chip's path, the reasons row: nothing runs off the right."""
    from playwright.sync_api import sync_playwright

    run = tmp_path / ("run_of_a_county_with_a_long_folder_name_" * 3)
    f = patch_file(run / "patches.gpkg", "2026-10", [(f"{i:04d}", "farmland_construction", (i * 60, 0, 25, 25))
                                                     for i in range(1, 3)])
    (run / "chips").mkdir()
    (run / "chips" / "360821-202610-0001_after.png").write_bytes(b"")  # recorded; before is missing
    ledger = tmp_path / "ledger.sqlite"
    with Ledger(ledger) as lg:
        lg.import_patches(f)
        lg.db.execute("UPDATE patches SET chip_before=?, chip_after=?, attrs=json_set(attrs, '$.admin_name', ?)",
                      (f"{run.name}/chips/gone_before.png", f"{run.name}/chips/gone_after.png",
                       "吉安县" + "x" * 200))
        lg.decide("360821-202610-0002", "deferred", "setup", note="n" * 400)
    with _serve(ledger) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        page = _page(browser, 1024, 768)
        page.goto(url)
        _state(page, "0001", "pending")
        _wait(page, "document.getElementById('miss-before').textContent.includes('missing')")
        assert page.evaluate(OVERFLOW) == []
        page.keyboard.press("r")
        assert page.is_visible("#reasons")
        assert page.evaluate(OVERFLOW) == []
        page.keyboard.press("Escape")
        page.keyboard.press("a")  # the chip is missing: a long message with its path
        _wait(page, "document.getElementById('message').textContent.includes('again')")
        assert page.evaluate(OVERFLOW) == []
        page.keyboard.press("j")
        _state(page, "0002", "deferred")
        _wait(page, "document.getElementById('history').textContent.includes('nnnn')")
        assert page.evaluate(OVERFLOW) == []
        assert page.csp == []
        browser.close()


ATTACK = """<!doctype html><html><body>
<form id="form" method="POST" action="{base}api/patches/360821-202610-0001/decision" enctype="text/plain"
      target="sink"><input name='{{"decision":"accept","reviewer":"evil","x":"' value='"}}'></form>
<iframe name="sink" id="sink"></iframe>
<script>
const t = (n) => "{base}api/patches/360821-202610-000" + n + "/decision";
const body = JSON.stringify({{decision: "accept", reviewer: "evil"}});
Promise.allSettled([
  fetch(t(2), {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body: body}}),
  fetch(t(3), {{method: "POST", headers: {{"Content-Type": "application/json", "X-Satcheck-Csrf": "x"}}, body: body}}),
  fetch(t(4), {{method: "POST", mode: "no-cors", body: new URLSearchParams({{decision: "accept", reviewer: "evil"}})}}),
]).then((r) => {{
  window.fetched = r.map((x) => x.status);
  document.getElementById("sink").addEventListener("load", () => {{ window.done = true; }});
  document.getElementById("form").submit();
}});
</script></body></html>"""


def test_a_page_on_another_origin_cannot_decide(chromium, tmp_path):
    """A page the reviewer visits elsewhere (another site, same machine) tries every way a browser lets it POST."""
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    f = patch_file(tmp_path / "p.gpkg", "2026-10", [(f"{i:04d}", "farmland_construction", (i * 60, 0, 25, 25))
                                                    for i in range(1, 5)])
    ledger = tmp_path / "ledger.sqlite"
    with Ledger(ledger) as lg:
        lg.import_patches(f)
    with _serve(ledger) as url:
        html = ATTACK.format(base=url).encode()

        class Attacker(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args):
                pass

        evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
                page = browser.new_page()
                page.goto(f"http://localhost:{evil.server_address[1]}/")  # another site than 127.0.0.1
                _wait(page, "window.done === true")
                browser.close()
        finally:
            evil.shutdown()
            evil.server_close()
    with Ledger(ledger) as lg:
        assert [lg.state(f"360821-202610-{i:04d}") for i in range(1, 5)] == ["pending"] * 4
        assert lg.db.execute("SELECT COUNT(*) FROM events WHERE reviewer LIKE '%evil%'").fetchone()[0] == 0
