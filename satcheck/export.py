"""Writing patches: GeoPackage (canonical), GeoJSON, KML, CSV, Shapefile and an Excel table (.xlsx).

Every file is written under a temporary name and renamed into place, so
an interrupted export never leaves a half-written file under a final name.
The tables for people (CSV, KML, .xlsx) never show ``nan``; with
``lang="zh"`` their headers and values (class, change type, state, yes/no)
are Chinese.  Review exports carry :data:`satcheck.labels.REVIEW_FIELDS`
after the patch fields.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from xml.sax.saxutils import escape

import geopandas as gpd
import pandas as pd

from satcheck.atomic import atomic_dir, atomic_path, make_dirs
from satcheck.errors import OutputError, PatchFileError
from satcheck.labels import REVIEW_FIELDS, default_reasons_zh, display
from satcheck.outfolder import check_complete
from satcheck.patches import PATCH_FIELDS

FORMATS = ("gpkg", "geojson", "kml", "csv", "shp", "xlsx")
LAYER = "patches"
SHP_NAMES = {
    "patch_id": "patch_id", "period": "period", "class": "class", "change_type": "chg_type",
    "confidence": "confidence", "area_m2": "area_m2", "area_mu": "area_mu", "farmland_area_m2": "farm_m2",
    "basic_farmland_area_m2": "basic_m2", "on_basic_farmland": "on_basic", "outside_permit_area_m2": "out_pmt_m2",
    "farmland_class": "dlbm", "centroid_lon": "cent_lon", "centroid_lat": "cent_lat", "centroid_x": "cent_x",
    "centroid_y": "cent_y", "admin_code": "xzqdm", "admin_name": "xzqmc", "permit_no": "permit_no",
    "permit_holder": "pmt_holder", "approval_no": "approv_no", "before_date": "before_dt", "after_date": "after_dt",
    "before_tiles": "before_img", "after_tiles": "after_img", "status": "status",
    "reviewer": "reviewer", "decided_at": "decided_at", "reason": "reason", "note": "note", "prev_patch_id": "prev_id",
}
# Columns Excel would turn into numbers or dates unless they are text cells.
TEXT_FIELDS = {k for k, v in {**PATCH_FIELDS, **REVIEW_FIELDS}.items() if v[0] == "str"}
# KML colours are aabbggrr.
KML_COLOURS = {
    "farmland_construction": "ff0000ff", "illegal_mining": "ff00a5ff", "expired_permit_mining": "ff00d7ff",
    "out_of_bounds_mining": "ffff00ff", "approved": "ff00ff00", "other_change": "ffffff00",
}


def read_patches(path: str | Path) -> gpd.GeoDataFrame:
    p = Path(path)
    if not p.is_file():
        raise OutputError(f"{p}: patches file not found; pass the patches.gpkg written by 'satcheck run --rules'")
    check_complete(p)  # not the patches of a run that failed half-way
    try:
        gdf = gpd.read_file(p, layer=LAYER, engine="pyogrio")
    except Exception as exc:
        raise OutputError(f"{p}: has no '{LAYER}' layer ({type(exc).__name__}); pass a patches.gpkg from satcheck") from None
    check_patches(gdf, p)
    return gdf


def check_patches(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Refuse a patches layer that lost what each patch needs: an id (once), a period, a known class. A layer
    edited by hand or by another tool would otherwise be exported, or imported for review, wrong and unsaid."""
    from satcheck.patches import CLASSES

    missing = [c for c in ("patch_id", "period", "class") if c not in gdf.columns]
    if missing:
        raise PatchFileError(f"{path}: the patches layer has no {', '.join(missing)} column; pass the patches.gpkg "
                             "a run wrote, not an edited copy")
    if len(gdf) and gdf.crs is None:
        raise PatchFileError(f"{path}: the patches layer has no CRS, so its places cannot be put on a map or matched "
                             "across months; pass the patches.gpkg a run wrote, or define its CRS")
    for col in ("patch_id", "period", "class"):
        blank = gdf[col].isna() | (gdf[col].astype(str).str.strip() == "")
        if blank.any():
            raise PatchFileError(f"{path}: feature {int(blank.to_numpy().nonzero()[0][0]) + 1} has no {col}; "
                                 "pass the patches.gpkg a run wrote, or fill it in")
    twice = gdf["patch_id"][gdf["patch_id"].duplicated()]
    if len(twice):
        n = int((gdf["patch_id"] == twice.iloc[0]).sum())
        raise PatchFileError(f"{path}: patch id '{twice.iloc[0]}' is given to {n} features; each patch needs its "
                             "own id: pass the patches.gpkg a run wrote")
    unknown = sorted(set(gdf["class"]) - set(CLASSES))
    if unknown:
        raise PatchFileError(f"{path}: class '{unknown[0]}' is not a satcheck class ({', '.join(CLASSES)}); pass "
                             "the patches.gpkg a run wrote")


