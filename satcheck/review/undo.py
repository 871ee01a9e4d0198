"""Undo (``satcheck review reopen``, ``u`` on the page): a patch goes back to the state before its latest decision.

History stays append-only: the undo is a new event from the current state back to the one before, with
reason ``undo``.  Undoing again takes back the decision before that (undo events themselves are never
undone, so pressing ``u`` twice does not redo); an import (the first event of a patch) cannot be undone.
"""

from __future__ import annotations

from satcheck.errors import SatcheckError
from satcheck.review.ledger import Event, Ledger, LedgerError, _none_applied, append_event
from satcheck.review.states import NEW, ConflictError, TransitionError

UNDO = "undo"  # the reason recorded on an event that undoes a decision


def undoable(history: list[Event]) -> Event | None:
    """The decision an undo would take back now, or None."""
    stack: list[Event] = []
    for e in history:
        if e.reason == UNDO:
            if stack:
                stack.pop()
        elif e.from_state != NEW:
            stack.append(e)
    return stack[-1] if stack else None


def undo_target(patch_id: str, history: list[Event], where: str) -> Event:
    """The decision an undo takes back now, from ``history`` (oldest first); the undo goes from its ``to_state``
    back to its ``from_state``.  ``where``: the ledger's path, for the message when there is nothing to undo."""
    current = history[-1].to_state
    target = undoable(history)
    if target is None:
        raise TransitionError(f"{patch_id}: nothing to undo; it is {current} as imported "
                              f"(see 'satcheck review show {where} {patch_id}')")
    if target.to_state != current:  # cannot happen with events written by satcheck
        raise TransitionError(f"{patch_id}: its history is inconsistent ({target.to_state} then {current}); "
                              "decide it explicitly instead")
    return target


def reopen(lg: Ledger, patch_id: str, reviewer: str, note: str | None = None,
           expected: str | None = None) -> tuple[Event, Event]:
    """Undo the latest decision on ``patch_id``; returns (the new event, the event it undoes).

    ``expected`` is the state the reviewer saw: if someone decided since, it is a conflict.
    """
    if not reviewer:
        raise TransitionError(f"{patch_id}: an undo needs a reviewer name (--by)")
    with lg.transaction() as db:
        return _reopen(lg, db, patch_id, reviewer, note, expected)


def reopen_many(lg: Ledger, patch_ids: list[str], reviewer: str, note: str | None = None) -> list[tuple[Event, Event]]:
    """Undo the latest decision on each of ``patch_ids`` in one transaction: all of them, or none if any cannot
    be undone; an id given twice is undone once."""
    if not reviewer:
        raise TransitionError("an undo needs a reviewer name (--by)")
    ids = list(dict.fromkeys(patch_ids))
    with lg.transaction() as db:
        done = []
        for pid in ids:
            try:
                done.append(_reopen(lg, db, pid, reviewer, note))
            except SatcheckError as exc:
                raise _none_applied(exc, len(ids)) from None
        return done


def _reopen(lg: Ledger, db, patch_id: str, reviewer: str, note: str | None,
            expected: str | None = None) -> tuple[Event, Event]:
    rows = db.execute("SELECT * FROM events WHERE patch_id=? ORDER BY id", (patch_id,)).fetchall()
    if not rows:
        raise LedgerError(f"{lg.path}: no patch '{patch_id}'; list them with 'satcheck review list {lg.path}'")
    history = [Event(**dict(r)) for r in rows]
    last = history[-1]
    current = last.to_state
    if expected is not None and current != expected:
        raise ConflictError(f"{patch_id}: {last.reviewer} set it to {current} at {last.at} after you "
                            f"opened it as {expected}; reload and decide again")
    target = undo_target(patch_id, history, str(lg.path))
    # The reason 'undo' says what happened, in any language.
    return append_event(db, patch_id, current, target.from_state, UNDO, note or None, reviewer), target
