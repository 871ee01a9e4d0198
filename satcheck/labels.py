"""What a person reads: field values in English or Chinese, never ``nan``, ``None`` or ``True``.

Data files keep the canonical values (``farmland_construction``, ``accepted``); tables for people (CSV,
KML and .xlsx with ``--lang zh``, field sheets) go through :func:`display`.
"""

from __future__ import annotations

import math

from satcheck.patches import CLASS_ZH

CHANGE_TYPE_ZH = {"building": "建筑", "hardened": "硬化地面", "excavation": "挖损", "construction": "建设"}
STATE_ZH = {
    "pending": "待审核", "accepted": "审核确认", "rejected": "审核排除", "deferred": "暂缓", "linked": "已关联",
    "verified_illegal": "核实违法", "verified_legal": "核实合法", "rectified": "已整改", "new": "新入库",
}
YES_NO = {"zh": ("是", "否")}
UNDO_ZH = "撤销"

# Review columns that exports add to the patch schema: name -> (type, English description, Chinese header).
REVIEW_FIELDS: dict[str, tuple[str, str, str]] = {
    "reviewer": ("str", "who made the latest review decision", "审核人"),
    "decided_at": ("str", "time of that decision, ISO 8601 UTC", "审核时间"),
    "reason": ("str", "rejection reason, for rejected patches", "排除原因"),
    "note": ("str", "reviewer's note with that decision", "审核备注"),
    "prev_patch_id": ("str", "patch of an earlier period this one continues", "前期图斑编号"),
}


def is_blank(v) -> bool:
    """None, NaN, NaT or an empty string."""
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str):
        return v.strip() == "" or v.strip().lower() in ("nan", "none", "nat")
    import pandas as pd

    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # lists and arrays are not blank
        return False


def display(field: str, v, lang: str = "en", reasons_zh: dict[str, str] | None = None):
    """A value as a person should read it; blanks become ''. Numbers stay numbers."""
    if is_blank(v):
        return ""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if lang != "zh":
        return v
    if isinstance(v, bool):
        yes, no = YES_NO["zh"]
        return yes if v else no
    if field == "class":
        return CLASS_ZH.get(v, v)
    if field == "change_type":
        return CHANGE_TYPE_ZH.get(v, v)
    if field in ("status", "state", "from_state", "to_state"):
        return STATE_ZH.get(v, v)
    if field == "reason":
        if v == "undo":
            return UNDO_ZH
        return (reasons_zh or {}).get(v, v)
    return v


def default_reasons_zh() -> dict[str, str]:
    """Rejection reasons' Chinese labels from the default review configuration."""
    from satcheck.config import ReviewConfig

    return {r.key: r.label_zh or r.label for r in ReviewConfig().reasons}
