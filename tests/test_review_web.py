"""The review page against a hostile web (issue 19, "Web page (security)"), through a real HTTP client.

A page elsewhere cannot decide (CSRF: JSON only, Origin or Referer of this server, the page's per-start
secret), a DNS name that is not this server's gets no data (Host check), bodies and fields are bounded,
JSON of the wrong shape is a 400 with nothing stored, every answer carries the security headers, the
token travels once and then as an HttpOnly cookie, and error messages do not give away the ledger's path.
"""

import asyncio
import json
import re
import shutil

import pytest
from starlette.testclient import TestClient

from satcheck.review.ledger import Ledger
from satcheck.review.server import LIMITS, create_app
from satcheck.review.web_guard import MAX_BODY, Hosts
from tests.review_data import BASE, page_client, patch_file

PID = "360821-202608-0001"
DECISION = f"/api/patches/{PID}/decision"
ACCEPT = {"decision": "accept", "reviewer": "wang", "expected": "pending"}


@pytest.fixture(scope="module")
def _made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("made")
    f = patch_file(tmp / "p1.gpkg", "2026-08", [("0001", "farmland_construction", (0, 0, 20, 20)),
                                               ("0002", "farmland_construction", (100, 0, 20, 20))])
    with Ledger(tmp / "ledger.sqlite") as lg:
        lg.import_patches(f)
    return tmp / "ledger.sqlite"


@pytest.fixture()
def ledger(_made, tmp_path):
    """A ledger of two pending patches (a copy for each test: making one takes a second)."""
    shutil.copy(_made, tmp_path / "ledger.sqlite")
    return tmp_path / "ledger.sqlite"


def _events(path) -> int:
    with Ledger(path) as lg:
        return lg.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


@pytest.fixture()
def client(ledger):
    return page_client(create_app(ledger, host="127.0.0.1", port=8765))


# ------------------------------------------------------------------------------------------------ 1. CSRF

def test_the_pages_own_decision_is_accepted(client, ledger):
    r = client.post(DECISION, json=ACCEPT)
    assert r.status_code == 200, r.text
    assert _events(ledger) == 3


@pytest.mark.parametrize("content_type, body", [
    ("text/plain", json.dumps(ACCEPT)),                                  # fetch(..., {mode: "no-cors"})
    ("text/plain;charset=UTF-8", json.dumps(ACCEPT)),
    ("application/x-www-form-urlencoded", "decision=accept&reviewer=evil"),  # <form method=post>
    ("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"decision\"\r\n\r\naccept\r\n--x--"),
    (None, json.dumps(ACCEPT)),
])
def test_only_json_is_a_decision(client, ledger, content_type, body):
    headers = {"Content-Type": content_type} if content_type else {}
    if content_type is None:
        client.headers.pop("Content-Type", None)
    r = client.post(DECISION, content=body.encode(), headers=headers)
    assert r.status_code == 415, r.text
    assert _events(ledger) == 2


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "http://evil.example:8765"},
    {"Origin": "http://127.0.0.1:9999"},        # another port is another origin
    {"Origin": "https://127.0.0.1:8765"},       # and another scheme
    {"Origin": "null"},                         # sandboxed frames, data: URLs
    {"Origin": "http://127.0.0.1:8765.evil.example"},
    {"Origin": None, "Referer": "http://evil.example/page.html"},
    {"Origin": None},                           # neither Origin nor Referer
    {"X-Satcheck-Csrf": None},                  # the page's secret missing ...
    {"X-Satcheck-Csrf": "guessed"},             # ... or wrong
])
def test_a_request_from_elsewhere_cannot_decide(client, ledger, headers):
    for k, v in headers.items():
        if v is None:
            client.headers.pop(k, None)
        else:
            client.headers[k] = v
    r = client.post(DECISION, json=ACCEPT)
    assert r.status_code == 403, r.text
    assert _events(ledger) == 2
    r = client.post(DECISION, json={"decision": "undo", "reviewer": "evil"})
    assert r.status_code == 403
    assert _events(ledger) == 2


