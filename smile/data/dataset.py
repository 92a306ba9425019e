"""A map-style dataset of image files with multi-attribute 0/1 labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from smile.data.celeba import ALIGNED_SIZE
from smile.errors import DataError

#: Image modes converted to RGB when loaded (grayscale replicated, alpha dropped, palette expanded).
CONVERTIBLE_MODES = {"RGB", "L", "LA", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "1"}
ASPECT_TOLERANCE = 0.02


def conform(image: Image.Image, path: Path) -> Image.Image:
    """``image`` as a 178x218 RGB image, or a :class:`DataError` naming ``path``.

    Converted: grayscale, RGBA, palette and CMYK images (to RGB), and images of the aligned faces' shape
    at another scale, e.g. a half-size 89x109 copy (resized to 178x218). Rejected: other sizes (the
    178x178 crop of a differently framed picture would cut out a different part of the face, silently)
    and modes whose conversion to 8-bit RGB would clip values (16-bit, 32-bit, float).
    """
    if image.mode not in CONVERTIBLE_MODES:
        raise DataError(
            f"{path}: unsupported image mode {image.mode} (expected an 8-bit RGB or grayscale JPEG as in "
            "CelebA's img_align_celeba)"
        )
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != ALIGNED_SIZE:
        width, height = image.size
        expected = ALIGNED_SIZE[0] / ALIGNED_SIZE[1]
        if width < 1 or height < 1 or abs(width / height - expected) > ASPECT_TOLERANCE * expected:
            raise DataError(
                f"{path}: image is {width}x{height}; expected CelebA's aligned {ALIGNED_SIZE[0]}x{ALIGNED_SIZE[1]} "
                "(or that shape at another scale). Is this the 'img_align_celeba' folder, not 'img_celeba' "
                "(in-the-wild) or CelebA-HQ?"
            )
        image = image.resize(ALIGNED_SIZE, Image.Resampling.BILINEAR)
    return image


def load_rgb(path: Path) -> Image.Image:
    """Open an image as 178x218 RGB (see :func:`conform`), or raise a :class:`DataError` that names the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return conform(image, path)
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
