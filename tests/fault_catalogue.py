"""The fault catalogue (issue 19): bad inputs and faults, each with what satcheck must answer.

One table, :func:`cases`, of :class:`Case` rows, kept in two files to stay readable: tests/fault_table_inputs.py
(tiles, configuration, rule layers, batches, STAC) and tests/fault_table_outputs.py (weights, exports, scoring,
the review ledger). A row builds its input in a fresh folder and returns the command line; the answer is an exit
code and fragments of the one line ``error: ...`` that names the file and the fix, or, for a row of exit code 0,
a documented correct answer that ``check`` verifies. tests/test_fault_catalogue.py runs every row through the CLI
and asserts no traceback, one error line, the file named. A new fault found: add a row.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from tests.cli_results import invoke
from tests.enforcement_data import jurisdiction, manifest
from tests.generate import ORIGIN, square_pair


@dataclass(frozen=True)
class Inputs:
    """Good inputs made once per test module; rows copy what they damage."""

    before: Path  # tests.generate.square_pair: a roof square planted at rows 100-140, columns 120-160
    after: Path
    site: Path  # tests.enforcement_data.jurisdiction: before/, after/ (3 x 3 tiles), rules/, batch.yaml
    patches: Path  # site/run/patches.gpkg of a run with --rules (6 exported patches, 7 in all)
    ledger: Path  # those patches imported
    ids: tuple[str, ...]


def build_inputs(folder: Path) -> Inputs:
    b, a, _ = square_pair(folder / "pair")
    site = folder / "site"
    jurisdiction(site)
    r = invoke("run", site / "before", site / "after", "--rules", site / "rules", "--out", site / "run",
               "--detector", "cva", "--json")
    assert r.exit_code == 0, r.output
    ledger = folder / "ledger.sqlite"
    assert invoke("review", "import", ledger, site / "run" / "patches.gpkg").exit_code == 0
    ids = [p["patch_id"] for p in json.loads(invoke("review", "list", ledger, "--json").output)["patches"]]
    return Inputs(b, a, site, site / "run" / "patches.gpkg", ledger, tuple(sorted(ids)))


Build = Callable[[Path, Inputs, pytest.MonkeyPatch], Sequence]


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    build: Build  # (fresh folder, inputs, monkeypatch) -> the command line after 'satcheck'
    code: int = 2
    says: tuple[str, ...] = ()  # in the error line (code 2), or anywhere in the output (code 0)
    names: str = ""  # the file (or option) the error line names
    check: Callable[[Path, object], None] | None = None  # (folder, CliRunner result): outputs of the answer
    usage: bool = False  # Typer's own answer to a bad option value ("Invalid value for --x: ..."), in its box
    xfail: str = ""


# ------------------------------------------------------------------------------------------- helpers
def last(*steps):
    """The last of ``steps``: a row's lambda makes its files first, then gives the command line."""
    return steps[-1]


def cfg(tmp: Path, text: str, name: str = "c.yaml") -> Path:
    (tmp / name).write_text(text, encoding="utf-8")
    return tmp / name


def run_pair(tmp: Path, inp: Inputs, *extra, before=None, after=None) -> list:
    return ["run", before or inp.before, after or inp.after, "--out", tmp / "out", "--detector", "cva", *extra]


def site_copy(tmp: Path, inp: Inputs, **over) -> Path:
    """before/, after/ and rules/ of the site copied under ``tmp``, and a manifest there; returns the manifest."""
    for d in ("before", "after", "rules"):
        shutil.copytree(inp.site / d, tmp / d)
    return manifest(tmp, **over)


def run_site(tmp: Path, *extra, rules: Path | None = None) -> list:
    return ["run", tmp / "before", tmp / "after", "--rules", rules or tmp / "rules", "--out", tmp / "out",
            "--detector", "cva", *extra]


def nothing_written(tmp: Path, _r=None) -> None:
    assert not (tmp / "out" / "changes.gpkg").exists() and not (tmp / "out" / "patches.gpkg").exists()


