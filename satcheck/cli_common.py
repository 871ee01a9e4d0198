"""Console and error helpers shared by the command-line modules."""

from __future__ import annotations

import typer
from rich.console import Console

from satcheck.errors import SatcheckError

out = Console()
err = Console(stderr=True)


def fail(exc: SatcheckError) -> typer.Exit:
    """Print a satcheck error as one line on stderr; the caller raises the returned Exit (code 2)."""
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def plural(n: int, noun: str) -> str:
    """'1 patch', '2 patches', '0 polygons'."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun}{'es' if noun.endswith(('ch', 'sh', 's', 'x')) else 's'}"
