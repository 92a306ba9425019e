"""Callbacks the CLI adds to every run: the predictions CSV and the run's config record."""

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
from pytorch_lightning.callbacks import BasePredictionWriter, ModelCheckpoint
from pytorch_lightning.cli import SaveConfigCallback

from smile.io import atomic_write


class PredictionWriter(BasePredictionWriter):
    """Write ``predictions.csv`` to the run folder: one row per image, one probability per attribute."""

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.filename = filename
        self.path: Path | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._photos_written = False

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Photos without a single face leave the predict loop nothing to run, so no epoch end: their
        # no_face / unreadable rows are written here.
        photos = getattr(trainer.datamodule, "photos", None)
        if getattr(stage, "value", stage) == "predict" and photos is not None and not self._photos_written:
            self.write_on_epoch_end(trainer, pl_module, [torch.zeros(0, len(pl_module.attributes))], [])

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        probs = torch.cat([torch.as_tensor(batch) for batch in predictions]).float()
        indices = (
            [index for batch in batch_indices[0] for index in batch] if batch_indices else range(len(probs))
        )
        name = self.filename if trainer.world_size == 1 else f"rank{trainer.global_rank}-{self.filename}"
        self.path = Path(trainer.log_dir or ".") / name
        photos = getattr(trainer.datamodule, "photos", None)
        if photos is not None:  # --data.predict_path: rows per face, with boxes and statuses
            from smile.photos import write_predictions

            write_predictions(photos, probs, indices, pl_module.attributes, self.path)
            self._photos_written = True
            return
        files = trainer.datamodule.predict_files()
        with atomic_write(self.path, newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", *pl_module.attributes])
            for index, row in zip(indices, probs.tolist()):
                writer.writerow([str(files[index]), *(f"{p:.6f}" for p in row)])
        print(f"Wrote {len(probs)} predictions to {self.path}")


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
    packages = ["smile", "torch", "torchvision", "pytorch-lightning", "torchmetrics", "numpy", "pillow"]
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
    """Save ``config.yaml`` (fit) or ``config-<stage>.yaml`` and ``environment.yaml`` in the run folder."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        stage = getattr(stage, "value", stage)
        self.config_filename = "config.yaml" if stage == "fit" else f"config-{stage}.yaml"
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and trainer.log_dir:
            with atomic_write(Path(trainer.log_dir) / "environment.yaml") as handle:
                yaml.safe_dump(environment_record(), handle, sort_keys=False)


class LastCheckpoint(ModelCheckpoint):
    """Write ``last.ckpt`` at the end of every epoch (and every ``every_n_train_steps`` if set), for resuming.

    Lightning's ``save_last`` only refreshes ``last.ckpt`` when a top-k checkpoint was saved in the
    same step, so an epoch without a new best would leave a stale ``last.ckpt`` behind.
    """

    def __init__(self, every_n_train_steps: int | None = None) -> None:
        super().__init__(
            filename="last",
            monitor=None,
            save_top_k=1,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )
