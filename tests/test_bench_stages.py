"""satcheck bench --stages, and the stage timer it uses. Nothing here is timed against a threshold."""

import json

import pytest
from typer.testing import CliRunner

from satcheck.batch.bench_stages import STAGES
from satcheck.cli import app
from satcheck.stage_timer import NO_TIMER, StageTimer, median_seconds


def test_stage_timer_adds_up_each_stage_and_the_default_records_nothing():
    t = StageTimer()
    for _ in range(3):
        with t.stage("masks"):
            pass
    with pytest.raises(ValueError), t.stage("model"):
        raise ValueError("a failing stage still counts its seconds")
    assert t.calls == {"masks": 3, "model": 1}
    assert set(t.seconds) == {"masks", "model"} and all(s >= 0 for s in t.seconds.values())
    with NO_TIMER.stage("masks"):
        pass
    assert median_seconds([{"a": 1.0, "b": 5.0}, {"a": 3.0}, {"a": 2.0, "b": 1.0}]) == {"a": 2.0, "b": 1.0}


class _Box:
    def put(self, value):
        self.value = value


@pytest.mark.slow
def test_model_alone_reports_the_runs_engine_once(tmp_path):
    from satcheck.batch.bench import _stage_model
    from satcheck.synth.write import write_large_pair

    b, a = write_large_pair(tmp_path, 256, seed=3)
    box = _Box()
    _stage_model(str(b), str(a), "cpu", box)
    r = box.value
    assert r["model_mpx_s"] == r["by_engine"][r["engine"]] > 0


@pytest.mark.slow
def test_bench_stages_through_the_cli(tmp_path):
    r = CliRunner().invoke(app, ["bench", "--stages", "--size", "256", "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    d = json.loads(next(line for line in r.output.splitlines() if line.startswith("{")))
    for k in ("read_floor_mpx_s", "end_to_end_mpx_s", "model_mpx_s", "end_to_end_over_read_floor",
              "end_to_end_over_model"):
        assert d[k] > 0, k
    assert list(d["stages"]) == list(STAGES)
    assert all(d["stages"][k] > 0 for k in STAGES if k != "coregister"), d["stages"]
    assert d["stages"]["coregister"] >= 0
    assert d["repeats"] == 3 and all(len(v) == 3 for v in d["timings_s"].values())
    # The stages are timed one at a time while the run overlaps reading with scoring: generous slack, a
    # consistency check, not a speed test.
    assert d["stages_sum_s"] <= 1.5 * d["end_to_end_s"] + 1.0, d
    assert d["changes"] == d["changes_replay"]  # the replay still does what the run does
    assert d["engine"] in ("onnx", "torch") and d["device"] == "cpu"
