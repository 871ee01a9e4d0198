"""From change polygons to enforcement outputs: patches, exports, chips and field sheets.

Patch ids stay with their places across reruns (:mod:`satcheck.patch_ids`): the ids already issued for the
period come from the output folder's registry (``OUT/patch_ids.json``, or the ``patches.gpkg`` of an older run
there) and from the ledger a batch imports into; the registry is written before the patch files.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import shapely

from satcheck.config import M2_PER_MU, RunConfig
from satcheck.errors import OutputError
from satcheck.export import write_all, write_gpkg
from satcheck.geometry import box_in
from satcheck.pairs import Pair, distinct_names, earlier_tiles
from satcheck.patch_ids import Issued, read_registry, write_registry
from satcheck.patches import PatchContext, make_patches, outside_admin
from satcheck.progress import Progress, report
from satcheck.report.chips import cores, write_patch_images
from satcheck.report.sheets import chip_jpegs, write_html, write_pdf
from satcheck.rules import check_fit, load_rules

FIELD_FORMATS = ("geojson", "kml", "csv", "shp")


def footprint(tile, crs) -> shapely.Geometry:
    """A tile's outline in ``crs`` (edges densified, so a reprojected outline stays close)."""
    b = tile.bounds
    return box_in((b.left, b.bottom, b.right, b.top), tile.crs, crs, 16)


def imagery_footprint(pairs: list[Pair], crs) -> shapely.Geometry:
    """Where the later tiles are, in ``crs``."""
    return shapely.union_all([footprint(p.after, crs) for p in pairs])


def patch_context(pairs: list[Pair], crs=None) -> PatchContext:
    """Dates, tiles and pixel size of a run's patches; with ``crs``, the tiles' footprints in it, so that each patch
    names only the tiles it lies on."""
    befores = earlier_tiles(pairs)
    afters = [p.after for p in pairs]
    b_dates = [b.date for b in befores if b.date]
    a_dates = [a.date for a in afters if a.date]
    # Tiles listed by file name, and by their folder's too where two of a date share a file name (a STAC
    # collection's visual.tif), so that a field team can tell which image a patch was seen on. A later tile's is
    # its pair's name.
    names = {b.path: b.path.name for b in befores} | {path: f"{label}{path.suffix}"
                                                       for path, label in distinct_names(befores).items()}
    names |= {p.after.path: f"{p.name}{p.after.path.suffix}" for p in pairs}
    prints = () if crs is None else tuple(
        [("before", names[b.path], footprint(b, crs)) for b in befores]
        + [("after", names[a.path], footprint(a, crs)) for a in afters])
    return PatchContext(max(b_dates) if b_dates else None, max(a_dates) if a_dates else None,
                        tuple(names[b.path] for b in befores), tuple(names[a.path] for a in afters),
                        afters[0].pixel_m, prints)


def issued_ids(out: Path, ledger: str | Path | None, period: str, crs, cfg: RunConfig) -> list[Issued]:
    """Ids already issued for ``period``: the output folder's registry (every period) and the ledger's."""
    known = read_registry(out, crs)
    if ledger is not None and Path(ledger).exists():
        from satcheck.review.ledger import Ledger

        with Ledger(ledger, cfg.review, create=False) as lg:
            known += lg.issued(period, crs)
    return known


def for_the_field(patches: gpd.GeoDataFrame, cfg: RunConfig) -> gpd.GeoDataFrame:
    drop = set()
    if not cfg.patches.export_other:
        drop.add("other_change")
    if not cfg.patches.export_approved:
        drop.add("approved")
    return patches[~patches["class"].isin(drop)]


