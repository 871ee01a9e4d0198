"""Decisions from a CSV (``satcheck review bulk``): every row in one transaction, or none of them."""

from __future__ import annotations

from pathlib import Path

from satcheck.errors import SatcheckError
from satcheck.review.csvfile import read_rows
from satcheck.review.ledger import Event, Ledger, append_event
from satcheck.review.states import DECISIONS, FIELD_RESULTS, TransitionError, check
from satcheck.review.undo import UNDO, undo_target


def apply_csv(ledger: Ledger, csv_path: str | Path, reviewer: str) -> list[Event]:
    """Decisions from a CSV (patch_id, decision, reason, note): all or nothing.

    ``reopen`` undoes the patch's latest decision, as ``satcheck review reopen`` does (one made earlier in the
    same CSV too): it goes back to the state before, with reason ``undo``.
    """
    path = Path(csv_path)
    rows = read_rows(path)  # UTF-8, UTF-8 with BOM or GB18030; else a one-line error
    plan = []
    with ledger.transaction() as db:
        histories: dict[str, list[Event]] = {}  # of each patch in the CSV, with the rows planned so far
        for i, r in enumerate(rows, start=2):
            pid = (r.get("patch_id") or "").strip()
            decision = (r.get("decision") or "").strip()
            to = DECISIONS.get(decision, decision if decision in FIELD_RESULTS else None)
            reason = (r.get("reason") or "").strip() or None
            try:
                if pid not in histories:
                    histories[pid] = [Event(**dict(e)) for e in db.execute(
                        "SELECT * FROM events WHERE patch_id=? ORDER BY id", (pid,))]
                history = histories[pid]
                if not history:
                    raise TransitionError(f"no patch '{pid}'")
                if to is None:
                    raise TransitionError(f"'{decision}' is not a decision (accept, reject, defer, reopen, "
                                          f"{', '.join(FIELD_RESULTS)})")
                current = history[-1].to_state
                if decision == "reopen":
                    to, reason = undo_target(pid, history, str(ledger.path)).from_state, UNDO
                else:
                    check(pid, current, to, reason, ledger.reasons)
            except SatcheckError as exc:
                raise TransitionError(f"{path}: row {i}: {exc}; nothing was applied") from None
            note = (r.get("note") or "").strip() or None
            history.append(Event(0, pid, current, to, reason, note, reviewer, ""))
            plan.append((pid, current, to, reason, note))
        return [append_event(db, pid, frm, to, reason, note, reviewer) for pid, frm, to, reason, note in plan]
