"""Drawing :mod:`satcheck.progress` on the command line: a bar per stage on a terminal, plain lines otherwise.

Plain lines (cron, batch logs, a pipe) say when each stage starts and ends, and how far it has got at most once
every ``every_s`` seconds in between; a batch also gets one ``[k/n]`` line per tile.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console

from satcheck.cli_common import plural
from satcheck.progress import UNITS


def _amount(stage: str, n: int) -> str:
    unit = UNITS.get(stage, "step")
    return f"{n / 1e6:.2f} Mpx" if unit == "pixel" else plural(n, unit)


def _rate(p: dict) -> str:
    return f"{p['pixels'] / 1e6 / max(p['seconds'], 1e-9):.2f} Mpx/s"


class PlainProgress:
    """One line per stage start and end, a line at most every ``every_s`` seconds between; one per tile."""

    def __init__(self, console: Console, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.console, self.every_s, self.clock = console, every_s, clock
        self.started: dict[str, float] = {}
        self.finished: set[str] = set()
        self.last = 0.0

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)
        self.last = self.clock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self.clock()
        if stage not in self.started:
            self.started[stage] = now
            self.finished.discard(stage)
            self._line(f"{stage}: started ({_amount(stage, total)})")
        if done >= total:
            if stage not in self.finished:
                self.finished.add(stage)
                self._line(f"{stage}: done, {_amount(stage, total)} in {now - self.started[stage]:.1f} s")
        elif stage != "tiles" and done and now - self.last >= self.every_s:  # tiles: each has its own line
            self._line(f"{stage}: {_amount(stage, done)} of {_amount(stage, total)} ({done / total:.0%})")

    def tile(self, p: dict) -> None:
        state = f"FAILED {p['error']}" if p.get("error") else "done"
        self._line(f"[{min(p['done'] + p['failed'], p['todo'])}/{p['todo']}] {p['tile']}: {state} ({_rate(p)})")


class BarProgress:
    """A rich bar per stage, each added as its stage starts; tile failures printed above the bars."""

    def __init__(self, console: Console, transient: bool):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console
        self.bar = Progress(TextColumn("{task.description:<9}"), BarColumn(), TextColumn("{task.fields[count]}"),
                            TimeRemainingColumn(), console=console, transient=transient)
        self.tasks: dict[str, int] = {}
        self.rate = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total, count="")
        done = min(done, total)
        if UNITS.get(stage) == "pixel":
            count = f"{done / max(total, 1):>4.0%}"
        else:  # "3/7 patches"
            count = f"{done}/{plural(total, UNITS.get(stage, 'step'))}"
        if stage == "tiles" and self.rate:
            count += f", {self.rate}"
        self.bar.update(self.tasks[stage], completed=done if total else 1, total=total or 1, count=count)

    def tile(self, p: dict) -> None:
        if p.get("error"):
            self.console.print(f"[red]tile {p['tile']} failed:[/] {p['error']}", highlight=False)
        self.rate = _rate(p)


@contextlib.contextmanager
def stage_progress(console: Console, transient: bool = True) -> Iterator[PlainProgress | BarProgress]:
    """Bars where ``console`` is a terminal, plain lines where it is not (cron, logs, a pipe)."""
    if not console.is_terminal:
        yield PlainProgress(console)
        return
    view = BarProgress(console, transient)
    with view.bar:
        yield view