def as_float(src: Path, dst: Path, nan_cols: slice | None) -> Path:
    """``src`` rewritten as float32 reflectance without a nodata tag, NaN in the columns ``nan_cols``."""
    with rasterio.open(src) as s:
        data = s.read().astype(np.float32) * (0.8 / 255)
        profile = s.profile | {"dtype": "float32", "nodata": None}
    if nan_cols is not None:
        data[:, :, nan_cols] = np.nan
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as o:
        o.write(data)
    return dst


def float_pair(tmp: Path, inp: Inputs, before_nan: slice | None, after_nan: slice | None) -> list:
    b = as_float(inp.before, tmp / "fb" / inp.before.name, before_nan)
    a = as_float(inp.after, tmp / "fa" / inp.after.name, after_nan)
    return run_pair(tmp, inp, "--json", before=b.parent, after=a.parent)


def one_change(tmp: Path, _r) -> None:
    """The planted roof (40 x 40 m) and nothing else was found."""
    ch = gpd.read_file(tmp / "out" / "changes.gpkg")
    assert len(ch) == 1 and 1200 < ch.area.sum() < 2000, ch.area.tolist()


def partly_nan(tmp: Path, _r) -> None:
    """NaN columns are nodata: the roof is found where the later date has data; run.json says how much has none."""
    ch = gpd.read_file(tmp / "out" / "changes.gpkg")
    assert len(ch) == 1
    minx, _, maxx, _ = ch.total_bounds
    assert minx >= ORIGIN[0] + 128 - 1.5 and maxx == pytest.approx(ORIGIN[0] + 160, abs=1.5)
    masked = json.loads((tmp / "out" / "run.json").read_text())["tiles"][0]["masked"]
    assert masked["nodata"] == pytest.approx(0.5, abs=0.02)


def numeric_dlbm(tmp: Path, _r) -> None:
    """DLBM stored as a number (0101 read as 101) is the land class 0101: the five houses stay farmland construction."""
    p = gpd.read_file(tmp / "out" / "patches.gpkg")
    assert (p["class"] == "farmland_construction").sum() == 5
    assert set(p.loc[p["class"] == "farmland_construction", "farmland_class"]) == {"0101"}


def numeric_admin(tmp: Path, _r) -> None:
    """XZQDM as a float column (a survey export with a NULL) makes ids 360821-..., not 360821.0-..."""
    p = gpd.read_file(tmp / "out" / "patches.gpkg")
    assert set(p["admin_code"]) == {"360821", "360822"}
    assert all(pid.split("-")[0] in ("360821", "360822") for pid in p["patch_id"])


def weights(tmp: Path, meta_json: str | None = None, nan: bool = False) -> Path:
    import torch

    from satcheck.model.network import ChangeNet
    from satcheck.model.weights import save_weights

    net = ChangeNet(widths=(8, 16, 16, 24), decoder=16).eval()
    if nan:
        with torch.no_grad():
            next(net.parameters()).fill_(float("nan"))
    path = save_weights(net, tmp / "w.pt", {"bands": [3, 4]})
    if meta_json is not None:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        payload["meta_json"] = meta_json
        torch.save(payload, path)
    return path


def read_only(tmp: Path, mp) -> Path:
    """A folder on a read-only file system, as far as satcheck sees it: every temporary file made in it fails
    with EROFS (chmod does not stop root)."""
    folder = tmp / "ro"
    folder.mkdir()
    for name in ("mkstemp", "mkdtemp"):
        real = getattr(tempfile, name)

        def refuse(*a, dir=None, _real=real, **k):
            if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
                raise OSError(errno.EROFS, "Read-only file system", str(dir))
            return _real(*a, dir=dir, **k)
        mp.setattr(tempfile, name, refuse)
    return folder


def cases() -> list[Case]:
    """The whole table."""
    from tests.fault_table_inputs import CASES as INPUTS
    from tests.fault_table_outputs import CASES as OUTPUTS

    return [*INPUTS, *OUTPUTS]