def enforcement_outputs(changes: gpd.GeoDataFrame, pairs: list[Pair], rules_dir: str | Path | None,
                        out: Path, cfg: RunConfig, ledger: str | Path | None = None,
                        progress: Progress | None = None) -> tuple[gpd.GeoDataFrame, dict[str, str], list[str]]:
    """Write patches and everything made from them; returns (all patches, output paths, rule-layer problems).

    ``ledger``: the review ledger the patches go to (a batch's), whose ids of the period are kept too;
    ``progress``: told of the stages patches, chips and sheets (:mod:`satcheck.progress`).
    """
    crs = changes.crs
    report(progress, "patches", 0, len(changes))
    problems = check_fit(rules_dir, imagery_footprint(pairs, crs), crs, pairs[0].after.crs, cfg.rules.allow_partial)
    rules = load_rules(rules_dir, crs, cfg.rules)
    rules.problems[:0] = problems
    ctx = patch_context(pairs, crs)
    known = issued_ids(out, ledger, ctx.period, crs, cfg)
    patches = make_patches(changes, rules, ctx, cfg.rules, cfg.patches, known, cfg.review)
    rules.problems.extend(w for w in [outside_admin(patches, rules)] if w)
    outputs = {"patch_ids": str(write_registry(out, [k for k in known if not k.in_ledger],
                                               list(patches["patch_id"]), list(patches["period"]),
                                               list(patches.geometry.values), crs))}
    outputs["patches"] = str(write_gpkg(patches, out / "patches.gpkg"))
    field = for_the_field(patches, cfg)
    outputs.update({f"patches_{k}": v for k, v in write_all(field, out, FIELD_FORMATS, cfg.patches.lang).items()})
    report(progress, "patches", len(changes), len(changes))
    sheets = int(cfg.report.html) + int(cfg.report.pdf)
    if len(field) and sheets:
        report(progress, "chips", 0, len(field))
        chips = _chips(field, pairs, out / "chips", ctx.pixel_m, cfg, rules, progress)
        report(progress, "sheets", 0, sheets)
        jpegs = chip_jpegs(chips, cores())  # decoded and encoded once, for both sheets
        if cfg.report.html:
            outputs["sheet_html"] = str(write_html(field, chips, out / "field_sheet.html", jpegs=jpegs))
            report(progress, "sheets", 1, sheets)
        if cfg.report.pdf:
            try:
                outputs["sheet_pdf"] = str(write_pdf(field, chips, out / "field_sheet.pdf", cfg.report.cjk_font,
                                                     jpegs=jpegs))
            except OutputError as exc:  # the HTML sheet is there; say why the PDF is not
                rules.problems.append(f"field_sheet.pdf not written: {exc}")
            report(progress, "sheets", sheets, sheets)
    return patches, outputs, rules.problems


def _chips(patches: gpd.GeoDataFrame, pairs: list[Pair], folder: Path, pixel_m: float, cfg: RunConfig,
           rules, progress: Progress | None = None) -> dict:
    befores = earlier_tiles(pairs)
    # Outlines of farmland, basic farmland and permits on every chip; the locator shows ~2 km with the admin unit.
    return write_patch_images(patches, befores, [p.after for p in pairs], folder, pixel_m, cfg.report.chip_min_m,
                              cfg.report.chip_px, rules=rules, progress=progress)  # stage "chips", per patch


def patch_summary(patches: gpd.GeoDataFrame, cfg: RunConfig | None = None) -> dict:
    """Counts and areas by class: ``count`` patches in patches.gpkg, ``exported`` of them in the field files
    (without approved and other_change unless the config exports them); each class says whether it is exported."""
    field = set(for_the_field(patches, cfg or RunConfig())["class"]) if len(patches) else set()
    by = {}
    for cls, grp in patches.groupby("class"):
        by[cls] = {"count": int(len(grp)), "area_m2": round(float(grp["area_m2"].sum()), 1),
                   "area_mu": round(float(grp["area_m2"].sum()) / M2_PER_MU, 2), "exported": cls in field}
    exported = int(patches["class"].isin(field).sum()) if len(patches) else 0
    return {"count": int(len(patches)), "exported": exported, "by_class": by}
