"""The CelebA LightningDataModule: finds the data, splits it, and serves transformed batches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from smile.data.attributes import resolve_attributes
from smile.data.dataset import ImageAttributes
from smile.data.layouts import CelebALayout, detect_layout, read_attributes, read_partition, split_files
from smile.data.transforms import eval_transform, train_transform
from smile.errors import DataError
from smile.photos import PhotoFaces


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
        predict_path: predict on the photos of this file or folder (recursively) instead of the test
            split: faces are found, aligned to CelebA's framing, and each gets a CSV row
            (:mod:`smile.photos`). The CelebA files under ``root`` are then not needed.
        aligned: the ``predict_path`` images are already aligned CelebA-style crops: skip detection.
        detector: face detector for ``predict_path`` (``auto``, ``mtcnn``, ``yunet``, ``haar``).
        min_face: with ``predict_path``, ignore faces narrower than this many pixels of the photo.
        annotate_dir: with ``predict_path``, also write copies of the photos with boxes and labels here.
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
        predict_path: str | None = None,
        aligned: bool = False,
        detector: str = "auto",
        min_face: int = 40,
        annotate_dir: str | None = None,
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
        self.photos: PhotoFaces | None = None

    @property
    def num_attributes(self) -> int:
        return len(self.attributes)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset when asked to and absent (runs on one process only)."""
        if self._predicting_photos():
            return
        if self.hparams.synthetic_images:
            from smile.synthetic import generate_dataset, is_complete

            if not is_complete(self.root):
                generate_dataset(self.root, self.hparams.synthetic_images, seed=self.hparams.synthetic_seed)

    def _predicting_photos(self, stage: str | None = None) -> bool:
        """Whether this is a predict run on ``predict_path`` (which needs nothing under ``root``)."""
        if not self.hparams.predict_path:
            return False
        if stage is None and self.trainer is not None:
            stage = getattr(self.trainer.state.fn, "value", self.trainer.state.fn)
        return stage == "predict"

    def setup(self, stage: str | None = None) -> None:
        if self._predicting_photos(stage):
            if self.photos is None:
                self.photos = PhotoFaces.from_path(
                    self.hparams.predict_path,
                    eval_transform(self.hparams.image_size),
                    aligned=self.hparams.aligned,
                    detector=self.hparams.detector,
                    min_face=self.hparams.min_face,
                    annotate_dir=self.hparams.annotate_dir,
                )
            return
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
        return DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Predictions are made on the test split, or on the faces of ``predict_path``."""
        if self.photos is not None:
            # crops are cut in this process (OpenCV thread pools and forked workers mix badly); the
            # detection in setup costs far more anyway
            return DataLoader(self.photos, batch_size=self.hparams.batch_size, shuffle=False, num_workers=0)
        return self._loader("test", shuffle=False)

    def predict_files(self) -> list[Path]:
        """The image files of :meth:`predict_dataloader`, in order (a photo once per face)."""
        if self.photos is not None:
            return [self.photos.rows[i].image for i in self.photos.row_of]
        dataset = self.datasets["test"]
        return [dataset.image_dir / name for name in dataset.files]
