"""What a batch's worker processes and its log need: a worker that ends with the batch, the threads of a Dask
worker, and the batch's JSON-lines log."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """In a worker process (the pool's initializer): end when the batch's main process ends, kill -9 too.

    Left alone, a worker of a killed batch goes on with its tile and then waits for the next, holding its memory,
    for as long as the machine runs. On Linux the kernel kills the worker when its parent goes
    (``PR_SET_PDEATHSIG``); elsewhere, and should that not take, a thread checks every second that the parent
    is still the one that started it.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the worker got here
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="satcheck-watch-parent", daemon=True).start()


def _watch_parent(parent: int, every_s: float = 1.0) -> None:
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:  # orphaned: adopted by init or a subreaper
            os._exit(1)


def dask_worker_threads() -> int | None:
    """On a Dask worker, use as many threads as the worker was given (one process per core stays one thread)."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return None


class JsonLog:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, event: str, **data) -> None:
        rec = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": event} | data
        self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()
