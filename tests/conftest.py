from __future__ import annotations

import os
from pathlib import Path

import pytest

from satcheck.synth.write import SceneSpec, write_scene

SHARED = Path(os.environ.get("SATCHECK_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _own_model_cache(tmp_path_factory):
    """Exported ONNX graphs go to a folder of this test session, not the user's cache."""
    old = os.environ.get("SATCHECK_CACHE")
    os.environ["SATCHECK_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SATCHECK_CACHE", None)
    else:
        os.environ["SATCHECK_CACHE"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: tests on real imagery are skipped")
    return SHARED


@pytest.fixture(scope="session")
def small_scene(tmp_path_factory) -> Path:
    """A 768 px generated scene with planted changes and every kind of nuisance."""
    out = tmp_path_factory.mktemp("scene")
    write_scene(out, SceneSpec(seed=11, size=768, after_tiles=2))
    return out


@pytest.fixture(scope="session")
def nuisance_scene(tmp_path_factory) -> Path:
    """The same kind of scene with nothing built or dug: only nuisance change."""
    out = tmp_path_factory.mktemp("nuisance")
    write_scene(out, SceneSpec(seed=12, size=768, after_tiles=1, changes=False))
    return out
