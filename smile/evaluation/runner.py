"""Make the evaluation report from a model and its data: after ``test`` in the CLI, or on its own
with ``smile report``."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning.utilities import move_data_to_device
from tqdm import tqdm

from smile.console import say
from smile.data.celeba import resolve_attributes
from smile.data.dataset import load_rgb
from smile.errors import CheckpointError, SmileError
from smile.evaluation import DEFAULT_GROUPS
from smile.evaluation.curves import read_curves
from smile.evaluation.report import Predictions, tuning_note, write_report
from smile.evaluation.thresholds import MIN_TUNE_COUNT, model_thresholds
from smile.io import fresh_path
from smile.trained.checkpoints import load_checkpoint

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
    available = getattr(getattr(datamodule, "table", None), "names", None)
    groups = [name for name in groups if available is None or name in available]  # your photos may lack them
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
    say(
        f"Wrote the evaluation report to {out} ({time.perf_counter() - started:.1f} s): mean accuracy over "
        f"{summary['num_attributes']} attributes {summary['mean_acc']:.4f} on {summary['num_images']} "
        f"{test.split} images",
        file=sys.stderr,
    )
    if report["val_split_images"] is not None:
        say(tuning_note(report))
    elif tune_thresholds:
        say("Thresholds not tuned: the data has no validation split.")
    return report


def checkpoint_source(
    path: Path | None, checkpoint: dict[str, Any] | None, datamodule: Any
) -> dict[str, Any]:
    hp = getattr(datamodule, "hparams", {})
    return {
        "checkpoint": str(path) if path else None,
        "epoch": checkpoint.get("epoch") if checkpoint else None,
        "global_step": checkpoint.get("global_step") if checkpoint else None,
        "data.root": str(hp.get("root")) if hp else None,
        "data.subsets": dict(hp.get("subsets") or {}) if hp else None,
    }


def report_after_test(trainer: Any, model: torch.nn.Module, datamodule: Any) -> dict[str, Any] | None:
    """The CLI's report after ``test``: into ``<run folder>/report``, with the default settings."""
    log_dir = trainer.log_dir  # on every process: it is a collective under DDP
    if not trainer.is_global_zero or datamodule is None:
        return None
    if trainer.world_size > 1:  # each process holds a share of the split: report from one process instead
        say(
            f"The report is not written under {trainer.world_size} processes; write it with "
            f"python -m smile report --ckpt_path {trainer.ckpt_path or 'best'}",
            file=sys.stdout,
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
    source = checkpoint_source(path, checkpoint, datamodule)
    total = len(datamodule.split_rows["test"])
    if len(test.probs) < total:
        source["test_images"] = (
            f"the first {len(test.probs)} of {total}, as tested (trainer.limit_test_batches="
            f"{trainer.limit_test_batches})"
        )
        say(
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
