"""The CelebA LightningDataModule: finds the data, splits it, and serves transformed batches.

Where the images of a split come from is chosen once, in ``__init__``: :class:`FileSource` (the JPEG
files, decoded and transformed per image by the loader's workers) or :class:`CacheSource` (the decoded
cache, cropped and flipped per batch on the device; ``data.cache``)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from smile.data.batch_transforms import BatchAugment, transform_cached_batch
from smile.data.cache import (
    CacheGeometry,
    cache_geometry,
    cached_loader,
    check_crop_size,
    open_cache,
    resolve_cache_dir,
)
from smile.data.celeba import CROP_SIZE, IMAGE_SIZE, resolve_attributes
from smile.data.dataset import ImageAttributes
from smile.data.layouts import (
    SPLITS,
    STAGE_SPLITS,
    AttributeTable,
    CelebALayout,
    detect_layout,
    read_attributes,
    read_identities,
    read_partition,
    split_files,
    splits_for,
)
from smile.data.photo_layouts import (
    DEFAULT_SPLIT,
    PhotoLayout,
    PhotoOptions,
    align_photos,
    assign_splits,
    is_photo_layout,
    read_photo_layout,
)
from smile.data.pil_transforms import eval_transform, train_transform
from smile.data.sampling import (
    EpochSampler,
    Position,
    SeededItems,
    batch_seed,
    resume_position,
    run_seed,
    train_position,
)
from smile.errors import DataError
from smile.faces.options import FaceOptions

#: Mixed into the seed of the batch augmentation's generator, apart from the training step's stream.
_AUGMENT_STREAM = 0x617567


class Subsets(TypedDict, total=False):
    """The first N images of a split to use (a split left out is used whole), e.g.
    ``{train: 16000, val: 1000}``; one at a time on the command line: ``--data.subsets.train 2000``."""

    train: int
    val: int
    test: int


class FileSource:
    """Images decoded from their files by the loader's worker processes, transformed per image
    (:mod:`smile.data.pil_transforms`): the original notebook's pipeline."""

    #: the sampler yields (epoch, index) pairs, from which each item seeds its random transform
    seeded_items = True

    def __init__(self, data: CelebADataModule) -> None:
        self.data = data

    def prepare(self, splits: Sequence[str]) -> None:
        """Nothing to build ahead of the run."""

    def loader(self, split: str, sampler: EpochSampler, shuffle: bool) -> DataLoader:
        dataset = self.data.datasets[split]
        workers = self.data.num_workers
        return DataLoader(
            SeededItems(dataset, run_seed()) if shuffle else dataset,
            batch_size=self.data.hparams.batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def on_device(self, batch: Any, training: bool, generator: torch.Generator | None) -> Any:
        """The batch is the network's input already."""
        return batch


class CacheSource:
    """Images from the decoded cache (:mod:`smile.data.cache`), sliced in batches of uint8 and cropped
    and flipped on the device (:mod:`smile.data.batch_transforms`)."""

    seeded_items = False

    def __init__(self, data: CelebADataModule) -> None:
        self.data = data

    def prepare(self, splits: Sequence[str]) -> None:
        """Build the caches of ``splits`` (one process per node; the others then find them built)."""
        self.data.setup()
        for split in splits:
            if split in self.data.datasets:  # a missing one is reported by setup(stage)
                self.data.split_cache(split)

    def loader(self, split: str, sampler: EpochSampler, shuffle: bool) -> DataLoader:
        hparams = self.data.hparams
        return cached_loader(
            self.data.split_cache(split),
            hparams.batch_size,
            sampler,
            self.data.trainer,
        )

    @functools.cached_property
    def geometry(self) -> CacheGeometry:
        return cache_geometry(self.data.hparams.image_size, self.data.hparams.crop_size)

    def on_device(self, batch: Any, training: bool, generator: torch.Generator | None) -> Any:
        return transform_cached_batch(batch, self.geometry, training, generator)


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
        subsets: use only the first N images of a split, e.g. ``{train: 16000, val: 1000}`` (``null``:
            every image of every split).
        image_size: side of the square network input.
        crop_size: side of the square face window, in pixels of CelebA's 178x218 aligned image, that is
            resized to ``image_size``: 178 (the whole width, as the notebook) down to 96 for a tighter
            face crop around the same centre (networks pretrained on tight crops, such as fer's).
        augment: further training augmentation on the device, the arguments of
            :class:`smile.data.batch_transforms.BatchAugment` (colour jitter, small affine, random erasing).
        batch_size: images per batch (per device).
        num_workers: loader processes (``null``: one per core, at most 8).
        cache: serve the images from a decoded cache (see :mod:`smile.data.cache`): each split is
            decoded once, at the resolution the transforms need, into a uint8 array file, and the
            crops and flips are done on whole batches on the training device (in GPU memory when the
            cache takes at most half of the free memory).
        cache_dir: folder for the caches (``null``: ``ROOT/smile-cache`` when ROOT is writable, else
            ``~/.cache/smile``).
        synthetic_images: when set and ``root`` holds no dataset, generate a synthetic CelebA-format
            dataset of this many images there first (the demo's way of running without downloads).
        photos: for your own labelled photos (class folders or a CSV under ``root``, see
            :mod:`smile.data.photo_layouts`): the positive class folder, the split's shares and seed when
            the layout names no split, and the alignment's detector, minimum face and no-face rule.
    """

    def __init__(
        self,
        root: str = "data/celeba",
        attributes: Sequence[str] | str = ("Smiling",),
        subsets: Subsets | None = None,
        image_size: int = IMAGE_SIZE,
        crop_size: int = CROP_SIZE,
        augment: dict[str, float] | None = None,
        batch_size: int = 32,
        num_workers: int | None = None,
        cache: bool = False,
        cache_dir: str | None = None,
        synthetic_images: int | None = None,
        photos: PhotoOptions | None = None,
    ) -> None:
        super().__init__()
        # Resolved once, here ("all" -> the 40, or a CSV's columns); the CLI links this list to the model.
        # The saved hyper-parameters hold it too: under LightningCLI they are first saved as given ("all"),
        # and Lightning refuses to log hyper-parameters that the model and the data module hold differently.
        self.photo_options: PhotoOptions = dict(photos or {})  # type: ignore[assignment]
        self.photo_layout = (
            read_photo_layout(root, attributes, self.photo_options) if is_photo_layout(root) else None
        )
        self.attributes = (
            self.photo_layout.names if self.photo_layout is not None else resolve_attributes(attributes)
        )
        self.save_hyperparameters()
        self.save_hyperparameters({**self.hparams, "attributes": self.attributes})
        self.subsets: dict[str, int] = dict(subsets or {})
        for split, value in self.subsets.items():
            if split not in SPLITS or value is None or value < 1:
                raise DataError(
                    f"data.subsets.{split} is {value}: give a positive count for train, val or test "
                    "(a split left out is used whole)"
                )
        check_crop_size(crop_size)
        self.root = Path(root)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.datasets: dict[str, ImageAttributes] = {}
        self.layout: CelebALayout | None = None
        self._identities: dict[str, int] | None = None
        self.caches: dict[str, Any] = {}  # split -> smile.data.cache.DecodedCache, opened on first use
        self.table = None  # the AttributeTable, all 40 columns: for reports on other attributes
        self.split_rows: dict[str, np.ndarray] = {}  # rows of ``table`` in each split, in loader order
        self._train_sampler: EpochSampler | None = None
        self._resume_position: Position | None = None
        self.augment = BatchAugment(**augment) if augment else None
        self.source: FileSource | CacheSource = CacheSource(self) if cache else FileSource(self)

    @property
    def num_attributes(self) -> int:
        return len(self.attributes)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset when asked to and absent, and build the decoded caches the
        run needs (runs on one process per node; the others find the caches built)."""
        self.prepare_splits(splits_for(self.trainer))

    def prepare_splits(self, splits: Sequence[str]) -> None:
        """:meth:`prepare_data` for the given splits only: the evaluation tools, which run without a
        trainer, read val or test, and decoding the training split (2.4 GB for full CelebA) is not theirs
        to pay. A split left out is still decoded when it is first read."""
        if self.hparams.synthetic_images:
            from smile.data.synthetic import generate_dataset, is_complete

            if not is_complete(self.root):
                generate_dataset(self.root, self.hparams.synthetic_images)
        self.source.prepare(splits)

    def setup(self, stage: str | None = None) -> None:
        if self.layout is None:
            self._load_splits()
        stage = getattr(stage, "value", stage)
        for split in STAGE_SPLITS.get(stage, ()):
            if split not in self.datasets:
                raise DataError(
                    f"The {split} split of {self.layout.partition} is empty, and {stage} needs it: that "
                    f"file marks no image {SPLITS[split]} ({split})"
                )

    def face_options(self) -> FaceOptions:
        """How your own photos are aligned (``photos``'s detector, minimum face and no-face rule)."""
        keys = ("detector", "min_face", "no_face")
        return FaceOptions(**{key: self.photo_options[key] for key in keys if key in self.photo_options})

    def _load_splits(self) -> None:
        """Read the annotations and build a dataset for each split that has images (a split may be empty:
        a test-only folder serves test and predict; each command checks the splits it needs)."""
        if self.photo_layout is not None:
            splits = self._load_photos(self.photo_layout)
        else:
            self.layout = detect_layout(self.root)
            self.table = read_attributes(self.layout.attributes)
            splits = split_files(self.table, read_partition(self.layout.partition), self.layout.partition)
        table = self.table
        labels = table.columns(self.attributes)
        for split, rows in splits.items():
            rows = rows[: self.subsets[split]] if split in self.subsets else rows
            if len(rows) == 0:
                continue
            files = [table.files[i] for i in rows]
            self.split_rows[split] = rows
            transform = (
                train_transform(self.hparams.image_size, self.hparams.crop_size)
                if split == "train"
                else eval_transform(self.hparams.image_size, self.hparams.crop_size)
            )
            self.datasets[split] = ImageAttributes(self.layout.images, files, labels[rows], transform)

    def _load_photos(self, photos: PhotoLayout) -> dict[str, np.ndarray]:
        """Your own photos: split (the layout's, or a seeded one), aligned once into the cache folder,
        and served from there like CelebA's aligned images."""
        options = self.photo_options
        codes = assign_splits(photos, options.get("split", DEFAULT_SPLIT), options.get("seed", 0))
        aligned = align_photos(
            photos, resolve_cache_dir(self.root, self.hparams.cache_dir), self.face_options()
        )
        self.table = AttributeTable(
            files=aligned.files, labels=photos.labels[aligned.rows], names=photos.names
        )
        self.layout = CelebALayout(
            name=photos.kind, images=aligned.images, attributes=photos.source, partition=photos.source
        )
        if photos.groups is not None:
            people = {group: number for number, group in enumerate(sorted(set(photos.groups)))}
            self._identities = {
                name: people[photos.groups[row]] for name, row in zip(aligned.files, aligned.rows)
            }
        kept = codes[aligned.rows]
        return {split: np.flatnonzero(kept == code) for split, code in SPLITS.items()}

    def split_cache(self, split: str):
        """The decoded cache of ``split`` (a :class:`smile.data.cache.DecodedCache`), built if need be."""
        if split not in self.caches:
            dataset = self.datasets[split]
            self.caches[split] = open_cache(
                split,
                dataset.image_dir,
                dataset.files,
                dataset.labels.numpy(),
                resolve_cache_dir(self.root, self.hparams.cache_dir),
                image_size=self.hparams.image_size,
                crop_size=self.hparams.crop_size,
            )
        return self.caches[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        """Batches of ``split``; the order (and, for training, the augmentation) depends only on the
        seed, the epoch and the sample (see :mod:`smile.data.sampling`). Under DDP each process gets its
        share; evaluation shares are not padded, so every sample is evaluated exactly once. The batches
        come from :attr:`source` in that order."""
        length = len(self.datasets[split])
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if shuffle:
            position = self._resume_position or Position(trainer.current_epoch if trainer is not None else 0)
            self._resume_position = None
            sampler = EpochSampler(
                length,
                shuffle=True,
                seed=run_seed(),
                num_replicas=world,
                rank=rank,
                with_epoch=self.source.seeded_items,
                epoch=position.epoch,
                skip=position.batches * self.hparams.batch_size,
            )
            self._train_sampler = sampler
        else:
            sampler = EpochSampler(length, shuffle=False, num_replicas=world, rank=rank, pad=False)
        return self.source.loader(split, sampler, shuffle)

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: where training stands in the data, so a resumed epoch goes on from there,
        and whether the faces it trains on are drawn ones (``smile synthetic``), so that the model can say
        it knows no others."""
        from smile.data.synthetic import is_synthetic

        position = train_position(self.trainer, self._train_sampler)
        state: dict[str, Any] = {"train_position": position.as_dict()} if position else {}
        if self.layout is not None and is_synthetic(self.layout.attributes.parent):
            state["synthetic"] = True
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_position = resume_position(state_dict.get("train_position"))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: crop (and flip, in training) cached uint8 images, then the further training
        augmentation (``augment``). Training draws come from a generator seeded from the run's seed, the
        epoch, the batch and the process, so a resumed run augments each batch as the first run did."""
        trainer = self.trainer
        training = trainer is not None and trainer.training
        generator = self._batch_generator() if training else None
        batch = self.source.on_device(batch, training, generator)
        if self.augment is None or not training:
            return batch
        images, *rest = batch
        return (self.augment(images, generator), *rest)

    def _batch_generator(self) -> torch.Generator:
        """A CPU generator for the training batch being transferred (batch ``i`` of the epoch: Lightning
        counts it as ready after this hook, and restores the count when it resumes mid-epoch)."""
        batch = int(self.trainer.fit_loop.epoch_loop.batch_progress.current.ready)
        return torch.Generator().manual_seed(batch_seed(self.trainer, batch, _AUGMENT_STREAM))

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

    def positive_rates(self, split: str, names: Sequence[str]) -> np.ndarray:
        """The share of ``split``'s images labelled positive, per attribute of ``names`` (after
        ``setup``; ``subsets`` count as chosen)."""
        return self.split_annotations(split, names)[1].mean(axis=0)

    def split_identities(self, split: str) -> np.ndarray | None:
        """The person of each image of ``split`` in loader order (-1 where unlisted), from
        ``identity_CelebA.txt``; ``None`` when the copy has no identity file."""
        if self.layout is None or self.table is None or split not in self.split_rows:
            raise RuntimeError("call setup() first")
        if self.layout.identity is None and self._identities is None:
            return None
        if self._identities is None:  # read on first use: only the report and benchmarks need it
            self._identities = read_identities(self.layout.identity)
        identities = self._identities
        return np.array(
            [identities.get(self.table.files[i], -1) for i in self.split_rows[split]], dtype=np.int64
        )

    def split_annotations(self, split: str, names: Sequence[str]) -> tuple[list[Path], np.ndarray]:
        """The image files of ``split`` in loader order, and their 0/1 labels for ``names`` (any of the
        40 attributes, whether the model predicts them or not)."""
        if self.table is None or split not in self.split_rows:
            raise RuntimeError("call setup() first")
        rows = self.split_rows[split]
        files = [self.layout.images / self.table.files[i] for i in rows]
        names = list(names) if self.photo_layout is not None else resolve_attributes(list(names))
        return files, self.table.columns(names)[rows]
