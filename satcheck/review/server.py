"""The local review page: a small Starlette app over the ledger.

Binds to loopback by default.  On any other address a token is required
and every request must carry it (header ``X-Satcheck-Token`` or query
``token``).  Every decision is written to the ledger before the response
is sent.
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
from satcheck.config import ReviewConfig
from satcheck.errors import SatcheckError
from satcheck.review.ledger import Ledger, LedgerError
from satcheck.review.states import DECISIONS, FIELD_RESULTS, ConflictError, TransitionError

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
               reviewer: str = "") -> Starlette:
    ledger_path = Path(ledger_path)
    Ledger(ledger_path, config, create=False).close()  # fail now, not on the first request
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
        with open_ledger() as lg:
            rows = lg.patches(q.get("period") or None, q.get("class") or None, q.get("state") or None,
                              q.get("admin") or None, min_area)
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
                return JSONResponse(lg.patch(request.path_params["patch_id"]))
        except LedgerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def decide(request: Request) -> JSONResponse:
        pid = request.path_params["patch_id"]
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "send a JSON body"}, status_code=400)
        decision = str(body.get("decision", ""))
        to = DECISIONS.get(decision, decision if decision in FIELD_RESULTS else None)
        if to is None:
            return JSONResponse({"error": f"unknown decision '{decision}'"}, status_code=400)
        try:
            with open_ledger() as lg:
                ev = lg.decide(pid, to, str(body.get("reviewer") or "").strip(), body.get("reason") or None,
                               body.get("note") or None, body.get("expected") or None)
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
        if which not in ("before", "after"):
            return JSONResponse({"error": "before or after"}, status_code=404)
        with open_ledger() as lg:
            row = lg.db.execute(f"SELECT chip_{which} FROM patches WHERE patch_id=?",
                                (request.path_params["patch_id"],)).fetchone()
        if row is None or not row[0] or not Path(row[0]).is_file():
            return JSONResponse({"error": "no chip"}, status_code=404)
        return FileResponse(row[0], media_type="image/png")

    routes = [
        Route("/", page),
        Route("/api/patches", list_patches),
        Route("/api/patches.geojson", geojson),
        Route("/api/patches/{patch_id}", detail),
        Route("/api/patches/{patch_id}/decision", decide, methods=["POST"]),
        Route("/chips/{patch_id}/{which}.png", chip),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TokenMiddleware, token=token)])


def serve(ledger_path: str | Path, host: str, port: int, token: str | None, config: ReviewConfig,
          reviewer: str = "") -> None:
    import uvicorn

    uvicorn.run(create_app(ledger_path, config, token, reviewer), host=host, port=port, log_level="warning")
