"""Running satcheck commands in-process and checking what they print, shared by the CLI tests."""

from __future__ import annotations

from typer.testing import CliRunner

from satcheck.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def one_line_error(result, *needles) -> str:
    """Exit code 2 and one line 'error: ...' last (progress lines may come before it), holding each of ``needles``."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert lines and lines[-1].startswith("error:") and sum(ln.startswith("error:") for ln in lines) == 1, lines
    for n in needles:
        assert n in lines[-1], lines[-1]
    return lines[-1]
