"""Field-verification sheets: one self-contained HTML file and one PDF per batch.

Two kinds: the sheets a run writes are for **review** (they say so: nothing on them is decided yet);
``satcheck review package`` writes the sheets for the **field**, of accepted patches only, each with its
review decision, reviewer, note and prior history.  Chips are embedded as JPEG (a few tens of KB each),
so a sheet stays well under 200 KB per patch.  Values are what a person reads (Chinese class, change
type, state, yes/no; never ``nan``).

The PDF embeds a TrueType font with Chinese glyphs (WenQuanYi Micro Hei,
Noto Sans SC TTF, Droid Sans Fallback... whichever is found first, or
``report.cjk_font``), so Chinese text never comes out as empty boxes.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from satcheck import __version__
from satcheck.atomic import atomic_path
from satcheck.errors import OutputError
from satcheck.labels import REVIEW_FIELDS, default_reasons_zh, display, is_blank
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
PURPOSES = {
    "review": ("审核用：图斑尚未审核，不作外业核查依据；审核后用 satcheck review package 生成外业核查表",
               "For review: these patches are not reviewed yet. Field sheets come from 'satcheck review package'."),
    "field": ("外业核查用：以下图斑均已内业审核确认", "For the field: every patch below was accepted in review."),
}
SHEET_FIELDS = ("class", "change_type", "confidence", "area_m2", "area_mu", "farmland_area_m2", "basic_farmland_area_m2",
                "outside_permit_area_m2", "farmland_class", "centroid_lon", "centroid_lat", "centroid_x", "centroid_y",
                "admin_code", "admin_name", "permit_no", "permit_holder", "approval_no", "before_tiles", "after_tiles")
FORMATS = {"confidence": "{:.2f}", "area_m2": "{:.0f}", "area_mu": "{:.2f}", "farmland_area_m2": "{:.0f}",
           "basic_farmland_area_m2": "{:.0f}", "outside_permit_area_m2": "{:.0f}", "centroid_lon": "{:.6f}",
           "centroid_lat": "{:.6f}", "centroid_x": "{:.1f}", "centroid_y": "{:.1f}"}
JPEG_QUALITY = 80


def find_cjk_font(configured: str | None = None) -> Path:
    for cand in (configured, os.environ.get("SATCHECK_CJK_FONT"), *CJK_FONT_CANDIDATES):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise OutputError("no font with Chinese glyphs found for the PDF sheet; install one (Debian: apt-get install "
                      "fonts-wqy-microhei) or set report.cjk_font to a .ttf/.ttc file")


def jpeg(path: Path | None, quality: int = JPEG_QUALITY) -> bytes | None:
    """The image at ``path`` as JPEG bytes, or None when there is none."""
    if path is None or not Path(path).is_file():
        return None
    from PIL import Image

    with Image.open(path) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def chip_jpegs(chips: dict[str, tuple], threads: int = 2) -> dict[Path, bytes | None]:
    """Every image of ``chips`` (patch id -> paths) as JPEG, once for both sheets, decoded and encoded in
    ``threads`` threads (Pillow releases the GIL while it does)."""
    paths = sorted({Path(p) for ps in chips.values() for p in ps if p is not None})
    with ThreadPoolExecutor(max(1, threads)) as pool:
        return dict(zip(paths, pool.map(jpeg, paths)))


def _jpeg_of(path: Path | None, jpegs: dict[Path, bytes | None] | None) -> bytes | None:
    if path is not None and jpegs is not None and Path(path) in jpegs:
        return jpegs[Path(path)]
    return jpeg(path)


def _data_uri(data: bytes | None) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii") if data else ""


def shown(field: str, v, lang: str = "zh", reasons: dict[str, str] | None = None) -> str:
    """A field's value as text on a sheet."""
    if is_blank(v):
        return ""
    if field in FORMATS and isinstance(v, (int, float)) and not isinstance(v, bool):
        return FORMATS[field].format(v)
    return str(display(field, v, lang, reasons))


