"""Callbacks the CLI adds to every run: the predictions CSV (:class:`PredictionWriter`), the run's config
and environment record (:class:`SaveRunConfig`) and the ``last.ckpt`` that resumes use (:class:`LastCheckpoint`);
and one a config may add, :class:`FreezeBackbone`, for fine-tuning a trained model."""

from __future__ import annotations

import csv
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import BasePredictionWriter, Callback, ModelCheckpoint
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from smile.console import say
from smile.evaluation.thresholds import present
from smile.install import DISTRIBUTION
from smile.io import atomic_write, fresh_path


class PredictionWriter(BasePredictionWriter):
    """Write ``predictions.csv`` to the run folder: one row per image, one probability per attribute, and
    ``predicted``: the attributes present at the model's thresholds."""

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.filename = filename
        self.path: Path | None = None

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        probs = torch.cat([torch.as_tensor(batch) for batch in predictions]).float()
        thresholds = pl_module.thresholds.tolist()
        indices = (
            [int(index) for batch in batch_indices[0] for index in batch]
            if batch_indices
            else list(range(len(probs)))
        )
        log_dir = trainer.log_dir  # on every process: it is a collective under DDP
        files = trainer.datamodule.predict_files()
        rows = list(zip(indices, probs.tolist()))
        if trainer.world_size > 1:  # one file: every process's rows, each image once, in dataset order
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = sorted({index: row for part in gathered for index, row in part}.items())
        if not trainer.is_global_zero:
            return
        self.path = fresh_path(Path(log_dir or ".") / self.filename)
        with atomic_write(self.path, newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", *pl_module.attributes, "predicted"])
            for index, row in rows:
                decided = present(row, pl_module.attributes, thresholds)
                writer.writerow([str(files[index]), *(f"{p:.6f}" for p in row), decided])
        say(f"Wrote {len(rows)} predictions to {self.path}", file=sys.stdout)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_record() -> dict[str, Any]:
    """Versions of Python and the packages that shape a run's results, and the git commit."""
    packages = [DISTRIBUTION, "torch", "torchvision", "pytorch-lightning", "torchmetrics", "numpy", "pillow"]
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": _git_commit(),
        "command": [os.path.basename(sys.argv[0]), *sys.argv[1:]],
    }


class SaveRunConfig(SaveConfigCallback):
    """Save the command's config and ``environment.yaml`` in the run folder: ``config.yaml`` for a new fit,
    ``config-resume.yaml`` for a resumed one, ``config-<stage>.yaml`` for the other commands; a name
    already taken gets a number (``config-test-2.yaml``, with ``environment-test-2.yaml``), so a later
    command never replaces the record of an earlier one."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        stage = getattr(stage, "value", stage)
        self._log_dir = trainer.log_dir  # on every process: it is a collective under DDP
        folder = Path(self._log_dir or ".")
        name = f"config-{stage}.yaml"
        if stage == "fit":  # a fit into a run folder that has its config already is a resume
            name = "config-resume.yaml" if (folder / "config.yaml").exists() else "config.yaml"
        self.config_filename = fresh_path(folder / name).name
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Called on rank 0 only, so trainer.log_dir (a broadcast) must not be used here.
        if trainer.is_global_zero and self._log_dir:
            name = self.config_filename.replace("config", "environment", 1)
            with atomic_write(Path(self._log_dir) / name) as handle:
                yaml.safe_dump(environment_record(), handle, sort_keys=False)


class LastCheckpoint(ModelCheckpoint):
    """Write ``last.ckpt``, for resuming: at the end of every epoch, every ``every_n_train_steps`` training
    steps within an epoch (0 or ``null``: never), and when a fit is stopped by SIGTERM or Ctrl-C.

    Lightning's ``save_last`` only refreshes ``last.ckpt`` when a top-k checkpoint was saved in the
    same step, so an epoch without a new best would leave a stale ``last.ckpt`` behind. Writes are
    atomic (see :class:`smile.training.resume.AtomicCheckpointIO`): a kill while writing leaves the previous file.

    Args:
        every_n_train_steps: also save within an epoch every this many optimizer steps, so that a run
            killed mid-epoch loses at most that many steps.
    """

    def __init__(self, every_n_train_steps: int | None = 200) -> None:
        super().__init__(
            filename="last",
            monitor=None,
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        )
        if every_n_train_steps is not None and every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps is {every_n_train_steps}: give 0 (never) or more")
        self.every_n_steps = every_n_train_steps or 0

    def _save_last_now(self, trainer: pl.Trainer) -> None:
        self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if (
            self.every_n_steps
            and trainer.global_step % self.every_n_steps == 0
            and batch_idx + 1 < trainer.num_training_batches  # the epoch's end saves anyway
            and not self._should_skip_saving_checkpoint(trainer)
        ):
            self._save_last_now(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """On SIGTERM (and Ctrl-C, see :class:`smile.training.resume.ResumableTraining`) Lightning stops between two
        training batches, where the state is consistent: save it. Not during validation (the last
        periodic or epoch checkpoint stays), nor for other errors, whose state may be half-updated."""
        if (
            isinstance(exception, SIGTERMException)
            and trainer.state.fn == TrainerFn.FITTING
            and not trainer.sanity_checking
            and not trainer.validating
            and not self._should_skip_saving_checkpoint(trainer)
        ):
            self._save_last_now(trainer)
            rank_zero_info(f"Saved {self.best_model_path} before stopping")


class FreezeBackbone(Callback):
    """Fine-tuning: train only the network's head (``net.head``) for the first ``epochs`` epochs, then all
    of it. The optimiser holds every parameter from the start; a frozen one gets no gradient, so the
    optimiser leaves it (and its weight decay) alone until it thaws."""

    def __init__(self, epochs: int = 1) -> None:
        if epochs < 0:
            raise ValueError(f"epochs is {epochs}: give 0 or more")
        self.epochs = epochs

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        frozen = trainer.current_epoch < self.epochs
        for name, parameter in pl_module.net.named_parameters():
            if not name.startswith("head."):
                parameter.requires_grad_(not frozen)
