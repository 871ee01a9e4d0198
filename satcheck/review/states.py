"""The review state machine: which decisions may follow which."""

from __future__ import annotations

from satcheck.errors import SatcheckError

NEW = "new"  # before a patch's first event
STATES = ("pending", "accepted", "rejected", "deferred", "verified_illegal", "verified_legal", "rectified", "linked")
# linked: same case as a patch of an earlier period that needs no new look (unchanged, or rejected for good).
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({"pending", "linked"}),
    "pending": frozenset({"accepted", "rejected", "deferred"}),
    "deferred": frozenset({"accepted", "rejected", "pending"}),
    "accepted": frozenset({"verified_illegal", "verified_legal"}),
    "verified_illegal": frozenset({"rectified"}),
    "linked": frozenset({"pending"}),
    "rejected": frozenset(),
    "verified_legal": frozenset(),
    "rectified": frozenset(),
}
DECISIONS = {"accept": "accepted", "reject": "rejected", "defer": "deferred", "reopen": "pending"}
FIELD_RESULTS = ("verified_illegal", "verified_legal", "rectified")
REVIEWED = frozenset(STATES) - {"pending", "deferred"}


class TransitionError(SatcheckError, ValueError):
    """A decision that the state machine does not allow."""


class ConflictError(SatcheckError, RuntimeError):
    """Someone else decided on the patch since it was shown."""


def check(patch_id: str, current: str, to: str, reason: str | None, reasons: set[str]) -> None:
    if to not in STATES:
        raise TransitionError(f"{patch_id}: '{to}' is not a state; use one of {', '.join(STATES)}")
    if to not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing (final)"
        raise TransitionError(f"{patch_id}: cannot go from {current} to {to}; from {current} it can go to {allowed}")
    if to == "rejected":
        if not reason:
            raise TransitionError(f"{patch_id}: a rejection needs a reason: {', '.join(sorted(reasons))}")
        if reason not in reasons:
            raise TransitionError(f"{patch_id}: '{reason}' is not a rejection reason; "
                                  f"use one of {', '.join(sorted(reasons))}")