def _history(events: list, lang: str, reasons: dict[str, str]) -> list[str]:
    lines = []
    for e in events:
        frm, to = (shown("state", s, lang, reasons) for s in (e.from_state, e.to_state))
        why = f"（{shown('reason', e.reason, lang, reasons)}）" if e.reason else ""
        note = f" — {e.note}" if e.note else ""
        lines.append(f"{e.at[:16].replace('T', ' ')} UTC {e.reviewer}：{frm} → {to}{why}{note}")
    return lines


def _records(patches: pd.DataFrame, chips: dict[str, tuple], review: dict[str, dict] | None = None,
             lang: str = "zh", jpegs: dict[Path, bytes | None] | None = None) -> list[dict]:
    reasons = default_reasons_zh()
    recs = []
    for _, r in patches.iterrows():
        d = {k: (None if is_blank(r.get(k)) else r.get(k)) for k in PATCH_FIELDS}
        d["class_zh"] = CLASS_ZH.get(d["class"], d["class"])
        d["show"] = {k: shown(k, d[k], lang, reasons) for k in PATCH_FIELDS}
        b, a, loc = (tuple(chips.get(d["patch_id"], ())) + (None, None, None))[:3]
        d["_jpegs"] = tuple(_jpeg_of(p, jpegs) for p in (b, a, loc))
        d["before_chip"], d["after_chip"], d["locator"] = (_data_uri(j) for j in d["_jpegs"])
        info = (review or {}).get(d["patch_id"])
        if info is not None:
            d["review"] = {
                "state": shown("state", info.get("state"), lang, reasons),
                "reviewer": info.get("reviewer") or "", "at": _utc(info.get("at")),
                "note": info.get("note") or "", "reason": shown("reason", info.get("reason"), lang, reasons),
                "history": _history(info.get("history", []), lang, reasons)}
        recs.append(d)
    return recs


def _review_labels() -> list[tuple[str, str]]:
    return [("state", "审核结论"), ("reviewer", REVIEW_FIELDS["reviewer"][2]), ("at", REVIEW_FIELDS["decided_at"][2]),
            ("note", REVIEW_FIELDS["note"][2])]


def write_html(patches: pd.DataFrame, chips: dict, path: Path, review: dict[str, dict] | None = None,
               purpose: str = "review", lang: str = "zh", jpegs: dict[Path, bytes | None] | None = None) -> Path:
    """``jpegs``: the chips as :func:`chip_jpegs` gives them, where the PDF takes them too."""
    env = Environment(loader=PackageLoader("satcheck", "templates"), autoescape=select_autoescape(["html", "j2"]))
    recs = _records(patches, chips, review, lang, jpegs)
    first = recs[0] if recs else {}
    html = env.get_template("field_sheet.html.j2").render(
        patches=recs, period=first.get("period", "") or "", before_date=first.get("before_date", "") or "",
        after_date=first.get("after_date", "") or "", version=__version__, purpose=PURPOSES[purpose],
        fields=[(k, PATCH_FIELDS[k][2]) for k in SHEET_FIELDS], review_labels=_review_labels())
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path


_FONTS: dict[str, str] = {}  # font file -> the name it is registered under in reportlab
_FONTS_LOCK = threading.Lock()


