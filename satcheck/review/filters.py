"""Filters of review commands (state, class, period), checked so that a typo is an error, not an empty list."""

from __future__ import annotations

import difflib
import re

from satcheck.errors import SatcheckError
from satcheck.patches import CLASSES
from satcheck.review.states import STATES

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class FilterError(SatcheckError, ValueError):
    """A filter value that cannot match anything."""


def _near(value: str, choices) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


def check_state(value: str | None, allowed: tuple[str, ...] = STATES) -> str | None:
    if value is None or value in allowed:
        return value
    if value in STATES:
        raise FilterError(f"'{value}' is a state, but not one this command takes; use one of {', '.join(allowed)}")
    raise FilterError(f"'{value}' is not a state; {_near(value, allowed)}use one of {', '.join(allowed)}")


def check_class(value: str | None) -> str | None:
    if value is None or value in CLASSES:
        return value
    raise FilterError(f"'{value}' is not a patch class; {_near(value, CLASSES)}use one of {', '.join(CLASSES)}")


def check_period(value: str | None, known: list[str] | None = None) -> str | None:
    """YYYY-MM; ``known`` (the ledger's periods) is listed in the error."""
    if value is None or PERIOD.match(value):
        return value
    hint = ""
    m = re.fullmatch(r"(\d{4})[/._ ]?(\d{1,2})", value.strip())
    if m and 1 <= int(m.group(2)) <= 12:
        hint = f"did you mean {m.group(1)}-{int(m.group(2)):02d}? "
    have = f" (this ledger has {', '.join(known)})" if known else ""
    raise FilterError(f"'{value}' is not a period; {hint}use YYYY-MM, e.g. 2026-10{have}")


def check_admin(value: str | None) -> str | None:
    if value is None or re.fullmatch(r"\d{1,12}", value):
        return value
    raise FilterError(f"'{value}' is not an admin code; use the leading digits of XZQDM, e.g. 3608 or 360821")
