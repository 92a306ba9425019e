"""The CelebA LightningDataModule: finds the data, splits it, and serves transformed batches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from smile.data.attributes import resolve_attributes
from smile.data.dataset import ImageAttributes
from smile.data.layouts import CelebALayout, detect_layout, read_attributes, read_partition, split_files
from smile.data.sampling import (
    EpochSampler,
    Position,
    SeededItems,
    resume_position,
    run_seed,
    train_position,
)
from smile.data.transforms import eval_transform, train_transform
from smile.errors import DataError


def default_num_workers() -> int:
    """Loader processes: one per core, at most 8."""
    return max(
        1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


class CelebADataModule(pl.LightningDataModule):
    """CelebA (or a synthetic copy in its layout) for attribute classification.

    Args:
        root: folder holding CelebA in the official, torchvision or Kaggle layout.
        attributes: attribute names to predict, or ``all`` for all 40.
        train_subset: use only the first N training images (``null``: all); likewise for val and test.
        image_size: side of the square network input.
        batch_size: images per batch (per device).
        num_workers: loader processes (``null``: one per core, at most 8).
        synthetic_images: when set and ``root`` holds no dataset, generate a synthetic CelebA-format
            dataset of this many images there first (the demo's way of running without downloads).
        synthetic_seed: seed of the synthetic generator.
    """

    def __init__(
        self,
        root: str = "data/celeba",
        attributes: Sequence[str] | str = ("Smiling",),
        train_subset: int | None = None,
        val_subset: int | None = None,
        test_subset: int | None = None,
        image_size: int = 64,
        batch_size: int = 32,
        num_workers: int | None = None,
        synthetic_images: int | None = None,
        synthetic_seed: int = 0,
    ) -> None:
        super().__init__()
        self.attributes = resolve_attributes(attributes)
        self.save_hyperparameters()
        for name, value in (
            ("train_subset", train_subset),
            ("val_subset", val_subset),
            ("test_subset", test_subset),
        ):
            if value is not None and value < 1:
                raise DataError(f"data.{name} is {value}: give a positive count, or null for the whole split")
        self.root = Path(root)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.datasets: dict[str, ImageAttributes] = {}
        self.layout: CelebALayout | None = None
        self._train_sampler: EpochSampler | None = None
        self._resume_position: Position | None = None

    @property
    def num_attributes(self) -> int:
        return len(self.attributes)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset when asked to and absent (runs on one process only)."""
        if self.hparams.synthetic_images:
            from smile.synthetic import generate_dataset, is_complete

            if not is_complete(self.root):
                generate_dataset(self.root, self.hparams.synthetic_images, seed=self.hparams.synthetic_seed)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.layout = detect_layout(self.root)
        table = read_attributes(self.layout.attributes)
        splits = split_files(table, read_partition(self.layout.partition), self.layout.partition)
        labels = table.columns(self.attributes)
        subsets = {
            "train": self.hparams.train_subset,
            "val": self.hparams.val_subset,
            "test": self.hparams.test_subset,
        }
        for split, rows in splits.items():
            rows = rows[: subsets[split]] if subsets[split] else rows
            if len(rows) == 0:
                raise DataError(
                    f"The {split} split of {self.layout.partition} is empty: no images to {split} on"
                )
            transform = (
                train_transform(self.hparams.image_size)
                if split == "train"
                else eval_transform(self.hparams.image_size)
            )
            self.datasets[split] = ImageAttributes(
                self.layout.images, [table.files[i] for i in rows], labels[rows], transform
            )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        """Batches of ``split``; the order (and, for training, the augmentation) depends only on the
        seed, the epoch and the sample (see :mod:`smile.data.sampling`). Under DDP each process gets its
        share; evaluation shares are not padded, so every sample is evaluated exactly once."""
        dataset = self.datasets[split]
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if shuffle:
            position = self._resume_position or Position(trainer.current_epoch if trainer is not None else 0)
            self._resume_position = None
            sampler = EpochSampler(
                len(dataset),
                shuffle=True,
                seed=run_seed(),
                num_replicas=world,
                rank=rank,
                with_epoch=True,
                epoch=position.epoch,
                skip=position.batches * self.hparams.batch_size,
            )
            dataset = SeededItems(dataset, run_seed())
            self._train_sampler = sampler
        else:
            sampler = EpochSampler(len(dataset), shuffle=False, num_replicas=world, rank=rank, pad=False)
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: where training stands in the data, so a resumed epoch goes on from there."""
        position = train_position(self.trainer, self._train_sampler)
        return {"train_position": position.as_dict()} if position else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_position = resume_position(state_dict.get("train_position"))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Predictions are made on the test split."""
        return self._loader("test", shuffle=False)

    def predict_files(self) -> list[Path]:
        """The image files of :meth:`predict_dataloader`, in order."""
        dataset = self.datasets["test"]
        return [dataset.image_dir / name for name in dataset.files]
