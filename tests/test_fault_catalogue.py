"""Every row of the fault catalogue (tests/fault_catalogue.py) through the CLI: the exit code, no traceback, one line
'error: ...' naming the file and holding the expected fragments; or, for exit code 0, the documented answer."""

from __future__ import annotations

import re

import pytest

from tests.cli_results import invoke
from tests.fault_catalogue import Inputs, build_inputs, cases

CASES = cases()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    return build_inputs(tmp_path_factory.mktemp("fault_inputs"))


def _params():
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
        yield pytest.param(c, id=c.id, marks=marks)


def test_the_catalogue_is_large_and_its_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)
    for c in CASES:
        assert c.code == 0 or c.names or c.usage, f"{c.id}: an error row names the file it is about"
        assert c.code != 0 or c.check or c.says, f"{c.id}: a correct-answer row says how it is checked"


def _boxed(output: str) -> str:
    """Typer's answer to a bad option value, its box taken away and its lines joined."""
    inside = [ln.strip(" │╭╮╰╯─") for ln in output.splitlines() if ln.startswith("│")]
    return " ".join(x for x in inside if x)


@pytest.mark.parametrize("case", _params())
def test_fault(case, inputs, tmp_path, monkeypatch):
    args = [str(a) for a in case.build(tmp_path, inputs, monkeypatch)]
    r = invoke(*args)
    out = r.output
    assert "Traceback" not in out, out
    assert r.exception is None or isinstance(r.exception, SystemExit), (type(r.exception), r.exception, out)
    assert r.exit_code == case.code, (r.exit_code, out)
    names = case.names.replace("{tmp}", str(tmp_path))
    if case.usage:
        msg = re.sub(r"\s+", " ", _boxed(out))
        assert "Invalid value" in msg and names in msg, out
        for s in case.says:
            assert s in msg, msg
    elif case.code == 2:
        lines = out.strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("error:")]
        assert len(errors) == 1 and lines[-1] == errors[0], lines  # progress lines may come before it, nothing after
        line = errors[0]
        assert names in line, (names, line)
        for s in case.says:
            assert s in line, (s, line)
    else:
        flat = re.sub(r"\s+", " ", out)  # tables and long lines are wrapped to the terminal
        for s in case.says:
            assert s in flat, (s, out)
    if case.check is not None:
        case.check(tmp_path, r)
