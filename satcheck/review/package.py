"""What a field team takes out (``satcheck review package``): sheets, map files and a table of reviewed patches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from satcheck.errors import OutputError
from satcheck.export import write_all
from satcheck.review.frames import histories, review_frame
from satcheck.review.ledger import Ledger
from satcheck.review.paths import chips as chip_paths

# States a field package can be made of: confirmed suspects, and cases to go back to (to check rectification).
PACKAGE_STATES = ("accepted", "verified_illegal")
PACKAGE_FORMATS = ("gpkg", "kml", "csv", "xlsx")


@dataclass
class Package:
    count: int
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def write_package(lg: Ledger, out: str | Path, state: str = "accepted", period: str | None = None,
                  cls: str | None = None, admin: str | None = None, lang: str = "zh", font: str | None = None,
                  html: bool = True, pdf: bool = True) -> Package:
    """Field sheets (HTML and PDF) and patches.gpkg/.kml/.csv/.xlsx of the patches in ``state``."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot be made a folder ({exc.strerror or exc}); choose a writable --out folder") \
            from None
    gdf = review_frame(lg, period=period, cls=cls, state=state, admin=admin)
    pkg = Package(len(gdf))
    pkg.outputs.update(write_all(gdf, out, PACKAGE_FORMATS, lang, stem="patches"))
    ids = list(gdf["patch_id"])
    hist = histories(lg, ids)
    review, chips, missing = {}, {}, []
    for pid in ids:
        e = hist[pid][-1]  # the latest event: every patch has at least its import
        review[pid] = {"state": e.to_state, "reviewer": e.reviewer, "at": e.at, "note": e.note, "reason": e.reason,
                       "history": hist[pid]}
        c = chip_paths(lg, pid)
        if c["before"].missing or c["after"].missing:
            missing.append(pid)
        chips[pid] = tuple(c[w].path if c[w].ok else None for w in ("before", "after", "locator"))
    if missing:
        pkg.warnings.append(f"{len(missing)} of {len(ids)} patches have chips recorded that are not there any more "
                            f"(first: {missing[0]}); their sheets show no image. Move the run folders back beside "
                            f"{lg.path.name}, or re-run them")
    from satcheck.report.sheets import write_html, write_pdf

    if html:
        pkg.outputs["sheet_html"] = str(write_html(gdf, chips, out / "field_sheet.html", review, purpose="field"))
    if pdf:
        try:
            pkg.outputs["sheet_pdf"] = str(write_pdf(gdf, chips, out / "field_sheet.pdf", font, review, purpose="field"))
        except OutputError as exc:
            pkg.warnings.append(f"field_sheet.pdf not written: {exc}")
    return pkg
