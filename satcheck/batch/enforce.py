"""From change polygons to enforcement outputs: patches, exports, chips and field sheets."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from rasterio.warp import transform_bounds

from satcheck.align import Pair
from satcheck.config import M2_PER_MU, RunConfig
from satcheck.errors import OutputError
from satcheck.export import write_all, write_gpkg
from satcheck.patches import PatchContext, make_patches
from satcheck.report.chips import overview, write_chips, write_locator
from satcheck.report.sheets import write_html, write_pdf
from satcheck.rules import load_rules

FIELD_FORMATS = ("geojson", "kml", "csv", "shp")


def patch_context(pairs: list[Pair]) -> PatchContext:
    befores = sorted({b for p in pairs for b in p.befores}, key=lambda t: str(t.path))
    afters = [p.after for p in pairs]
    b_dates = [b.date for b in befores if b.date]
    a_dates = [a.date for a in afters if a.date]
    return PatchContext(max(b_dates) if b_dates else None, max(a_dates) if a_dates else None,
                        tuple(b.path.name for b in befores), tuple(a.path.name for a in afters), afters[0].pixel_m)


def for_the_field(patches: gpd.GeoDataFrame, cfg: RunConfig) -> gpd.GeoDataFrame:
    drop = set()
    if not cfg.patches.export_other:
        drop.add("other_change")
    if not cfg.patches.export_approved:
        drop.add("approved")
    return patches[~patches["class"].isin(drop)]


def enforcement_outputs(changes: gpd.GeoDataFrame, pairs: list[Pair], rules_dir: str | Path | None,
                        out: Path, cfg: RunConfig) -> tuple[gpd.GeoDataFrame, dict[str, str], list[str]]:
    """Write patches and everything made from them; returns (all patches, output paths, rule-layer problems)."""
    crs = changes.crs
    rules = load_rules(rules_dir, crs, cfg.rules)
    ctx = patch_context(pairs)
    patches = make_patches(changes, rules, ctx, cfg.rules, cfg.patches)
    outputs = {"patches": str(write_gpkg(patches, out / "patches.gpkg"))}
    field = for_the_field(patches, cfg)
    outputs.update({f"patches_{k}": v for k, v in write_all(field, out, FIELD_FORMATS, cfg.patches.lang).items()})
    if len(field) and (cfg.report.html or cfg.report.pdf):
        chips = _chips(field, pairs, out / "chips", ctx.pixel_m, cfg)
        if cfg.report.html:
            outputs["sheet_html"] = str(write_html(field, chips, out / "field_sheet.html"))
        if cfg.report.pdf:
            try:
                outputs["sheet_pdf"] = str(write_pdf(field, chips, out / "field_sheet.pdf", cfg.report.cjk_font))
            except OutputError as exc:  # the HTML sheet is there; say why the PDF is not
                rules.problems.append(f"field_sheet.pdf not written: {exc}")
    return patches, outputs, rules.problems


def _chips(patches: gpd.GeoDataFrame, pairs: list[Pair], folder: Path, pixel_m: float, cfg: RunConfig) -> dict:
    befores = sorted({b for p in pairs for b in p.befores}, key=lambda t: str(t.path))
    afters = [p.after for p in pairs]
    crs = patches.crs
    xs = [transform_bounds(p.after.crs, crs, *p.after.bounds) for p in pairs]
    bounds = (min(b[0] for b in xs), min(b[1] for b in xs), max(b[2] for b in xs), max(b[3] for b in xs))
    base, base_t = overview(afters, crs, bounds)
    chips = {}
    for _, r in patches.iterrows():
        c = write_chips(r["patch_id"], r.geometry, crs, befores, afters, folder, pixel_m, cfg.report.chip_min_m,
                        cfg.report.chip_px)
        loc = write_locator(base, base_t, r.geometry, folder / f"{r['patch_id']}_locator.png")
        chips[r["patch_id"]] = (c.before, c.after, loc)
    return chips


def patch_summary(patches: gpd.GeoDataFrame) -> dict:
    by = {}
    for cls, grp in patches.groupby("class"):
        by[cls] = {"count": int(len(grp)), "area_m2": round(float(grp["area_m2"].sum()), 1),
                   "area_mu": round(float(grp["area_m2"].sum()) / M2_PER_MU, 2)}
    return {"count": int(len(patches)), "by_class": by}
