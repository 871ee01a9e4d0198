"""Reading a decisions CSV as people save it: UTF-8, UTF-8 with BOM (Excel's 'CSV UTF-8'), or GB18030/GBK
(Excel's plain 'CSV' on Chinese Windows); comma, semicolon or tab separated."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from satcheck.errors import SatcheckError

COLUMNS = ("patch_id", "decision", "reason", "note")
HEADERS_ZH = {"图斑编号": "patch_id", "决定": "decision", "审核结论": "decision", "原因": "reason", "排除原因": "reason",
              "备注": "note", "审核备注": "note"}


class CsvError(SatcheckError, ValueError):
    """A decisions CSV that cannot be read."""


def decode(data: bytes, path: Path) -> tuple[str, str]:
    """(text, encoding name)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvError(f"{path}: is UTF-16 ('Unicode text'); save it as 'CSV UTF-8' or plain 'CSV'")
    if b"\x00" in data:
        raise CsvError(f"{path}: is not a text file (it holds NUL bytes); save it as 'CSV UTF-8'")
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise CsvError(f"{path}: is neither UTF-8 nor GB18030/GBK text; save it as 'CSV UTF-8'")


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows as dicts keyed by :data:`COLUMNS` (Chinese headers too); a missing column is an error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CsvError(f"{path}: cannot be read ({exc.strerror}); pass a CSV file") from None
    text, _ = decode(data, path)
    first, _, rest = text.partition("\n")
    if first.strip().lower() in ("sep=,", "sep=;", "sep=\t"):
        text = rest  # Excel's delimiter hint: Excel shows no row for it, so the header is the first row
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
    names = {h: HEADERS_ZH.get((h or "").strip(), (h or "").strip().lower()) for h in reader.fieldnames or []}
    missing = [c for c in ("patch_id", "decision") if c not in names.values()]
    if missing:
        raise CsvError(f"{path}: has no {' or '.join(missing)} column (it has {', '.join(map(str, names)) or 'none'}); "
                       f"the first row must name the columns {', '.join(COLUMNS)}")
    rows = []
    for r in reader:
        rows.append({names[k]: (v or "") for k, v in r.items() if k in names and names[k] in COLUMNS})
    return rows
