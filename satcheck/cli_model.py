"""`satcheck train` and `satcheck eval`: the change model's commands (registered by :mod:`satcheck.cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from satcheck.cli_common import err, fail, out
from satcheck.errors import SatcheckError


def train(
    out_path: Path = typer.Option(Path("models/changenet.pt"), "--out", "-o", help="Where to write the weights."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training recipe (YAML), e.g. configs/train.yaml."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the number of steps."),
    dataset: list[Path] = typer.Option([], "--dataset", help="Extra A/B/label folder to train on (repeatable)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto: a CUDA GPU where torch sees one)."),
) -> None:
    """Train the change model on synthetic scenes and labelled A/B/label datasets."""
    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter(f"'{device}' is not one of auto, cpu, cuda", param_hint="--device")
    try:  # the weights are written after minutes of training: a place they cannot go is refused now
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise typer.BadParameter(f"{out_path}: its folder cannot be made ({exc.strerror}); choose another place",
                                 param_hint="--out") from None
    if out_path.is_dir():
        raise typer.BadParameter(f"{out_path} is a folder; pass a file name such as {out_path / 'changenet.pt'}",
                                 param_hint="--out")
    for d in dataset:
        # One named on the command line is meant to be trained on: found absent only after the synthetic scenes
        # are made (minutes), it would be skipped with a line in the log.
        if not d.is_dir():
            raise typer.BadParameter(f"{d} is not a folder; pass a folder with A/, B/ and label/", param_hint="--dataset")
    from satcheck.model.train import FolderSource, load_train_config
    from satcheck.model.train import train as run_training

    try:
        cfg = load_train_config(config)
        update = {}
        if steps:
            update["steps"] = steps
        if dataset:
            update["datasets"] = list(cfg.datasets) + [FolderSource(path=str(d)) for d in dataset]
        cfg = cfg.model_copy(update=update)
        record = run_training(cfg, out_path, log=lambda m: err.print(m, highlight=False), device=device)
    except SatcheckError as exc:
        raise fail(exc) from None
    out.print(f"weights: {out_path} ({record['parameters']} parameters, {record['gflops_per_mpx']} GFLOP/Mpx, "
              f"{record['train_seconds']} s)")


def evaluate_cmd(
    dataset: Path = typer.Argument(..., help="Folder with A/, B/ and label/ (PNG or GeoTIFF)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Weights file (default: the shipped weights)."),
    detector: str = typer.Option("auto", "--detector", help="auto | model | cva"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    min_object_px: int = typer.Option(10, "--min-object-px", help="Smallest connected component counted as an object."),
    pixel_size: Optional[float] = typer.Option(
        None, "--pixel-size", min=0.01, help="Pixel size in metres of images that do not say (PNG); "
        "10 m imagery is enlarged for the model as in a run."),
    include_trained: bool = typer.Option(False, "--include-trained", help="Also score images the weights were trained on."),
    classes: str = typer.Option("any", "--classes", help="building | hardened | excavation | any: score the change "
                                "a run would report as that class (LEVIR-CD labels buildings only)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Score change detection on a labelled dataset: pixel P/R/F1/IoU and object recall/precision."""
    from satcheck.detect.base import CLASS_CODES

    if classes not in CLASS_CODES:
        raise typer.BadParameter(f"'{classes}' is not one of {', '.join(CLASS_CODES)}", param_hint="--classes")
    from satcheck.config import RunConfig
    from satcheck.datasets import list_pairs, load_dataset
    from satcheck.detect import get_detector
    from satcheck.evaluate import evaluate, trained_names

    try:
        cfg = RunConfig().with_overrides(**{"detect.detector": detector, "detect.device": device,
                                            "detect.model.weights": str(model) if model else None})
        names = list_pairs(dataset)
        pairs = load_dataset(dataset, names)
        det = get_detector(cfg.detect, pairs[0].after.shape[0])
        skipped = []
        if not include_trained:
            skipped = trained_names(getattr(det, "meta", {}), dataset, names)
            pairs = [p for p in pairs if p.name not in skipped]
        result = evaluate(det, pairs, min_object_px, normalise=cfg.normalise.method, px_m=pixel_size,
                          coregister_max_px=cfg.align.coregister_max_px, classes=classes)
        result.skipped = skipped
    except SatcheckError as exc:
        raise fail(exc) from None
    d = result.as_dict() | {"detector": det.name, "dataset": str(dataset), "classes": classes}
    if as_json:
        typer.echo(json.dumps(d, ensure_ascii=False))
        return
    scored = "" if classes == "any" else f", class {classes}"
    t = Table(title=f"{dataset} ({det.name}{scored})", title_justify="left")
    for col in ("image", "precision", "recall", "f1", "iou", "object_recall", "object_precision"):
        t.add_column(col, justify="right" if col != "image" else "left", no_wrap=True)
    keys = ("precision", "recall", "f1", "iou", "object_recall", "object_precision")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for img in d["images"]:
        t.add_row(img["name"], *(fmt(img[k]) for k in keys))
    t.add_row("[bold]all pixels[/]", *(fmt(d[k]) for k in keys))
    out.print(t)
    if skipped:
        out.print(f"not scored (trained on): {', '.join(skipped)}; --include-trained scores them too")
