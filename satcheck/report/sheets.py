"""Field-verification sheets: one self-contained HTML file and one PDF per batch.

The PDF embeds a TrueType font with Chinese glyphs (WenQuanYi Micro Hei,
Noto Sans SC TTF, Droid Sans Fallback... whichever is found first, or
``report.cjk_font``), so Chinese text never comes out as empty boxes.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from satcheck import __version__
from satcheck.atomic import atomic_path
from satcheck.errors import OutputError
from satcheck.patches import CLASS_ZH, PATCH_FIELDS

CJK_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/simhei.ttf",
    "C:/Windows/Fonts/msyh.ttc",
)
TITLE = "卫片执法图斑外业核查表"
SHEET_FIELDS = ("class", "change_type", "confidence", "area_m2", "area_mu", "farmland_area_m2", "basic_farmland_area_m2",
                "outside_permit_area_m2", "farmland_class", "centroid_lon", "centroid_lat", "centroid_x", "centroid_y",
                "admin_code", "admin_name", "permit_no", "permit_holder", "approval_no", "before_tiles", "after_tiles")


def find_cjk_font(configured: str | None = None) -> Path:
    for cand in (configured, os.environ.get("SATCHECK_CJK_FONT"), *CJK_FONT_CANDIDATES):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise OutputError("no font with Chinese glyphs found for the PDF sheet; install one (Debian: apt-get install "
                      "fonts-wqy-microhei) or set report.cjk_font to a .ttf/.ttc file")


def _data_uri(path: Path | None) -> str:
    if path is None or not Path(path).is_file():
        return ""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _records(patches: pd.DataFrame, chips: dict[str, tuple[Path, Path, Path]]) -> list[dict]:
    recs = []
    for _, r in patches.iterrows():
        d = {k: (None if isinstance(r[k], float) and pd.isna(r[k]) else r[k]) for k in PATCH_FIELDS}
        d["class_zh"] = CLASS_ZH.get(d["class"], d["class"])
        b, a, loc = chips.get(d["patch_id"], (None, None, None))
        d["before_chip"], d["after_chip"], d["locator"] = _data_uri(b), _data_uri(a), _data_uri(loc)
        d["_paths"] = (b, a, loc)
        recs.append(d)
    return recs


def write_html(patches: pd.DataFrame, chips: dict, path: Path) -> Path:
    env = Environment(loader=PackageLoader("satcheck", "templates"), autoescape=select_autoescape(["html", "j2"]))
    recs = _records(patches, chips)
    first = recs[0] if recs else {}
    html = env.get_template("field_sheet.html.j2").render(
        patches=recs, period=first.get("period", ""), before_date=first.get("before_date", ""),
        after_date=first.get("after_date", ""), version=__version__,
        fields=[(k, PATCH_FIELDS[k][2]) for k in SHEET_FIELDS])
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path


def write_pdf(patches: pd.DataFrame, chips: dict, path: Path, font_path: str | None = None) -> Path:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = find_cjk_font(font_path)
    kw = {"subfontIndex": 0} if font.suffix.lower() == ".ttc" else {}
    pdfmetrics.registerFont(TTFont("CJK", str(font), **kw))
    title = ParagraphStyle("t", fontName="CJK", fontSize=18, leading=24)
    h2 = ParagraphStyle("h", fontName="CJK", fontSize=13, leading=18)
    body = ParagraphStyle("b", fontName="CJK", fontSize=8.5, leading=11)
    grid = TableStyle([("FONT", (0, 0), (-1, -1), "CJK", 8), ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")])
    recs = _records(patches, chips)
    first = recs[0] if recs else {}
    story = [Paragraph(TITLE, title),
             Paragraph(f"监测期 {first.get('period', '')}　前时相 {first.get('before_date', '')}　后时相 "
                       f"{first.get('after_date', '')}　图斑 {len(recs)} 个　satcheck {__version__}", body),
             Spacer(1, 4 * mm)]
    rows = [["图斑编号", "类型", "面积(m²)", "面积(亩)", "行政区", "经度", "纬度"]]
    for d in recs:
        rows.append([d["patch_id"], d["class_zh"], f"{d['area_m2']:.0f}", f"{d['area_mu']:.2f}",
                     f"{d['admin_name']} {d['admin_code']}", f"{d['centroid_lon']:.6f}", f"{d['centroid_lat']:.6f}"])
    story.append(Table(rows, repeatRows=1, style=grid))
    for d in recs:
        story += [PageBreak(), Paragraph(f"{d['patch_id']}　{d['class_zh']}", h2), Spacer(1, 2 * mm)]
        b, a, loc = d["_paths"]
        imgs = [[Image(str(p), 62 * mm, 62 * mm) if p else "" for p in (b, a)] +
                [Image(str(loc), 45 * mm, 45 * mm) if loc else ""]]
        imgs.append([f"前时相 {d['before_date']}", f"后时相 {d['after_date']}", "位置"])
        story.append(Table(imgs, style=TableStyle([("FONT", (0, 0), (-1, -1), "CJK", 8),
                                                   ("ALIGN", (0, 0), (-1, -1), "CENTER")])))
        attrs = [["属性", "值"]] + [[PATCH_FIELDS[k][2], Paragraph("" if d[k] is None else str(d[k]), body)]
                                    for k in SHEET_FIELDS]
        story.append(Table(attrs, colWidths=[55 * mm, 115 * mm], style=grid))
        story.append(Spacer(1, 3 * mm))
        blanks = [["外业核查", ""], ["核查结论", "□ 合法　□ 违法　□ 其他 ________"],
                  ["现场照片", "□ 已拍　□ 未拍　编号 ______"],
                  ["核查人", ""], ["核查日期", ""], ["签字", ""]]
        story.append(Table(blanks, colWidths=[55 * mm, 115 * mm], rowHeights=[7 * mm] * len(blanks), style=grid))
    with atomic_path(path) as tmp:
        SimpleDocTemplate(str(tmp), pagesize=A4, title=f"{TITLE} {first.get('period', '')}", author="satcheck",
                          leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm).build(story)
    return path
