"""The original transforms, applied to whole uint8 batches from the decoded cache on the training device.

A cached image is ``image_size`` wide and ``geometry.height`` tall (see :mod:`smile.data.cache`);
the network's input is a square window of it:

- training: the window starts at a random row in ``0..max_offset`` (the original ``RandomCrop(178)``,
  which on a 178x218 face can only move vertically), and is flipped left-right with probability 1/2
  (``RandomHorizontalFlip``); offsets and flips are drawn per image on the CPU, from the generator
  given (the data module seeds one per training batch) or torch's global one;
- evaluation: the window starts at ``eval_offset`` (``CenterCrop(178)``).

Both return float32 in [0, 1] (``ToTensor``), converted after the transfer, so only uint8 crosses
the bus.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from smile.data.cache import CacheGeometry


def to_unit_float(images: Tensor) -> Tensor:
    """uint8 0..255 -> float32 0..1, like ``ToTensor`` (the same float32 division, so equal bits)."""
    if images.device.type == "cpu":  # one NumPy pass, single-threaded (see random_crop_flip)
        return torch.from_numpy(np.divide(images.numpy(), np.float32(255.0), dtype=np.float32))
    return torch.div(images, 255.0)


def eval_crop(images: Tensor, geometry: CacheGeometry) -> Tensor:
    """The centre window of a uint8 ``(B, 3, height, size)`` batch, as float in [0, 1]."""
    start = geometry.eval_offset
    return to_unit_float(images[:, :, start : start + geometry.image_size])


def random_crop_flip(
    images: Tensor, geometry: CacheGeometry, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Training windows of a uint8 ``(B, 3, height, size)`` batch: ``(crops, offsets, flipped)``.

    ``crops`` is float in [0, 1], ``(B, 3, size, size)``; ``offsets`` the window's first rows and
    ``flipped`` whether each image was mirrored. On a GPU the windows are gathered in one kernel; on
    the CPU they are copied image by image with NumPy (single-threaded: on a busy CPU, small
    multi-threaded tensor operations wait for each other's threads far longer than they compute).
    """
    batch, channels, height, width = images.shape
    size = geometry.image_size
    if height != geometry.height or width != size:
        raise ValueError(f"expected cached images of {size}x{geometry.height}, got {width}x{height}")
    device = images.device
    offsets = torch.randint(0, geometry.max_offset + 1, (batch,), generator=generator)
    flipped = torch.rand(batch, generator=generator) < 0.5
    if device.type == "cpu":
        source = images.numpy()
        crops = np.empty((batch, channels, size, width), dtype=np.float32)
        for i, (offset, flip) in enumerate(zip(offsets.tolist(), flipped.tolist())):
            window = source[i, :, offset : offset + size]
            np.divide(window[:, :, ::-1] if flip else window, np.float32(255.0), out=crops[i])
        return torch.from_numpy(crops), offsets, flipped
    offsets, flipped = offsets.to(device, non_blocking=True), flipped.to(device, non_blocking=True)
    rows = offsets[:, None] + torch.arange(size, device=device)  # (B, size)
    index = rows[:, None, :, None].expand(batch, channels, size, width)
    crops = torch.gather(images, 2, index)
    crops = torch.where(flipped[:, None, None, None], crops.flip(3), crops)
    return to_unit_float(crops), offsets, flipped


def transform_cached_batch(
    batch, geometry: CacheGeometry, training: bool, generator: torch.Generator | None = None
):
    """``(images, labels, ...)`` with uint8 cached images -> the same with the network's float input;
    anything else (already float images, e.g. from the JPEG pipeline) passes unchanged. ``generator``
    (CPU) draws the training windows and flips."""
    if not isinstance(batch, (tuple, list)) or not batch:
        return batch
    images = batch[0]
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        return batch
    images = random_crop_flip(images, geometry, generator)[0] if training else eval_crop(images, geometry)
    return type(batch)([images, *batch[1:]]) if isinstance(batch, list) else (images, *batch[1:])
