"""Hand-made patch files for ledger tests (EPSG:4547, metres)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely.geometry import box

from satcheck.export import write_gpkg
from satcheck.patches import PATCH_FIELDS

X0, Y0 = 592000.0, 2994000.0


def patch_file(path: Path, period: str, rows: list[tuple[str, str, tuple[float, float, float, float]]]) -> Path:
    """rows: (sequence id, class, (x, y, w, h) in metres from X0, Y0)."""
    recs = []
    for seq, cls, (x, y, w, h) in rows:
        g = box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)
        rec = {k: None for k in PATCH_FIELDS}
        rec.update({"patch_id": f"360821-{period.replace('-', '')}-{seq}", "period": period, "class": cls,
                    "change_type": "excavation" if "mining" in cls else "construction", "confidence": 0.9,
                    "area_m2": g.area, "area_mu": g.area / (10000 / 15), "farmland_area_m2": g.area,
                    "basic_farmland_area_m2": 0.0, "on_basic_farmland": False, "outside_permit_area_m2": 0.0,
                    "centroid_lon": 114.9, "centroid_lat": 27.0, "centroid_x": g.centroid.x, "centroid_y": g.centroid.y,
                    "admin_code": "360821", "admin_name": "吉安县", "before_date": "", "after_date": "",
                    "before_tiles": "", "after_tiles": "", "status": "pending", "geometry": g})
        recs.append(rec)
    gdf = gpd.GeoDataFrame(recs, geometry="geometry", crs="EPSG:4547")
    return write_gpkg(gdf, path)


BASE = "http://127.0.0.1:8765"  # the address the review app is told it serves in tests (create_app's host)


def page_client(app, base_url: str = BASE, token: str | None = None):
    """A TestClient that sends what the review page sends: this server's Host and Origin, and the per-start
    secret the page carries (read from the page, as its script does; with ``token``, the page is opened
    with ``?token=`` once and the cookie it sets is kept)."""
    import json
    import re

    from starlette.testclient import TestClient

    client = TestClient(app, base_url=base_url)
    r = client.get("/" + (f"?token={token}" if token else ""))
    assert r.status_code == 200, r.text
    cfg = json.loads(re.search(r'<script type="application/json" id="satcheck-config">(.*?)</script>', r.text,
                               re.S).group(1))
    client.headers.update({"Origin": base_url, "X-Satcheck-Csrf": cfg["csrf"]})
    return client
