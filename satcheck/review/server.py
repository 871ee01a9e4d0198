"""The local review page: a small Starlette app over the ledger.

Binds to loopback by default.  On any other address a token is required: the page is opened once with
``?token=...``, which sets an HttpOnly, SameSite=Strict cookie; scripts may send the header
``X-Satcheck-Token`` instead.  Every decision is written to the ledger before the response is sent.  A
decision on a patch whose chips were recorded but are not there (a run folder moved) needs
``"unseen": true``: the page asks the reviewer to confirm.  ``"decision": "undo"`` takes back the latest
decision (:mod:`satcheck.review.undo`).  With ``rules`` the map also draws farmland, basic farmland, permit
and admin outlines.

While another process holds the ledger's write lock (an import, a bulk decision), a decision waits up to
:data:`BUSY_WAIT_S`, then is answered 503 with ``Retry-After`` and nothing changed; the page says so and
sends it again. Reads go on meanwhile (WAL).

What a web page elsewhere cannot do (Host, Origin and CSRF checks, body limit, security headers) is
:mod:`satcheck.review.web_guard`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from satcheck import __version__
from satcheck.config import ReviewConfig, RulesConfig
from satcheck.errors import SatcheckError
from satcheck.review.filters import FilterError, check_admin, check_class, check_period, check_state
from satcheck.review.frames import review_frame
from satcheck.review.ledger import Ledger, LedgerBusyError, LedgerError
from satcheck.review.paths import chips as chip_paths
from satcheck.review.states import DECISIONS, FIELD_RESULTS, ConflictError, TransitionError
from satcheck.review.undo import reopen
from satcheck.review.web_guard import Guard, Hosts

STATIC = Path(__file__).resolve().parents[1] / "static"
# A page waits for an answer: far less than the command line's wait (ledger.BUSY_TIMEOUT_S), longer than one
# transaction of an import (importing.IMPORT_CHUNK patches), then 503 and the page retries on its own.
BUSY_WAIT_S = 2.0
RETRY_AFTER_S = 2
LIMITS = {"decision": 32, "reason": 64, "expected": 32, "reviewer": 100, "note": 4000}  # characters of each field


class BadRequest(ValueError):
    pass


def busy(request: Request | None = None, exc: Exception | None = None) -> JSONResponse:
    """The answer while another process holds the ledger's write lock: nothing changed, try again shortly."""
    return JSONResponse({"error": "ledger busy: another process (an import, another reviewer) is writing it; "
                                  f"nothing was changed; retrying in {RETRY_AFTER_S} s", "busy": True},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def decision_body(raw: bytes) -> dict:
    """The fields of a decision request, checked: a JSON object of short strings (and ``unseen``, a bool)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("send a JSON object, e.g. {\"decision\": \"accept\", \"reviewer\": \"...\"}") from None
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object, e.g. {\"decision\": \"accept\", \"reviewer\": \"...\"}")
    unknown = sorted(k[:40] for k in body if k not in LIMITS and k != "unseen")
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown[:5])}; known: {', '.join([*LIMITS, 'unseen'])}")
    out: dict = {}
    for key, limit in LIMITS.items():
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"'{key}' must be a string")
        if value is not None and len(value) > limit:
            raise BadRequest(f"'{key}' is {len(value)} characters long; at most {limit}")
        out[key] = value
    if out["reviewer"] is not None and any(ord(c) < 32 or ord(c) == 127 for c in out["reviewer"]):
        raise BadRequest("'reviewer' must be a name on one line")
    unseen = body.get("unseen")
    if unseen is not None and not isinstance(unseen, bool):
        raise BadRequest("'unseen' must be true or false")
    out["unseen"] = bool(unseen)
    return out


def create_app(ledger_path: str | Path, config: ReviewConfig = ReviewConfig(), token: str | None = None,
               reviewer: str = "", rules: str | Path | None = None, rules_config: RulesConfig | None = None,
               host: str = "127.0.0.1", port: int | None = None) -> Starlette:
    """The review app for ``ledger_path``, answering for ``host`` (and ``port``; None: any port)."""
    ledger_path = Path(ledger_path)
    csrf = secrets.token_urlsafe(24)  # per start: the page carries it, a page elsewhere cannot read it
    folder = ledger_path.absolute().parent
    hidden = sorted({str(ledger_path.resolve()), str(ledger_path.absolute()), str(ledger_path)}, key=len, reverse=True)

    def public(message: str) -> str:
        """An error message without the ledger's absolute path: its name is enough to the page."""
        for h in hidden:
            message = message.replace(h, ledger_path.name)
        return message

    def shown(path: Path | None) -> str | None:
        """A chip's path as the page shows it: relative to the ledger's folder."""
        if path is None:
            return None
        try:
            return Path(os.path.relpath(Path(path).absolute(), folder)).as_posix()
        except ValueError:  # another drive (Windows)
            return Path(path).name

    with Ledger(ledger_path, config, create=False) as lg:  # fail now, not on the first request
        crs = lg.crs
    context = _Context(rules, crs, rules_config or RulesConfig())
    env = Environment(loader=PackageLoader("satcheck", "templates"), autoescape=select_autoescape(["html", "j2"]))

    def open_ledger() -> Ledger:
        lg = Ledger(ledger_path, config, create=False, check_pages=False)  # checked at the start, above
        lg.db.execute(f"PRAGMA busy_timeout={int(BUSY_WAIT_S * 1000)}")
        return lg

    def page(request: Request) -> HTMLResponse:
        html = env.get_template("review.html.j2").render(
            ledger=ledger_path.name, reviewer=reviewer, version=__version__,
            config={"csrf": csrf, "reasons": [r.model_dump() for r in config.reasons]},
            reasons=[r.model_dump() for r in config.reasons])
        return HTMLResponse(html)

    def list_patches(request: Request) -> JSONResponse:
        q = request.query_params
        try:
            min_area = float(q["min_area"]) if q.get("min_area") else None
        except ValueError:
            return JSONResponse({"error": "min_area must be a number"}, status_code=400)
        period, cls, state, admin = (q.get(k) or None for k in ("period", "class", "state", "admin"))
        try:
            check_state(state), check_class(cls), check_period(period), check_admin(admin)
        except FilterError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with open_ledger() as lg:
            rows = lg.patches(period, cls, state, admin, min_area)
            reviewed, total = lg.progress(q.get("period") or None)
        return JSONResponse({"patches": rows, "progress": {"reviewed": reviewed, "total": total}})

    def geojson(request: Request) -> Response:
        with open_ledger() as lg:
            gdf = review_frame(lg)
        if len(gdf):
            gdf = gdf.to_crs("EPSG:4326")[["patch_id", "class", "status", "area_m2", "geometry"]]
        return Response(gdf.to_json() if len(gdf) else '{"type":"FeatureCollection","features":[]}',
                        media_type="application/geo+json")

    def detail(request: Request) -> JSONResponse:
        try:
            with open_ledger() as lg:
                pid = request.path_params["patch_id"]
                d = lg.patch(pid)
                d["chips"] = {w: dict(c.as_dict(), path=shown(c.path)) for w, c in chip_paths(lg, pid).items()}
                return JSONResponse(d)
        except LedgerBusyError:
            return busy()
        except LedgerError as exc:
            return JSONResponse({"error": public(str(exc))}, status_code=404)

    async def decide(request: Request) -> JSONResponse:
        pid = request.path_params["patch_id"]
        try:  # the body is at most web_guard.MAX_BODY bytes here (Guard)
            body = decision_body(await request.body())
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        decision = body["decision"] or ""
        undo = decision in ("undo", "reopen")
        to = DECISIONS.get(decision, decision if decision in FIELD_RESULTS else None)
        if to is None and not undo:
            return JSONResponse({"error": f"unknown decision '{decision}'"}, status_code=400)
        # In a worker thread: a wait for the write lock must not hold up the other requests.
        return await run_in_threadpool(write, pid, body, to, undo)

    def write(pid: str, body: dict, to: str | None, undo: bool) -> JSONResponse:
        who = (body["reviewer"] or "").strip()
        note, expected = body["note"] or None, body["expected"] or None
        try:
            with open_ledger() as lg:
                if undo:
                    ev, _ = reopen(lg, pid, who, note, expected)
                else:
                    c = chip_paths(lg, pid)
                    gone = [w for w in ("before", "after") if c[w].missing]
                    if gone and to != "deferred" and not body["unseen"]:
                        return JSONResponse({"error": f"{pid}: the {' and '.join(gone)} chip is missing "
                                             f"({shown(c[gone[0]].path)}); decide again to confirm without seeing "
                                             "it, or defer", "confirm": True}, status_code=428)
                    ev = lg.decide(pid, to, who, body["reason"] or None, note, expected)
                reviewed, total = lg.progress()
        except ConflictError as exc:
            return JSONResponse({"error": public(str(exc))}, status_code=409)
        except TransitionError as exc:
            return JSONResponse({"error": public(str(exc))}, status_code=400)
        except LedgerBusyError:
            return busy()
        except SatcheckError as exc:
            return JSONResponse({"error": public(str(exc))}, status_code=404)
        return JSONResponse({"event": ev.__dict__, "progress": {"reviewed": reviewed, "total": total}})

    def chip(request: Request) -> Response:
        which = request.path_params["which"]
        if which not in ("before", "after", "locator"):
            return JSONResponse({"error": "before, after or locator"}, status_code=404)
        with open_ledger() as lg:
            c = chip_paths(lg, request.path_params["patch_id"])[which]
        if not c.ok:
            why = f"missing: {shown(c.path)}" if c.missing else "no chip"
            return JSONResponse({"error": why}, status_code=404)
        media = "image/jpeg" if c.path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
        return FileResponse(c.path, media_type=media)

    def layers(request: Request) -> Response:
        try:
            with open_ledger() as lg:
                row = lg.db.execute("SELECT minx, miny, maxx, maxy FROM patches WHERE patch_id=?",
                                    (request.path_params["patch_id"],)).fetchone()
            if row is None:
                return JSONResponse({"error": "no such patch"}, status_code=404)
            return Response(context.geojson(tuple(row)), media_type="application/geo+json")
        except LedgerBusyError:
            return busy()
        except SatcheckError as exc:
            return JSONResponse({"error": public(str(exc))}, status_code=500)

    routes = [
        Route("/", page),
        Route("/api/patches", list_patches),
        Route("/api/patches.geojson", geojson),
        Route("/api/patches/{patch_id}", detail),
        Route("/api/patches/{patch_id}/decision", decide, methods=["POST"]),
        Route("/api/patches/{patch_id}/layers.geojson", layers),
        Route("/chips/{patch_id}/{which}.png", chip),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, hosts=Hosts(host, port), token=token, csrf=csrf)],
                     exception_handlers={LedgerBusyError: busy})  # a read that found the ledger locked


