"""The local review page: a small Starlette app over the ledger.

Binds to loopback by default.  On any other address a token is required
and every request must carry it (header ``X-Satcheck-Token`` or query
``token``).  Every decision is written to the ledger before the response
is sent.  A decision on a patch whose chips were recorded but are not
there (a run folder moved) needs ``"unseen": true``: the page asks the
reviewer to confirm.  ``"decision": "undo"`` takes back the latest
decision (:mod:`satcheck.review.undo`).  With ``rules`` the map also
draws farmland, basic farmland, permit and admin outlines.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from satcheck import __version__
from satcheck.config import ReviewConfig, RulesConfig
from satcheck.errors import SatcheckError
from satcheck.review.filters import FilterError, check_admin, check_class, check_period, check_state
from satcheck.review.ledger import Ledger, LedgerError
from satcheck.review.paths import chips as chip_paths
from satcheck.review.states import DECISIONS, FIELD_RESULTS, ConflictError, TransitionError
from satcheck.review.undo import reopen

STATIC = Path(__file__).resolve().parents[1] / "static"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, token: str | None):
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next):
        if self.token:
            given = request.headers.get("x-satcheck-token") or request.query_params.get("token") or ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return JSONResponse({"error": "token required"}, status_code=401)
        return await call_next(request)


def create_app(ledger_path: str | Path, config: ReviewConfig = ReviewConfig(), token: str | None = None,
               reviewer: str = "", rules: str | Path | None = None, rules_config: RulesConfig | None = None) -> Starlette:
    ledger_path = Path(ledger_path)
    with Ledger(ledger_path, config, create=False) as lg:  # fail now, not on the first request
        crs = lg.crs
    context = _Context(rules, crs, rules_config or RulesConfig())
    env = Environment(loader=PackageLoader("satcheck", "templates"), autoescape=select_autoescape(["html", "j2"]))

    def open_ledger() -> Ledger:
        return Ledger(ledger_path, config, create=False)

    def page(request: Request) -> HTMLResponse:
        html = env.get_template("review.html.j2").render(
            ledger=ledger_path.name, token=token or "", reviewer=reviewer, version=__version__,
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
            gdf = lg.geodataframe()
        if len(gdf):
            gdf = gdf.to_crs("EPSG:4326")[["patch_id", "class", "status", "area_m2", "geometry"]]
        return Response(gdf.to_json() if len(gdf) else '{"type":"FeatureCollection","features":[]}',
                        media_type="application/geo+json")

    def detail(request: Request) -> JSONResponse:
        try:
            with open_ledger() as lg:
                pid = request.path_params["patch_id"]
                d = lg.patch(pid)
                d["chips"] = {w: c.as_dict() for w, c in chip_paths(lg, pid).items()}
                return JSONResponse(d)
        except LedgerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def decide(request: Request) -> JSONResponse:
        pid = request.path_params["patch_id"]
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "send a JSON body"}, status_code=400)
        decision = str(body.get("decision", ""))
        undo = decision in ("undo", "reopen")
        to = DECISIONS.get(decision, decision if decision in FIELD_RESULTS else None)
        if to is None and not undo:
            return JSONResponse({"error": f"unknown decision '{decision}'"}, status_code=400)
        who = str(body.get("reviewer") or "").strip()
        try:
            with open_ledger() as lg:
                if undo:
                    ev, _ = reopen(lg, pid, who, body.get("note") or None, body.get("expected") or None)
                else:
                    c = chip_paths(lg, pid)
                    gone = [w for w in ("before", "after") if c[w].missing]
                    if gone and to != "deferred" and not body.get("unseen"):
                        return JSONResponse({"error": f"{pid}: the {' and '.join(gone)} chip is missing "
                                             f"({c[gone[0]].path}); decide again to confirm without seeing it, "
                                             "or defer", "confirm": True}, status_code=428)
                    ev = lg.decide(pid, to, who, body.get("reason") or None, body.get("note") or None,
                                   body.get("expected") or None)
                reviewed, total = lg.progress()
        except ConflictError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except TransitionError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except SatcheckError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"event": ev.__dict__, "progress": {"reviewed": reviewed, "total": total}})

    def chip(request: Request) -> Response:
        which = request.path_params["which"]
        if which not in ("before", "after", "locator"):
            return JSONResponse({"error": "before, after or locator"}, status_code=404)
        with open_ledger() as lg:
            c = chip_paths(lg, request.path_params["patch_id"])[which]
        if not c.ok:
            why = f"missing: {c.path}" if c.missing else "no chip"
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
        except SatcheckError as exc:
            return JSONResponse({"error": str(exc)}, status_code=500)

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
    return Starlette(routes=routes, middleware=[Middleware(TokenMiddleware, token=token)])


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

    app = create_app(ledger_path, config, token, reviewer, rules, rules_config)
    uvicorn.run(app, host=host, port=port, log_level="warning")
