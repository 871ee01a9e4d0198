"""Rule-layer text on the field sheets is text, never markup (issue 19). (The other inputs that gave a wrong answer
with exit code 0 and no word, each now a correct answer or a one-line error: the fault catalogue,
tests/fault_catalogue.py.)"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest

from tests.cli_results import invoke as _run
from tests.enforcement_data import jurisdiction


@pytest.fixture()
def site(tmp_path) -> Path:
    jurisdiction(tmp_path)
    return tmp_path


def _run_site(site: Path, *extra):
    return _run("run", site / "before", site / "after", "--rules", site / "rules", "--out", site / "out",
                "--detector", "cva", *extra)


def test_rule_layer_text_is_not_markup_on_the_sheets(site):
    """A permit holder is shown as written on the PDF and HTML sheets: no markup, no local file embedded."""
    import pypdfium2 as pdfium
    from PIL import Image

    secret = site / "secret.png"
    Image.new("RGB", (7, 13), (255, 0, 0)).save(secret)
    holder = f'Zhang & Sons <b>Ltd <img src="{secret}" width="7" height="13"/>'
    permits = gpd.read_file(site / "rules" / "mining_permits.gpkg")
    permits["holder"] = [holder]
    permits.to_file(site / "rules" / "mining_permits.gpkg")
    r = _run_site(site)
    assert r.exit_code == 0, (r.output, r.exception)
    out = site / "out"
    assert (out / "run.json").is_file()
    doc = pdfium.PdfDocument(str(out / "field_sheet.pdf"))
    try:
        text = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc))).replace("\r", "")
        sizes = {tuple(im.get_px_size()) for i in range(len(doc))
                 for im in doc[i].get_objects(filter=(pdfium.raw.FPDF_PAGEOBJ_IMAGE,))}
    finally:
        doc.close()
    assert holder.replace(" ", "") in text.replace("\n", "").replace(" ", "")
    assert sizes and (7, 13) not in sizes  # the chips, and not the local file
    html = (out / "field_sheet.html").read_text(encoding="utf-8")
    assert holder not in html and holder.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace('"', "&#34;") in html