def test_referer_of_this_server_stands_in_for_a_missing_origin(client, ledger):
    client.headers.pop("Origin")
    r = client.post(DECISION, json=ACCEPT, headers={"Referer": BASE + "/"})
    assert r.status_code == 200, r.text


def test_the_per_start_secret_differs_between_starts(ledger):
    a, b = page_client(create_app(ledger)), page_client(create_app(ledger))
    assert a.headers["X-Satcheck-Csrf"] != b.headers["X-Satcheck-Csrf"]
    b.headers["X-Satcheck-Csrf"] = a.headers["X-Satcheck-Csrf"]
    assert b.post(DECISION, json=ACCEPT).status_code == 403


def test_a_preflight_gets_no_cors_permission(client):
    r = client.options(DECISION, headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
                                          "Access-Control-Request-Headers": "content-type,x-satcheck-csrf"})
    assert "access-control-allow-origin" not in r.headers


# ------------------------------------------------------------------------------------------------ 2. Host

@pytest.mark.parametrize("host", ["evil.example:8765", "evil.example", "127.0.0.1.evil.example:8765",
                                  "127.0.0.1:9999", "", "wang@127.0.0.1:8765"])
def test_a_foreign_host_gets_no_data(ledger, host):
    client = TestClient(create_app(ledger, port=8765), base_url=BASE)
    for path in ("/", "/api/patches", "/api/patches.geojson", f"/api/patches/{PID}", "/static/review.js",
                 f"/chips/{PID}/before.png"):
        r = client.get(path, headers={"Host": host})
        assert r.status_code == 421, path
        assert PID not in r.text and "ledger" not in r.text and "satcheck review ·" not in r.text


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765", "[::1]:8765"])
def test_loopback_names_are_answered(ledger, host):
    client = TestClient(create_app(ledger, port=8765), base_url=BASE)
    assert client.get("/api/patches", headers={"Host": host}).status_code == 200


def test_a_foreign_host_cannot_decide_either(client, ledger):
    r = client.post(DECISION, json=ACCEPT, headers={"Host": "evil.example:8765", "Origin": "http://evil.example:8765"})
    assert r.status_code == 421
    assert _events(ledger) == 2


def test_hosts_of_an_explicit_bind():
    lan = Hosts("192.168.5.5", 8765)
    assert lan.allows("192.168.5.5:8765") and lan.allows("127.0.0.1:8765")
    assert not lan.allows("evil.example:8765") and not lan.allows("192.168.5.5:80") and not lan.allows("192.168.5.5")
    named = Hosts("review.example.org", 80)
    assert named.allows("review.example.org") and named.allows("REVIEW.example.org:80")
    assert not named.allows("evil.example")
    every = Hosts("0.0.0.0", 8765)
    assert every.allows("10.1.2.3:8765") and every.allows("[fe80::1]:8765") and every.allows("localhost:8765")
    assert not every.allows("evil.example:8765")
    assert Hosts("127.0.0.1", None).allows("127.0.0.1:1234")  # library use: any port


def test_serve_tells_the_app_its_host_and_port(ledger, monkeypatch):
    import uvicorn

    from satcheck.config import ReviewConfig
    from satcheck.review.server import serve

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    serve(ledger, "127.0.0.1", 8799, None, ReviewConfig())
    assert seen["port"] == 8799
    client = TestClient(seen["app"], base_url="http://127.0.0.1:8799")
    assert client.get("/api/patches").status_code == 200
    assert client.get("/api/patches", headers={"Host": "evil.example:8799"}).status_code == 421
    assert client.get("/api/patches", headers={"Host": "127.0.0.1:8765"}).status_code == 421


# ------------------------------------------------------------------------------------------------ 3. sizes

def test_a_body_over_the_limit_is_refused_by_its_length(client, ledger):
    note = "x" * (MAX_BODY + 1)
    r = client.post(DECISION, json=dict(ACCEPT, note=note))
    assert r.status_code == 413
    assert _events(ledger) == 2


