"""Data order and augmentation as pure functions of (seed, epoch, sample index), for exact resumes.

Lightning restores the model, the optimizer and the loop counters from a checkpoint, but not where the
data loader was inside an epoch's shuffled order, nor the random streams that augmentation used. Here:

- :class:`EpochSampler` draws each epoch's permutation from ``seed + epoch`` (as ``DistributedSampler``
  does), shards it over the ranks, and can skip the samples a resumed run has already trained on;
- :class:`SeededItems` makes every random draw made while loading sample ``index`` in ``epoch``
  (random crop, flip, whatever the dataset's transform does with torch's, Python's or NumPy's global
  generators) depend only on ``(seed, epoch, index)``, whichever process or worker loads it and
  whatever was loaded before;
- :func:`train_position` and :func:`resume_position` say where in the data a checkpoint was taken.

For evaluation :class:`EpochSampler` neither shuffles nor pads: with several processes each sample of
the split goes to exactly one of them (``DistributedSampler`` would repeat samples to even the shards).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch.utils.data import Dataset, DistributedSampler


def run_seed() -> int:
    """The run's seed: the one ``seed_everything`` set (``PL_GLOBAL_SEED``), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def mix_seed(*values: int) -> int:
    """A 63-bit seed that depends on every one of ``values`` (non-negative ints), stable across runs."""
    entropy = [int(v) & 0xFFFFFFFFFFFFFFFF for v in values]
    low, high = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return (int(high) << 31) ^ int(low)


def batch_seed(trainer: Any, batch_idx: int, *stream: int) -> int:
    """The seed of training batch ``batch_idx`` of the trainer's current epoch in this process: from the
    run's seed, the epoch, the batch and the rank (and ``stream``, to keep separate uses apart), so a
    resumed run draws what the first run drew for the same batch."""
    return mix_seed(run_seed(), trainer.current_epoch, batch_idx, trainer.global_rank, *stream)


def seed_everything_from(seed: int) -> None:
    """Seed torch's (all devices), Python's and NumPy's global generators from one integer."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)


@dataclass(frozen=True)
class Position:
    """Where training stands in the data: ``batches`` batches of ``epoch`` are done."""

    epoch: int
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}


class EpochSampler(DistributedSampler):
    """Indices of one rank's share of a dataset, in an order that depends on ``(seed, epoch)`` only.

    Args:
        length: the dataset's length.
        shuffle: permute each epoch (training); if false, the dataset's order (evaluation).
        seed: the run's seed.
        num_replicas, rank: the process's share (1 and 0 without DDP).
        pad: repeat samples so every rank gets the same count (needed for training under DDP, where
            every rank must take the same number of steps); without it each sample goes to exactly one
            rank and counts may differ by one (evaluation).
        with_epoch: yield ``(epoch, index)`` pairs for :class:`SeededItems` instead of bare indices.
        epoch: the first epoch to iterate.
        skip: samples of this rank's share to leave out of the first iteration (a resumed epoch's
            already-trained part); later iterations start at the beginning.
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
        with_epoch: bool = False,
        epoch: int = 0,
        skip: int = 0,
    ) -> None:
        super().__init__(
            range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.length = length
        self.pad = pad
        self.with_epoch = with_epoch
        self.epoch = epoch
        self.skip = skip
        #: The epoch the current (or last) iteration was drawn for.
        self.iter_epoch = epoch
        if not pad:
            self.num_samples = len(range(rank, length, num_replicas))
            self.total_size = length

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``, before any skipping."""
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + epoch)
            indices = torch.randperm(self.length, generator=generator).tolist()
        else:
            indices = list(range(self.length))
        if self.pad and len(indices) < self.total_size:
            padding = self.total_size - len(indices)
            indices += (indices * math.ceil(padding / max(1, len(indices))))[:padding]
        return indices[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[Any]:
        epoch, skip = self.epoch, self.skip
        self.iter_epoch, self.skip = epoch, 0
        indices = self.order(epoch)[skip:]
        if self.with_epoch:
            return iter([(epoch, index) for index in indices])
        return iter(indices)

    def __len__(self) -> int:
        # The full share, also when skipping: Lightning counts a resumed epoch's batches from its start.
        return self.num_samples


class SeededItems(Dataset):
    """Wrap a dataset so that item ``(epoch, index)`` is drawn with generators seeded from
    ``(seed, epoch, index)``; a bare ``index`` is passed through unseeded.

    Torch's, Python's and NumPy's global generators are seeded for the duration of the item and
    restored afterwards, so the wrapped dataset's own code (decoding, caching, transforms) needs no
    change. Other attributes are those of the wrapped dataset.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "seed"):  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        epoch, index = key
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                seed_everything_from(mix_seed(self.seed, epoch, index))
                return self.dataset[index]
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def train_position(trainer: Any, sampler: EpochSampler | None) -> Position | None:
    """Where the fit in progress stands in the training data, for a checkpoint taken now.

    ``None`` outside fitting. A finished epoch is reported as the start of the next one.
    """
    if trainer is None or sampler is None or trainer.state.fn != TrainerFn.FITTING:
        return None
    done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
    total = trainer.num_training_batches
    if done >= total:
        return Position(sampler.iter_epoch + 1, 0)
    return Position(sampler.iter_epoch, done)


def resume_position(state: dict[str, Any] | None) -> Position | None:
    """The :class:`Position` saved by :func:`train_position` in a checkpoint, if any."""
    if not state or "epoch" not in state:
        return None
    return Position(int(state["epoch"]), int(state.get("batches", 0)))