def select(patches: gpd.GeoDataFrame, classes: list[str] | None = None, admin: list[str] | None = None,
           min_area_m2: float | None = None) -> gpd.GeoDataFrame:
    keep = pd.Series(True, index=patches.index)
    if classes:
        keep &= patches["class"].isin(classes)
    if admin:
        keep &= patches["admin_code"].astype(str).map(lambda c: any(c.startswith(a) for a in admin))
    if min_area_m2:
        keep &= patches["area_m2"] >= min_area_m2
    return patches[keep]


def write_gpkg(patches: gpd.GeoDataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        patches.to_file(tmp, layer=LAYER, driver="GPKG", engine="pyogrio")
    return path


def write_geojson(patches: gpd.GeoDataFrame, path: Path) -> Path:
    # RFC 7946: longitude/latitude on WGS 84.
    with atomic_path(path) as tmp:
        patches.to_crs("EPSG:4326").to_file(tmp, driver="GeoJSON", engine="pyogrio", layer=path.stem,
                                           layer_options={"RFC7946": "YES"})
    return path


def fields(patches: pd.DataFrame) -> list[str]:
    """The patch fields, then the review fields the frame has."""
    return list(PATCH_FIELDS) + [k for k in REVIEW_FIELDS if k in patches.columns]


def header(field: str, lang: str) -> str:
    return {**PATCH_FIELDS, **REVIEW_FIELDS}[field][2] if lang == "zh" else field


def _headers(lang: str, names: list[str] | None = None) -> list[str]:
    return [header(k, lang) for k in (names or list(PATCH_FIELDS))]


def _rows(patches: pd.DataFrame, names: list[str], lang: str):
    reasons = default_reasons_zh() if lang == "zh" else None
    for _, r in patches.iterrows():
        yield [display(k, r[k] if k in r.index else None, lang, reasons) for k in names]


def write_csv(patches: gpd.GeoDataFrame, path: Path, lang: str = "en") -> Path:
    # UTF-8 with BOM: spreadsheet programs then show Chinese correctly.
    names = fields(patches)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(_headers(lang, names))
            w.writerows(_rows(patches, names, lang))
    return path


def write_xlsx(patches: gpd.GeoDataFrame, path: Path, lang: str = "en") -> Path:
    """One sheet, one row per patch; text fields are text cells, so DLBM 0101 and period 2026-10 stay as they are."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    names = fields(patches)
    wb = Workbook()
    ws = wb.active
    ws.title = "图斑" if lang == "zh" else "patches"
    ws.append(_headers(lang, names))
    for row in _rows(patches, names, lang):
        ws.append([str(v) if k in TEXT_FIELDS and v != "" else v for k, v in zip(names, row)])
    for j, k in enumerate(names, start=1):
        col = get_column_letter(j)
        if k in TEXT_FIELDS:
            for cell in ws[col]:
                cell.number_format = "@"
        ws.column_dimensions[col].width = min(40, max(10, len(header(k, lang)) * (2 if lang == "zh" else 1) + 2))
    ws.freeze_panes = "B2"
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return path


def write_shapefile(patches: gpd.GeoDataFrame, path: Path) -> Path:
    """patches.shp with .shx, .dbf, .prj and .cpg (UTF-8), field names of at most 10 characters."""
    gdf = patches.rename(columns=SHP_NAMES)
    gdf["on_basic"] = gdf["on_basic"].astype(int)
    with atomic_dir(path.parent / f".{path.stem}.shp.d") as tmp:
        gdf.to_file(tmp / path.name, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
        cpg = tmp / f"{path.stem}.cpg"
        if not cpg.exists():
            cpg.write_text("UTF-8", encoding="ascii")
        for f in sorted(tmp.iterdir()):
            os.replace(f, path.parent / f.name)
    shutil.rmtree(path.parent / f".{path.stem}.shp.d", ignore_errors=True)  # the emptied staging folder
    return path


def _kml_coords(ring) -> str:
    return " ".join(f"{x:.7f},{y:.7f},0" for x, y in ring.coords)


def _kml_polygon(poly) -> str:
    inner = "".join("<innerBoundaryIs><LinearRing><coordinates>" + _kml_coords(r) +
                    "</coordinates></LinearRing></innerBoundaryIs>" for r in poly.interiors)
    return (f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{_kml_coords(poly.exterior)}</coordinates>"
            f"</LinearRing></outerBoundaryIs>{inner}</Polygon>")


def write_kml(patches: gpd.GeoDataFrame, path: Path, lang: str = "en") -> Path:
    geo = patches.to_crs("EPSG:4326")
    mu = "亩" if lang == "zh" else "mu"
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', '<kml xmlns="http://www.opengis.net/kml/2.2"><Document>',
             f"<name>{escape(path.stem)}</name>"]
    for cls, colour in KML_COLOURS.items():
        parts.append(f'<Style id="{cls}"><LineStyle><color>{colour}</color><width>2</width></LineStyle>'
                     f"<PolyStyle><color>40{colour[2:]}</color></PolyStyle></Style>")
    names = fields(geo)
    for (_, r), values in zip(geo.iterrows(), _rows(geo, names, lang)):
        label = display("class", r["class"], lang)
        rows = "".join(f"<tr><td>{escape(header(k, lang))}</td><td>{escape(str(v))}</td></tr>"
                       for k, v in zip(names, values) if v != "")
        g = r.geometry
        polys = [g] if g.geom_type == "Polygon" else list(g.geoms)
        geom = _kml_polygon(polys[0]) if len(polys) == 1 else \
            "<MultiGeometry>" + "".join(_kml_polygon(p) for p in polys) + "</MultiGeometry>"
        parts.append(f"<Placemark><name>{escape(r['patch_id'])}</name>"
                     f"<description><![CDATA[<b>{escape(label)}</b> {r['area_m2']:.0f} m² ({r['area_mu']:.2f} {mu})"
                     f"<table>{rows}</table>]]></description><styleUrl>#{r['class']}</styleUrl>{geom}</Placemark>")
    parts.append("</Document></kml>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_all(patches: gpd.GeoDataFrame, out: str | Path, formats: tuple[str, ...] = FORMATS, lang: str = "en",
              stem: str = "patches") -> dict[str, str]:
    out = Path(out)
    if not stem or stem in (".", "..") or any(c in stem for c in "/\\\0") or stem != stem.strip():
        raise OutputError(f"{stem!r}: not a file name (--name is the name of the files written in {out}, without a "
                          "folder or extension); pass a plain name such as 'patches_2026_10'")
    make_dirs(out)
    written = {}
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        if fmt == "gpkg":
            write_gpkg(patches, path)
        elif fmt == "geojson":
            write_geojson(patches, path)
        elif fmt == "kml":
            write_kml(patches, path, lang)
        elif fmt == "csv":
            write_csv(patches, path, lang)
        elif fmt == "shp":
            write_shapefile(patches, path)
        elif fmt == "xlsx":
            write_xlsx(patches, path, lang)
        else:
            raise OutputError(f"{path}: unknown format '{fmt}'; choose from {', '.join(FORMATS)}")
        written[fmt] = str(path)
    return written