def test_a_chunked_body_is_read_no_further_than_the_limit(ledger):
    """No Content-Length: the server stops reading once the body passes the limit, and answers 413."""
    asgi = create_app(ledger)
    page = TestClient(asgi, base_url=BASE).get("/").text
    csrf = json.loads(re.search(r'id="satcheck-config">(.*?)</script>', page).group(1))["csrf"]
    pulled = 0
    chunk = b" " * 4096

    async def receive():
        nonlocal pulled
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}  # endless

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": DECISION, "raw_path": DECISION.encode(), "query_string": b"", "root_path": "",
             "server": ("127.0.0.1", 8765), "client": ("127.0.0.1", 50000),
             "headers": [(b"host", b"127.0.0.1:8765"), (b"content-type", b"application/json"),
                         (b"origin", BASE.encode()), (b"x-satcheck-csrf", csrf.encode()),
                         (b"transfer-encoding", b"chunked")]}
    asyncio.run(asyncio.wait_for(asgi(scope, receive, send), 10))
    assert sent[0]["status"] == 413
    assert pulled <= MAX_BODY + len(chunk)
    assert _events(ledger) == 2


@pytest.mark.parametrize("field", ["note", "reviewer", "reason", "expected", "decision"])
def test_fields_are_bounded(client, ledger, field):
    body = dict(ACCEPT, **{field: "长" * (LIMITS[field] + 1)})
    r = client.post(DECISION, json=body)
    assert r.status_code == 400 and field in r.json()["error"] and str(LIMITS[field]) in r.json()["error"]
    assert _events(ledger) == 2


def test_a_note_at_the_limit_is_stored_whole(client, ledger):
    note = "备" * LIMITS["note"]
    assert client.post(DECISION, json=dict(ACCEPT, note=note)).status_code == 200
    with Ledger(ledger) as lg:
        assert lg.history(PID)[-1].note == note


# ------------------------------------------------------------------------------------------------ 4. shapes

DEEP = "[" * 20000 + "]" * 20000


