"""ChangeNet: shapes, gradients, learning, weights files and seamless tiled inference."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from satcheck.errors import ModelError
from satcheck.model.infer import make_predictor
from satcheck.model.network import IN_CHANNELS, ChangeNet, count_parameters, flops_per_megapixel
from satcheck.model.runtime import to_input
from satcheck.model.weights import load_weights, save_weights


def test_shapes_and_gradients():
    torch.manual_seed(0)
    m = ChangeNet()
    for h, w in ((64, 64), (50, 77)):
        b, a = torch.rand(2, IN_CHANNELS, h, w), torch.rand(2, IN_CHANNELS, h, w, requires_grad=True)
        y = m(b, a)
        assert y.shape == (2, 3, h, w)
        y.sum().backward()
        assert a.grad is not None and torch.isfinite(a.grad).all()
        assert all(p.grad is not None for p in m.parameters())


def test_budget():
    m = ChangeNet()
    assert count_parameters(m) <= 300_000
    assert flops_per_megapixel(m) <= 10e9


def _typed_batch():
    """Four generated pairs, each with a bright new square of one class (building, hardened, excavation)."""
    rng = np.random.default_rng(0)
    before = rng.random((4, 5, 64, 64), dtype=np.float32) * 0.3
    after = before.copy()
    label = np.zeros((4, 64, 64), np.uint8)
    cls = np.zeros((4, 64, 64), np.uint8)
    for i in range(4):
        r, c = rng.integers(8, 40, 2)
        k = i % 3 + 1
        after[i, :3, r:r + 16, c:c + 16] = np.asarray([0.9, 0.6, 0.3][k - 1])[None, None, None] * [[[1.0]], [[0.9]],
                                                                                                  [[k / 3]]]
        label[i, r:r + 16, c:c + 16] = 1
        cls[i, r:r + 16, c:c + 16] = k
    return [torch.from_numpy(x) for x in (before, after, label, cls)]


def test_a_few_steps_reduce_the_loss_of_each_output():
    from satcheck.model.losses import loss_terms

    torch.manual_seed(0)
    m = ChangeNet()
    tb, ta, y, cls = _typed_batch()
    g = torch.zeros(4, dtype=torch.int64)  # "all": the generator labels every class
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    first = last = None
    for _ in range(25):
        terms = loss_terms(m(tb, ta), y, cls, g)
        loss = terms["change"] + 0.5 * terms["type"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or {k: v.item() for k, v in terms.items()}
        last = {k: v.item() for k, v in terms.items()}
    assert last["change"] < 0.7 * first["change"] and last["type"] < 0.7 * first["type"]


def test_the_weight_of_changed_pixels_is_the_recipes():
    """``pos_weight`` scales the cross-entropy of changed pixels only: a recipe's lower weight makes a missed
    change cost less and a false one the same."""
    from satcheck.model.losses import loss_terms
    from satcheck.model.train import TrainConfig

    logits = torch.zeros(1, 3, 8, 8)
    none = torch.zeros(1, 8, 8, dtype=torch.uint8)
    cls, g = torch.zeros_like(none), torch.zeros(1, dtype=torch.int64)
    changed = (loss_terms(logits, none + 1, cls, g, 3.0)["change"], loss_terms(logits, none + 1, cls, g, 1.0)["change"])
    same = (loss_terms(logits, none, cls, g, 3.0)["change"], loss_terms(logits, none, cls, g, 1.0)["change"])
    dice = 1 - (2 * 0.5 * 64 + 1) / (0.5 * 64 + 64 + 1)  # every pixel changed, all at p = 0.5
    assert torch.isclose(changed[0] - dice, 3 * (changed[1] - dice)) and torch.isclose(same[0], same[1])
    assert TrainConfig(pos_weight=1.0).pos_weight == 1.0 and TrainConfig().pos_weight == 3.0


@pytest.mark.parametrize("supervises, silent", [(1, (1, 2)), (2, (2,))])
def test_a_source_leaves_the_classes_it_does_not_label_without_gradient(supervises, silent):
    """LEVIR-CD (buildings only) must not teach hardened ground or excavation; DSIFN/OSCD (construction) must
    not teach excavation."""
    from satcheck.model.losses import training_loss

    torch.manual_seed(0)
    m = ChangeNet()
    tb, ta, y, cls = _typed_batch()
    training_loss(m(tb, ta), y, torch.zeros_like(cls), torch.full((4,), supervises)).backward()
    out = m.head[-1]
    for k in range(3):
        grad = out.weight.grad[k].abs().sum().item() + out.bias.grad[k].abs().item()
        assert (grad == 0) == (k in silent), (k, grad)


def test_older_weights_are_read_as_change_and_its_type():
    """Weights saved before the three classes (change, construction, excavation) still run."""
    from satcheck.model.runtime import class_probabilities, output_classes

    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 0] = 5.0  # changed
    logits[0, 2, 0, 0] = 4.0  # excavation at one pixel
    probs = class_probabilities(logits, ("change", "construction", "excavation"))
    assert output_classes({}) == ("construction", "hardened", "excavation")
    changed = 1 / (1 + np.exp(-5.0))
    # The change probability whole, at its more likely type: a detector's maximum over classes is that probability.
    np.testing.assert_allclose(probs[0].max(0), changed, rtol=1e-5)
    assert probs[0, 2, 0, 0] == probs[0, 0, 1, 1] and probs[0, 0, 0, 0] == 0 and (probs[0, 1] == 0).all()


def test_a_few_steps_reduce_loss():
    from satcheck.model.losses import training_loss

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    m = ChangeNet()
    before = rng.random((4, 5, 64, 64), dtype=np.float32) * 0.3
    after = before.copy()
    label = np.zeros((4, 64, 64), np.uint8)
    for i in range(4):
        r, c = rng.integers(8, 40, 2)
        after[i, :3, r:r + 16, c:c + 16] = 0.9
        label[i, r:r + 16, c:c + 16] = 1
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    tb, ta = torch.from_numpy(before), torch.from_numpy(after)
    y, cls = torch.from_numpy(label), torch.from_numpy(label)
    g = torch.zeros(4, dtype=torch.int64)
    losses = []
    for _ in range(25):
        loss = training_loss(m(tb, ta), y, cls, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_weights_roundtrip_and_mismatch(tmp_path):
    m = ChangeNet(widths=(8, 16, 16, 24), decoder=16).eval()
    path = save_weights(m, tmp_path / "w.pt", {"bands": [3, 4]})
    m2, meta = load_weights(path)
    x = torch.rand(1, IN_CHANNELS, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x, x), m2(x, x))
    assert meta == {"bands": [3, 4], "outputs": ["building", "hardened", "excavation"]}
    # A state dict that does not fit the saved architecture.
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = ChangeNet().state_dict()
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="bad.pt: weights do not fit"):
        load_weights(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(ModelError, match="junk.pt: not a satcheck weights file"):
        load_weights(tmp_path / "junk.pt")
    with pytest.raises(ModelError, match="not found"):
        load_weights(tmp_path / "missing.pt")


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_blending_leaves_no_seam(engine):
    """A uniform input gives a uniform output across window borders."""
    torch.manual_seed(1)
    m = ChangeNet().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    pred = make_predictor(m, "cpu", engine, tile_px=128, overlap_px=32, batch_size=3)
    x = np.full((4, 300, 333), 0.4, np.float32)
    probs = pred.predict(to_input(x), to_input(x * 1.2))
    assert probs.shape == (3, 300, 333)
    assert np.ptp(probs, axis=(1, 2)).max() < 1e-4


def test_tiled_equals_whole_in_the_interior():
    torch.manual_seed(2)
    m = ChangeNet().eval()
    rng = np.random.default_rng(0)
    b = to_input(rng.random((4, 256, 256), dtype=np.float32))
    a = to_input(rng.random((4, 256, 256), dtype=np.float32))
    whole = make_predictor(m, "cpu", "torch", tile_px=256, overlap_px=0).predict(b, a)
    tiled = make_predictor(m, "cpu", "torch", tile_px=128, overlap_px=64).predict(b, a)
    assert np.abs(whole - tiled)[:, 32:-32, 32:-32].mean() < 0.02


def test_onnx_matches_torch_at_any_size():
    torch.manual_seed(3)
    m = ChangeNet().eval()
    rng = np.random.default_rng(1)
    b = to_input(rng.random((3, 97, 101), dtype=np.float32))
    a = to_input(rng.random((3, 97, 101), dtype=np.float32))
    p1 = make_predictor(m, "cpu", "torch", tile_px=128).predict(b, a)
    p2 = make_predictor(m, "cpu", "onnx", tile_px=128).predict(b, a)
    assert p1.shape == (3, 97, 101)
    assert np.abs(p1 - p2).max() < 1e-3


def test_cpu_run_with_cached_graph_does_not_import_torch(tmp_path):
    """The second run on a machine finds the exported graph and starts without torch (seconds saved)."""
    m = ChangeNet()
    weights = save_weights(m, tmp_path / "w.pt", {"bands": [3, 4]})
    code = (
        "import sys\n"
        "from satcheck.config import ModelConfig\n"
        "from satcheck.detect.learned import ModelDetector\n"
        f"d = ModelDetector(ModelConfig(weights={str(weights)!r}), 'cpu', 3)\n"
        "print(d.predictor.engine, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "SATCHECK_CACHE": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["onnx", "True"]
    assert second.stdout.split() == ["onnx", "False"]
    assert len(list((tmp_path / "cache" / "onnx").glob("w-*.onnx"))) == 1


def test_train_command_writes_loadable_weights(tmp_path):
    """`satcheck train` end to end on a tiny generated recipe (seconds)."""
    import yaml
    from typer.testing import CliRunner

    from satcheck.cli import app

    recipe = tmp_path / "train.yaml"
    recipe.write_text(yaml.safe_dump({"seed": 1, "steps": 3, "batch_size": 2, "crop_px": 64, "threads": 1,
                                      "normalise": "meanstd", "paste_real": 0.5, "prefetch": 2,
                                      "synthetic": {"scenes": 2, "size": 128, "weight": 1.0}}))
    out = tmp_path / "w.pt"
    r = CliRunner().invoke(app, ["train", "--config", str(recipe), "--out", str(out)])
    assert r.exit_code == 0, r.output
    model, meta = load_weights(out)
    assert meta["train_config"]["steps"] == 3 and meta["trained_on"]["synthetic"]["scenes"] == 2
    assert meta["train_config"]["normalise"] == "meanstd"
    # Two scenes at pixel sizes drawn from 0.5-2 m, zoomed 0.6-1.6x; a run warns outside that.
    lo, hi = meta["pixel_size_m"]
    assert 0.3 <= lo <= 2 / 1.6 and 0.5 / 0.6 <= hi <= 3.34 and "pixel_size_m" not in meta["trained_on"]
    assert (tmp_path / "w.json").is_file()


def test_training_can_start_from_earlier_weights(tmp_path):
    """`init:` starts from a weights file of the same network, and its training data stays on record."""
    import yaml
    from typer.testing import CliRunner

    from satcheck.cli import app

    def recipe(name: str, **extra) -> str:
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"seed": 1, "steps": 2, "batch_size": 2, "crop_px": 64, "threads": 1,
                                        "prefetch": 0, "widths": [8, 16, 16, 24], "decoder": 16,
                                        "synthetic": {"scenes": 1, "size": 128, "weight": 1.0}, **extra}))
        return str(path)

    start = tmp_path / "start.pt"
    save_weights(ChangeNet((8, 16, 16, 24), 16), start,
                 {"trained_on": {"levir_cd_scenes": {"names": ["test_1"], "supervises": "building"}},
                  "train_config": {"steps": 1600, "seed": 7}})
    r = CliRunner().invoke(app, ["train", "--config", recipe("ft.yaml", init=str(start), lr=1e-9),
                                 "--out", str(tmp_path / "ft.pt")])
    assert r.exit_code == 0, r.output
    tuned, meta = load_weights(tmp_path / "ft.pt")
    first, _ = load_weights(start)
    # A learning rate of ~0 leaves the starting weights (BatchNorm statistics aside).
    conv = [k for k in first.state_dict() if k.endswith("weight")][0]
    torch.testing.assert_close(tuned.state_dict()[conv], first.state_dict()[conv], atol=1e-6, rtol=0)
    assert meta["trained_on"]["levir_cd_scenes"]["names"] == ["test_1"]
    assert meta["trained_on"]["initialised_from"] == {"file": "start.pt", "steps": 1600, "seed": 7}

    save_weights(ChangeNet((16, 32, 64, 96), 32), tmp_path / "wide.pt", {})
    r = CliRunner().invoke(app, ["train", "--config", recipe("bad.yaml", init=str(tmp_path / "wide.pt")),
                                 "--out", str(tmp_path / "bad.pt")])
    assert r.exit_code != 0 and "cannot start a recipe" in r.output and not (tmp_path / "bad.pt").exists()


def test_a_second_stage_keeps_what_each_stage_was_trained_on():
    from satcheck.model.train import _with_init

    naip = "all dates (no-change pairs, pasted objects)"
    first = {"trained_on": {"levir_cd_scenes": {"names": ["test_1", "test_3"]}, "naip_series": {"names": naip},
                            "synthetic": {"scenes": 240, "seed": 57}, "dsifn_samples": {"names": "all"}},
             "train_config": {"steps": 1200, "seed": 57}, "pixel_size_m": [0.31, 10.0]}
    second = {"levir_cd_scenes": {"names": ["test_5", "test_1"]}, "naip_series": {"names": naip},
              "synthetic": {"scenes": 240, "seed": 77}, "dsifn_samples": {"names": ["0_2"]},
              "pixel_size_m": [0.5, 5.0]}
    merged = _with_init(second, first, "/weights/lh_s57.pt")
    assert merged["levir_cd_scenes"]["names"] == ["test_1", "test_3", "test_5"]
    assert merged["naip_series"]["names"] == naip  # a description, not its letters
    assert "names" not in merged["synthetic"] and merged["dsifn_samples"]["names"] == "all"
    assert merged["initialised_from"] == {"file": "lh_s57.pt", "steps": 1200, "seed": 57}
    assert merged["pixel_size_m"] == [0.31, 10.0]
