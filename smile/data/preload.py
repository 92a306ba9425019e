"""Decode a split once into memory as small uint8 tensors (``data.preload: true``).

Each image is scaled so that the original recipe's 178-pixel crop becomes ``image_size`` pixels
(178x218 -> 64x78 for the default 64) and kept whole, as uint8; the square window is cut (randomly
for training, in the centre for evaluation) on the batch after it reaches the device, by
:func:`smile.data.augment.take_windows`. Decoding once instead of every epoch frees the cores for the
network: 5,000 sample images take about 6,000 x 64 x 78 x 3 bytes = 90 MB and a few seconds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from smile.data.dataset import load_rgb
from smile.data.transforms import CROP_SIZE
from smile.errors import DataError


def preload_size(width: int, height: int, image_size: int) -> tuple[int, int]:
    """``(width, height)`` of an image scaled so that ``CROP_SIZE`` pixels become ``image_size``."""
    scale = image_size / CROP_SIZE
    return max(image_size, round(width * scale)), max(image_size, round(height * scale))


def _load(path: Path, image_size: int) -> np.ndarray:
    image = load_rgb(path)
    size = preload_size(*image.size, image_size)
    return np.asarray(image.resize(size, Image.BILINEAR, reducing_gap=None))


def load_images(
    image_dir: Path, files: Sequence[str], image_size: int, threads: int | None = None
) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 tensor of the files, scaled by ``image_size / 178`` (PIL bilinear, antialiased)."""
    threads = threads or min(4, os.cpu_count() or 1)
    first = _load(Path(image_dir) / files[0], image_size)
    out = np.empty((len(files), *first.shape), dtype=np.uint8)  # filled in place: no second copy

    def fill(index: int) -> None:
        array = _load(Path(image_dir) / files[index], image_size) if index else first
        if array.shape != first.shape:
            raise DataError(
                f"{files[index]}: {array.shape[1]}x{array.shape[0]} after scaling, unlike {files[0]}'s "
                f"{first.shape[1]}x{first.shape[0]}; data.preload needs images of one size"
            )
        out[index] = array

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, range(len(files))))
    return torch.from_numpy(out).permute(0, 3, 1, 2)


class PreloadedImages(Dataset):
    """``(uint8 image, labels)`` pairs held in memory; same ``image_dir``/``files`` as ImageAttributes."""

    def __init__(self, image_dir: Path, files: Sequence[str], labels: np.ndarray, image_size: int) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} label rows")
        self.image_dir = Path(image_dir)
        self.files = list(files)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
        self.images = load_images(self.image_dir, self.files, image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        index = torch.as_tensor(indices)
        return [(self.images[index], self.labels[index])]


def collate_preloaded(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch that :meth:`PreloadedImages.__getitems__` built already (one item), or a stack of items."""
    if len(items) == 1 and items[0][0].dim() == 4:
        return items[0]
    return torch.stack([i for i, _ in items]), torch.stack([t for _, t in items])