@pytest.mark.parametrize("raw", [
    b"[1,2]", b"null", b"1", b'"accept"', b"true", b"", b"{", b"\xff\xfe{}", DEEP.encode(),
    json.dumps({"decision": {"a": json.loads("[" * 50 + "]" * 50)}, "reviewer": "wang"}).encode(),
    json.dumps({"decision": "reject", "reason": ["seasonal"], "reviewer": "wang"}).encode(),
    json.dumps({"decision": "accept", "note": {"a": 1}, "reviewer": "wang"}).encode(),
    json.dumps({"decision": "accept", "reviewer": {"name": "wang"}}).encode(),
    json.dumps({"decision": "accept", "reviewer": ["wang"]}).encode(),
    json.dumps({"decision": "accept", "reviewer": 7}).encode(),
    json.dumps({"decision": "accept", "reviewer": "wang\n2026-01-01 admin: accepted"}).encode(),
    json.dumps({"decision": "accept", "reviewer": "wang", "expected": ["pending"]}).encode(),
    json.dumps({"decision": "accept", "reviewer": "wang", "unseen": "yes"}).encode(),
    json.dumps({"decision": "accept", "reviewer": "wang", "state": "accepted"}).encode(),
    json.dumps({"decision": ["accept"], "reviewer": "wang"}).encode(),
    b'{"decision": "accept", "reviewer": "wang", "note": NaN}',
])
def test_json_of_the_wrong_shape_is_a_400(client, ledger, raw):
    r = client.post(DECISION, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    message = r.json()["error"]
    assert 0 < len(message) < 200 and "Traceback" not in message
    assert _events(ledger) == 2


# ------------------------------------------------------------------------------------------------ headers

def test_every_answer_carries_the_security_headers(ledger):
    client = page_client(create_app(ledger))
    answers = [client.get("/"), client.get("/api/patches"), client.get("/static/review.js"),
               client.get("/api/patches/NOPE"), client.get("/no/such/page"), client.post(DECISION, content=b"x"),
               TestClient(create_app(ledger), base_url=BASE).get("/", headers={"Host": "evil.example"}),
               TestClient(create_app(ledger, token="t"), base_url=BASE).get("/api/patches")]
    for r in answers:
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_the_page_has_no_inline_script(client):
    html = client.get("/").text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    for attrs, body in scripts:
        assert 'src="' in attrs or ('type="application/json"' in attrs), attrs
        if body.strip():
            json.loads(body)  # data, not code
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    assert " style=" not in html


# ------------------------------------------------------------------------------------------------ token

def test_the_token_travels_once_then_as_a_cookie(ledger):
    app = create_app(ledger, token="s3cret")
    client = TestClient(app, base_url=BASE)
    r = client.get("/?token=s3cret")
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("satcheck_token=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "s3cret" not in cookie
    assert "s3cret" not in r.text  # the page does not carry the token into its URLs
    js = client.get("/static/review.js").text
    assert "X-Satcheck-Token" not in js and "token=" not in js.replace("?token=...", "")
    # With the cookie alone (as the browser sends it), the page's requests and decisions work.
    for path in ("/api/patches", "/api/patches.geojson", "/static/review.js", f"/api/patches/{PID}"):
        assert client.get(path).status_code == 200, path
    cfg = json.loads(re.search(r'id="satcheck-config">(.*?)</script>', r.text).group(1))
    r = client.post(DECISION, json=ACCEPT, headers={"Origin": BASE, "X-Satcheck-Csrf": cfg["csrf"]})
    assert r.status_code == 200, r.text


def test_the_token_is_not_taken_from_the_url_but_on_the_page(ledger):
    client = TestClient(create_app(ledger, token="s3cret"), base_url=BASE)
    assert client.get("/api/patches?token=s3cret").status_code == 401
    assert client.get("/static/review.js?token=s3cret").status_code == 401
    assert "set-cookie" not in client.get("/?token=wrong").headers
    assert client.get("/api/patches", headers={"X-Satcheck-Token": "s3cret"}).status_code == 200  # scripts
    client.cookies.set("satcheck_token", "stale", domain="127.0.0.1", path="/")  # an earlier start's
    assert client.get("/api/patches").status_code == 401
    assert client.get("/?token=s3cret").status_code == 200  # the new address still opens the page
    assert client.get("/api/patches").status_code == 200


def test_a_decision_off_loopback_needs_the_token_and_the_origin(ledger):
    client = page_client(create_app(ledger, token="s3cret", host="192.168.5.5", port=8765),
                         base_url="http://192.168.5.5:8765", token="s3cret")
    assert client.post(DECISION, json=ACCEPT, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post(DECISION, json=ACCEPT).status_code == 200
    client.cookies.clear()
    assert client.post(DECISION, json=ACCEPT).status_code == 401


# ------------------------------------------------------------------------------------------------ paths

def test_errors_do_not_show_the_ledgers_path(client, ledger, tmp_path):
    folder = str(tmp_path)
    for r in (client.get("/api/patches/NOPE"), client.post("/api/patches/NOPE/decision", json=ACCEPT),
              client.get("/chips/NOPE/before.png"), client.get("/no/such/page")):
        assert r.status_code == 404
        assert folder not in r.text, r.text
    assert "ledger.sqlite" in client.get("/api/patches/NOPE").json()["error"]


def test_a_missing_chip_is_named_relative_to_the_ledger(tmp_path):
    from PIL import Image

    run = tmp_path / "run"
    f = patch_file(run / "patches.gpkg", "2026-08", [("0001", "farmland_construction", (0, 0, 20, 20))])
    (run / "chips").mkdir()
    for w in ("before", "after"):
        Image.new("RGB", (8, 8)).save(run / "chips" / f"{PID}_{w}.png")
    with Ledger(tmp_path / "ledger.sqlite") as lg:
        lg.import_patches(f)
    (run / "chips" / f"{PID}_before.png").unlink()
    client = page_client(create_app(tmp_path / "ledger.sqlite"))
    for text in (client.get(f"/api/patches/{PID}").json()["chips"]["before"]["path"],
                 client.get(f"/chips/{PID}/before.png").json()["error"],
                 client.post(DECISION, json=ACCEPT).json()["error"]):
        assert "run/chips/" in text and str(tmp_path) not in text, text