def _cjk_font(font: Path) -> str:
    """The reportlab name of a CJK font, registered once per process: parsing a CJK TrueType file takes about half
    a second, once per PDF before (reportlab keeps each document's subset of a registered font apart)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    with _FONTS_LOCK:
        if str(font) not in _FONTS:
            name = f"CJK{len(_FONTS)}"
            kw = {"subfontIndex": 0} if font.suffix.lower() == ".ttc" else {}
            pdfmetrics.registerFont(TTFont(name, str(font), **kw))
            _FONTS[str(font)] = name
        return _FONTS[str(font)]


def write_pdf(patches: pd.DataFrame, chips: dict, path: Path, font_path: str | None = None,
              review: dict[str, dict] | None = None, purpose: str = "review", lang: str = "zh",
              jpegs: dict[Path, bytes | None] | None = None) -> Path:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    cjk = _cjk_font(find_cjk_font(font_path))
    title = ParagraphStyle("t", fontName=cjk, fontSize=18, leading=24)
    h2 = ParagraphStyle("h", fontName=cjk, fontSize=13, leading=18)
    body = ParagraphStyle("b", fontName=cjk, fontSize=8.5, leading=11)
    banner = ParagraphStyle("p", fontName=cjk, fontSize=10, leading=14,
                            textColor=colors.HexColor("#b00000" if purpose == "review" else "#006000"))
    grid = TableStyle([("FONT", (0, 0), (-1, -1), cjk, 8), ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")])
    recs = _records(patches, chips, review, lang, jpegs)
    first = recs[0] if recs else {}
    story = [Paragraph(TITLE, title), Paragraph(PURPOSES[purpose][0], banner),
             Paragraph(_escape(f"监测期 {first.get('period') or ''}　前时相 {first.get('before_date') or ''}　后时相 "
                               f"{first.get('after_date') or ''}　图斑 {len(recs)} 个　satcheck {__version__}"), body),
             Spacer(1, 4 * mm)]
    rows = [["图斑编号", "类型", "面积(m²)", "面积(亩)", "行政区", "经度", "纬度"]]
    for d in recs:
        s = d["show"]
        rows.append([d["patch_id"], d["class_zh"], s["area_m2"], s["area_mu"], f"{s['admin_name']} {s['admin_code']}",
                     s["centroid_lon"], s["centroid_lat"]])
    story.append(Table(rows, repeatRows=1, style=grid))

    def image(data: bytes | None, side):
        return Image(io.BytesIO(data), side, side) if data else "（无影像）"

    for d in recs:
        story += [PageBreak(), Paragraph(_escape(f"{d['patch_id']}　{d['class_zh']}"), h2), Spacer(1, 2 * mm)]
        b, a, loc = d["_jpegs"]
        imgs = [[image(b, 62 * mm), image(a, 62 * mm), image(loc, 45 * mm)],
                [f"前时相 {d['show']['before_date']}", f"后时相 {d['show']['after_date']}", "位置"]]
        story.append(Table(imgs, style=TableStyle([("FONT", (0, 0), (-1, -1), cjk, 8),
                                                   ("ALIGN", (0, 0), (-1, -1), "CENTER")])))
        cells = [[PATCH_FIELDS[k][2], Paragraph(_escape(d["show"][k]), body)] for k in SHEET_FIELDS]
        half = (len(cells) + 1) // 2  # two pairs of columns, so that a patch fits one page with its review
        attrs = [["属性", "值", "属性", "值"]] + [cells[i] + (cells[i + half] if i + half < len(cells) else ["", ""])
                                              for i in range(half)]
        story.append(Table(attrs, colWidths=[43 * mm, 42 * mm, 43 * mm, 42 * mm], style=grid))
        story.append(Spacer(1, 3 * mm))
        if "review" in d:
            rv = d["review"]
            rtab = [["内业审核", ""]] + [[label, Paragraph(_escape(rv[k]), body)] for k, label in _review_labels()]
            if rv["history"]:
                rtab.append(["审核记录", Paragraph("<br/>".join(_escape(x) for x in rv["history"]), body)])
            story.append(Table(rtab, colWidths=[55 * mm, 115 * mm], style=grid))
            story.append(Spacer(1, 3 * mm))
        blanks = [["外业核查", ""], ["核查结论", "□ 合法　□ 违法　□ 其他 ________"],
                  ["现场照片", "□ 已拍　□ 未拍　编号 ______"],
                  ["核查人", ""], ["核查日期", ""], ["签字", ""]]
        story.append(Table(blanks, colWidths=[55 * mm, 115 * mm], rowHeights=[7 * mm] * len(blanks), style=grid))
    with atomic_path(path) as tmp:
        SimpleDocTemplate(str(tmp), pagesize=A4, title=f"{TITLE} {first.get('period') or ''}", author="satcheck",
                          leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm).build(story)
    return path


def _utc(at: str | None) -> str:
    return f"{at[:16].replace('T', ' ')} UTC" if at else ""


def _escape(text: object) -> str:
    """Text for a reportlab Paragraph, which parses its text as markup: a value from a rule layer or a reviewer
    (a permit holder 'Zhang & Sons <b>Ltd', an '<img src=...>') is shown as written, never as a tag."""
    return xml_escape(str(text))
