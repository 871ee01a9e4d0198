"""Seconds per stage, accumulated by name: ``with timer.stage("masks"): ...``.

A :class:`StageTimer` adds up the wall-clock seconds spent inside each named stage (a stage entered many times,
once per window, sums); it may be used from several threads at once. :data:`NO_TIMER` records nothing and is the
default wherever code takes a timer, so untimed runs pay only for an empty context manager.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from typing import Iterable, Iterator


class StageTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1

    def total(self) -> float:
        return sum(self.seconds.values())


class _NoTimer:
    def stage(self, name: str) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def add(self, name: str, seconds: float) -> None:
        pass


NO_TIMER = _NoTimer()


def median_seconds(runs: Iterable[dict[str, float]]) -> dict[str, float]:
    """Per stage, the median of its seconds over ``runs`` (a stage missing from a run counts 0 there), in the order
    the stages first appear."""
    runs = list(runs)
    names = list(dict.fromkeys(k for r in runs for k in r))
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in names}
