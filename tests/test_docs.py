"""The README documents what the code does."""

from pathlib import Path

from satcheck.patches import PATCH_FIELDS

ROOT = Path(__file__).resolve().parents[1]


def test_readme_lists_every_patch_field():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in PATCH_FIELDS:
        assert f"`{name}`" in readme, name


def test_readme_starts_with_the_two_commands():
    lines = [ln for ln in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if ln.startswith("make ")]
    assert [ln.split()[1] for ln in lines[:2]] == ["demo", "test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_batch_example_manifest_is_valid():
    from satcheck.batch.manifest import load_manifest

    m, cfg = load_manifest(ROOT / "configs" / "batch.example.yaml")
    assert m.period == "2026-10" and cfg.detect.detector == "auto"
