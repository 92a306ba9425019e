"""A map-style dataset of image files with multi-attribute 0/1 labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from smile.errors import DataError


def load_rgb(path: Path) -> Image.Image:
    """Open an image as RGB, or raise a :class:`DataError` that names the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError as err:
        raise DataError(f"{path}: image listed in the annotations is missing") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from err


class ImageAttributes(Dataset):
    """``(image, labels)`` pairs: ``labels`` is a float tensor of 0/1, one per attribute."""

    def __init__(
        self,
        image_dir: Path,
        files: Sequence[str],
        labels: np.ndarray,
        transform: Callable[[Image.Image], torch.Tensor],
    ) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} label rows")
        self.image_dir = Path(image_dir)
        self.files = list(files)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = load_rgb(self.image_dir / self.files[index])
        return self.transform(image), self.labels[index]
