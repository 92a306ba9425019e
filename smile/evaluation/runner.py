"""Make the evaluation report from a model and its data: after ``test`` in the CLI, or on its own
with ``python -m smile report``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pytorch_lightning.utilities import move_data_to_device
from tqdm import tqdm

from smile.data.celeba import resolve_attributes
from smile.data.dataset import load_rgb
from smile.errors import CheckpointError, SmileError
from smile.evaluation.curves import read_curves
from smile.evaluation.metrics import CRITERIA, DEFAULT_THRESHOLD, MIN_TUNE_COUNT
from smile.evaluation.report import DEFAULT_GROUPS, Predictions, tuning_note, write_report
from smile.io import fresh_path
from smile.training.checkpoints import checkpoint_settings, load_checkpoint, resolve_checkpoint, run_folder

REPORT_DIR = "report"


def predict_split(
    model: torch.nn.Module, datamodule: Any, split: str, groups: Sequence[str] = ()
) -> Predictions:
    """The model's probabilities on ``split`` of a set-up :class:`~smile.data.CelebADataModule`, with the
    labels, the image files and the labels of the ``groups`` attributes (read from the annotation
    table, so they need not be among the model's attributes)."""
    loader = {"val": datamodule.val_dataloader, "test": datamodule.test_dataloader}[split]()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs, labels = [], []
    try:
        with torch.inference_mode():
            batches = tqdm(loader, desc=f"Predicting {split}", leave=False, disable=None)
            for index, batch in enumerate(batches):
                # the datamodule's device-side step (cached uint8 batches are cropped there)
                inputs = datamodule.on_after_batch_transfer(move_data_to_device(batch, device), 0)
                probs.append(model.predict_step(inputs, index).float().cpu())
                labels.append(batch[1].cpu())
    finally:
        model.train(was_training)
    return split_predictions(model, datamodule, split, probs, labels, groups)


def split_predictions(
    model: torch.nn.Module,
    datamodule: Any,
    split: str,
    probs: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    groups: Sequence[str] = (),
) -> Predictions:
    """:class:`Predictions` from per-batch probabilities and labels of the first images of ``split`` in
    loader order (all of them, or as many as a limited test covered), checked against the table."""
    prob_array = torch.cat(list(probs)).numpy() if probs else np.zeros((0, len(model.attributes)))
    label_array = (
        torch.cat(list(labels)).numpy().astype(np.int64) if labels else np.zeros_like(prob_array, np.int64)
    )
    files, table_labels = datamodule.split_annotations(split, model.attributes)
    count = len(label_array)
    if count > len(files) or not np.array_equal(table_labels[:count], label_array):
        raise RuntimeError(
            f"The {split} loader's labels do not match the annotation table's rows ({count} "
            f"batched images, {len(files)} rows): the loader must keep the split's order"
        )
    files = files[:count]
    group_labels = {}
    if groups:
        _, columns = datamodule.split_annotations(split, list(groups))
        group_labels = {name: columns[:count, k] for k, name in enumerate(groups)}
    identities = datamodule.split_identities(split)
    return Predictions(
        list(model.attributes),
        prob_array,
        label_array,
        [str(f) for f in files],
        group_labels,
        split,
        identities[:count] if identities is not None else None,
    )


def model_thresholds(model: torch.nn.Module) -> tuple[list[float] | float, str | None]:
    """The decision thresholds ``model`` ships with, and where they come from (0.5 and ``None`` for a
    model without tuned ones)."""
    values = [float(t) for t in getattr(model, "thresholds", torch.tensor([]))]
    criterion = getattr(model, "hparams", {}).get("threshold_criterion")
    if not values or all(t == DEFAULT_THRESHOLD for t in values):
        return DEFAULT_THRESHOLD, None
    return values, f"the model's, tuned on validation for {criterion}" if criterion else "the model's"


class _ImageLogger:
    """Logs each report PNG to TensorBoard as an image ``report/<name>``."""

    def __init__(self, log_dir: Path, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.step = step

    def __call__(self, name: str, path: Path) -> None:
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self.writer.add_image(f"report/{name}", pixels, self.step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def make_report(
    model: torch.nn.Module,
    datamodule: Any,
    out: str | Path,
    *,
    run_dir: str | Path | None = None,
    attributes: Sequence[str] | None = None,
    groups: Sequence[str] = DEFAULT_GROUPS,
    plot_attributes: Sequence[str] | None = None,
    tune_thresholds: bool = True,
    criterion: str = "acc",
    threshold: float | None = None,
    bins: int = 15,
    errors: int = 16,
    min_group_count: int = 20,
    min_tune_count: int = MIN_TUNE_COUNT,
    tensorboard: bool = True,
    step: int = 0,
    source: dict[str, Any] | None = None,
    test_predictions: Predictions | None = None,
) -> dict[str, Any]:
    """Predict the test split (unless ``test_predictions`` holds a test's own) and val, for tuned
    thresholds, when the data has one; write the report folder ``out``. Decisions are at ``threshold``
    for every attribute, or by default at the model's own thresholds.

    ``attributes``: report these of the model's attributes only (default: all of them). The training
    curves come from ``run_dir``'s TensorBoard files, where the figures are also logged as images
    (into ``out`` when there is no run folder).
    """
    started = time.perf_counter()
    groups = resolve_attributes(list(groups)) if groups else []
    chosen = list(model.attributes) if attributes is None else resolve_attributes(list(attributes))
    unknown = [name for name in chosen if name not in model.attributes]
    if unknown:
        raise CheckpointError(
            f"The model predicts {list(model.attributes)}; it cannot report on {unknown}. Choose "
            "--attributes among those."
        )
    if plot_attributes is not None:
        plot_attributes = (
            chosen if list(plot_attributes) == ["all"] else resolve_attributes(list(plot_attributes))
        )
        outside = [name for name in plot_attributes if name not in chosen]
        if outside:
            raise SmileError(f"--plot_attributes {outside} are not among the reported attributes {chosen}")
    test = (test_predictions or predict_split(model, datamodule, "test", groups)).select(chosen)
    has_val = "val" in getattr(datamodule, "datasets", {"val": None})
    val = predict_split(model, datamodule, "val").select(chosen) if tune_thresholds and has_val else None
    cuts, threshold_source = model_thresholds(model) if threshold is None else (threshold, None)
    if not isinstance(cuts, float):
        cuts = [cuts[list(model.attributes).index(name)] for name in chosen]
    curves = read_curves(run_dir) if run_dir is not None else {}
    logger = _ImageLogger(Path(run_dir or out), step) if tensorboard else None
    info = {
        **(source or {}),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    try:
        report = write_report(
            out,
            test,
            val,
            plot_attributes=plot_attributes,
            curves=curves,
            load_image=lambda file: np.asarray(load_rgb(Path(file))),
            errors=errors,
            source=info,
            on_figure=logger,
            threshold=cuts,
            threshold_source=threshold_source,
            bins=bins,
            criterion=criterion,
            min_group_count=min_group_count,
            min_tune_count=min_tune_count,
        )
    finally:
        if logger is not None:
            logger.close()
    summary = report["summary"]
    print(
        f"Wrote the evaluation report to {out} ({time.perf_counter() - started:.1f} s): mean accuracy over "
        f"{summary['num_attributes']} attributes {summary['mean_acc']:.4f} on {summary['num_images']} "
        f"{test.split} images",
        file=sys.stderr,
    )
    if report["val_split_images"] is not None:
        print(tuning_note(report), file=sys.stderr)
    elif tune_thresholds:
        print("Thresholds not tuned: the data has no validation split.", file=sys.stderr)
    return report


def _checkpoint_source(
    path: Path | None, checkpoint: dict[str, Any] | None, datamodule: Any
) -> dict[str, Any]:
    hp = getattr(datamodule, "hparams", {})
    return {
        "checkpoint": str(path) if path else None,
        "epoch": checkpoint.get("epoch") if checkpoint else None,
        "global_step": checkpoint.get("global_step") if checkpoint else None,
        "data.root": str(hp.get("root")) if hp else None,
        "data.val_subset": hp.get("val_subset") if hp else None,
        "data.test_subset": hp.get("test_subset") if hp else None,
    }


def report_after_test(trainer: Any, model: torch.nn.Module, datamodule: Any) -> dict[str, Any] | None:
    """The CLI's report after ``test``: into ``<run folder>/report``, with the default settings."""
    log_dir = trainer.log_dir  # on every process: it is a collective under DDP
    if not trainer.is_global_zero or datamodule is None:
        return None
    if trainer.world_size > 1:  # each process holds a share of the split: report from one process instead
        print(
            f"The report is not written under {trainer.world_size} processes; write it with "
            f"python -m smile report --ckpt_path {trainer.ckpt_path or 'best'}"
        )
        return None
    for logger in trainer.loggers:  # the training curves are read back from the event files
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "flush"):
            experiment.flush()
    run_dir = Path(log_dir or ".")
    path = Path(trainer.ckpt_path) if trainer.ckpt_path else None
    checkpoint = load_checkpoint(path) if path is not None and path.is_file() else None
    outputs = getattr(model, "test_outputs", [])
    test = split_predictions(
        model, datamodule, "test", [p for p, _ in outputs], [y for _, y in outputs], DEFAULT_GROUPS
    )
    source = _checkpoint_source(path, checkpoint, datamodule)
    total = len(datamodule.split_rows["test"])
    if len(test.probs) < total:
        source["test_images"] = (
            f"the first {len(test.probs)} of {total}, as tested (trainer.limit_test_batches="
            f"{trainer.limit_test_batches})"
        )
        print(
            f"The report covers the {len(test.probs)} test images the test covered, not all {total} "
            f"(trainer.limit_test_batches={trainer.limit_test_batches}); smile report covers them all.",
            file=sys.stderr,
        )
    return make_report(
        model,
        datamodule,
        fresh_path(run_dir / REPORT_DIR),
        run_dir=run_dir,
        step=int(checkpoint.get("global_step", 0)) if checkpoint else trainer.global_step,
        source=source,
        test_predictions=test,
    )


def add_checkpoint_data_options(parser: argparse.ArgumentParser) -> None:
    """The options of a command that runs a checkpoint on its run's data: ``--data.root`` (when the data
    moved), ``--batch_size``, ``--num_workers`` and ``--device``."""
    parser.add_argument(
        "--data.root", "--root", dest="root", help="the data root, when the data moved since training"
    )
    parser.add_argument(
        "--batch_size", "--batch-size", type=int, help="images per batch (default: the run's)"
    )
    parser.add_argument(
        "--num_workers", "--num-workers", type=int, help="loader processes (default: the run's)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where to run the model: auto (a GPU when there is one), cpu, cuda...",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smile report",
        description=(
            "Write the evaluation report of a checkpoint (metrics.json, report.md and PNG figures) into "
            "its run folder's report/ directory, using the checkpoint's own data settings."
        ),
    )
    parser.add_argument(
        "--ckpt_path", "--ckpt-path", default="best", help="a .ckpt file, or best / last (default: best)"
    )
    parser.add_argument(
        "--attributes",
        nargs="+",
        help="report only these of the checkpoint's attributes (default: all of them)",
    )
    parser.add_argument(
        "--groups",
        nargs="*",
        default=list(DEFAULT_GROUPS),
        help="attributes whose groups the fairness slices compare (default: Male Young; none: no slices)",
    )
    parser.add_argument(
        "--plot_attributes",
        "--plot-attributes",
        nargs="+",
        help="attributes that get their own figures, or 'all' (default: all when at most 5, else Smiling "
        "if reported, else the first)",
    )
    parser.add_argument("--out", help="the report folder (default: <run folder>/report)")
    add_checkpoint_data_options(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        help="one decision threshold for every attribute (default: the model's own, 0.5 unless it was "
        "trained with model.threshold_criterion)",
    )
    parser.add_argument(
        "--tune_thresholds",
        "--tune-thresholds",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also choose per-attribute thresholds on the val split and report test at them (default: on)",
    )
    parser.add_argument("--criterion", choices=CRITERIA, default="acc", help="what tuned thresholds maximise")
    parser.add_argument("--bins", type=int, default=15, help="reliability-diagram bins (default 15)")
    parser.add_argument("--errors", type=int, default=16, help="images in each error grid (default 16)")
    parser.add_argument(
        "--min_group_count",
        "--min-group-count",
        type=int,
        default=20,
        help="a fairness gap is ranked only when each group has this many images behind it (default 20)",
    )
    parser.add_argument(
        "--min_tune_count",
        "--min-tune-count",
        type=int,
        default=MIN_TUNE_COUNT,
        help="tune an attribute's threshold only with this many val images of each class (default "
        f"{MIN_TUNE_COUNT}; fewer: it keeps --threshold)",
    )
    parser.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also log the figures to the run's TensorBoard (default: on)",
    )
    return parser


def model_and_data(
    path: Path,
    checkpoint: dict[str, Any],
    stage: Literal["validate", "test"],
    device: str = "auto",
    **data_overrides: Any,
) -> tuple[Any, Any]:
    """A checkpoint's model (on ``device``: ``auto`` is a GPU when there is one) and its data module, set
    up for ``stage`` with the run's own data settings (``data_overrides`` that are not ``None`` replace
    them: ``root``, ``batch_size``, ``cache_dir``...)."""
    from smile.data.cache import STAGE_SPLITS
    from smile.data.datamodule import CelebADataModule
    from smile.system import AttributeClassifier

    settings = checkpoint_settings(checkpoint)
    model_hp, data_hp = settings.model, settings.data
    if not data_hp:
        raise CheckpointError(
            f"{path} holds no data settings (datamodule_hyper_parameters); train it with the CLI"
        )
    data_hp["attributes"] = model_hp["attributes"]  # the model's list (the same, for CLI-trained runs)
    data_hp.update({key: value for key, value in data_overrides.items() if value is not None})
    model = AttributeClassifier(**model_hp)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    model.to(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    datamodule = CelebADataModule(**data_hp)
    datamodule.prepare_splits(STAGE_SPLITS[stage])
    datamodule.setup(stage)
    return model, datamodule


def main(argv: list[str] | None = None) -> int:
    """``python -m smile report``."""

    args = _parser().parse_args(argv)
    path = resolve_checkpoint(args.ckpt_path)
    if str(path) != args.ckpt_path:
        print(f"Using checkpoint {path}", file=sys.stderr)
    checkpoint = load_checkpoint(path)
    overrides = {"root": args.root, "batch_size": args.batch_size, "num_workers": args.num_workers}
    model, datamodule = model_and_data(path, checkpoint, "test", args.device, **overrides)
    run = run_folder(path)
    out = (
        Path(args.out)
        if args.out
        else fresh_path(run.path / REPORT_DIR if run else path.parent / f"{path.stem}-report")
    )
    make_report(
        model,
        datamodule,
        out,
        run_dir=run.path if run else None,
        attributes=args.attributes,
        groups=args.groups,
        plot_attributes=args.plot_attributes,
        tune_thresholds=args.tune_thresholds,
        criterion=args.criterion,
        threshold=args.threshold,
        bins=args.bins,
        errors=args.errors,
        min_group_count=args.min_group_count,
        min_tune_count=args.min_tune_count,
        tensorboard=args.tensorboard,
        step=int(checkpoint.get("global_step", 0)),
        source=_checkpoint_source(path, checkpoint, datamodule),
    )
    return 0