class _Context:
    """Rule layers around a patch for the map, read once on first use."""

    EMPTY = '{"type":"FeatureCollection","features":[]}'

    def __init__(self, folder: str | Path | None, crs: str | None, cfg: RulesConfig):
        self.folder, self.crs, self.cfg, self.rules = folder, crs, cfg, None

    def geojson(self, bounds: tuple[float, float, float, float]) -> str:
        if self.folder is None or self.crs is None:
            return self.EMPTY
        import geopandas as gpd

        from satcheck.report.context import CHIP_LAYERS, LOCATOR_RADIUS_M, hex_colour, outlines
        from satcheck.rules import load_rules

        if self.rules is None:
            self.rules = load_rules(self.folder, self.crs, self.cfg)
        minx, miny, maxx, maxy = bounds
        cx, cy, r = (minx + maxx) / 2, (miny + maxy) / 2, LOCATOR_RADIUS_M
        found = outlines(self.rules, (cx - r, cy - r, cx + r, cy + r), layers=(*CHIP_LAYERS, "admin"))
        if not found:
            return self.EMPTY
        gdf = gpd.GeoDataFrame({"layer": [o.layer for o in found], "label": [o.label for o in found],
                                "colour": [hex_colour(o.layer) for o in found]},
                               geometry=[o.geom for o in found], crs=self.crs).to_crs("EPSG:4326")
        return gdf.to_json()


def serve(ledger_path: str | Path, host: str, port: int, token: str | None, config: ReviewConfig,
          reviewer: str = "", rules: str | Path | None = None, rules_config: RulesConfig | None = None) -> None:
    import uvicorn

    app = create_app(ledger_path, config, token, reviewer, rules, rules_config, host=host, port=port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
