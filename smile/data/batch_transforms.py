"""Transforms of whole batches on the training device (host-side, per-image PIL transforms are in
:mod:`smile.data.pil_transforms`): the original crop-and-flip of uint8 batches from the decoded cache,
and :class:`BatchAugment`, the optional extra augmentation of float batches.

A cached image is ``image_size`` wide and ``geometry.height`` tall (see :mod:`smile.data.cache`);
the network's input is a square window of it:

- training: the window starts at a random row in ``0..max_offset`` (the original ``RandomCrop(178)``,
  which on a 178x218 face can only move vertically), and is flipped left-right with probability 1/2
  (``RandomHorizontalFlip``); offsets and flips are drawn per image on the CPU, from the generator
  given (the data module seeds one per training batch) or torch's global one;
- evaluation: the window starts at ``eval_offset`` (``CenterCrop(178)``).

Both return float32 in [0, 1] (``ToTensor``), converted after the transfer, so only uint8 crosses
the bus. :class:`BatchAugment` then adds what the original recipe lacks (``data.augment``): colour
jitter, a small random affine transform and random erasing, each drawn per image.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


def _uniform(n: int, low: float, high: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return (torch.rand(n, generator=generator) * (high - low) + low).to(like.device, like.dtype)


class BatchAugment(nn.Module):
    """Per-image random colour jitter, affine transform and erasing of a float batch in [0, 1].

    Args:
        brightness: scale the image by a factor in ``[1 - b, 1 + b]``.
        contrast: move pixels towards (or away from) the image's mean grey by a factor in ``[1 - c, 1 + c]``.
        saturation: move pixels towards (or away from) their own grey by a factor in ``[1 - s, 1 + s]``.
        hue: not supported (0); listed so that configs can say so.
        rotate: rotation in degrees, uniform in ``[-rotate, rotate]``.
        scale: zoom factor uniform in ``[1 - scale, 1 + scale]``.
        translate: shift, as a fraction of the side, uniform in ``[-translate, translate]`` per axis.
        erase: probability of erasing one random rectangle (2%-20% of the image, aspect 0.3-3.3)
            with random noise, as torchvision's RandomErasing(value="random").
        p: probability that an image gets the colour and affine changes at all.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        rotate: float = 0.0,
        scale: float = 0.0,
        translate: float = 0.0,
        erase: float = 0.0,
        p: float = 1.0,
    ) -> None:
        super().__init__()
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.rotate, self.scale, self.translate = rotate, scale, translate
        self.erase, self.p = erase, p

    def extra_repr(self) -> str:
        names = ("brightness", "contrast", "saturation", "rotate", "scale", "translate", "erase", "p")
        return ", ".join(f"{name}={getattr(self, name)}" for name in names)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n = x.shape[0]
        if n == 0:
            return x
        active = (torch.rand(n, generator=generator) < self.p).to(x.device, x.dtype)[:, None, None, None]
        if self.brightness or self.contrast or self.saturation:
            x = self._colour(x, active, generator)
        if self.rotate or self.scale or self.translate:
            x = self._affine(x, active, generator)
        if self.erase:
            x = self._erase(x, generator)
        return x

    def _colour(self, x: Tensor, active: Tensor, generator: torch.Generator | None) -> Tensor:
        n = x.shape[0]

        def factor(strength: float) -> Tensor:
            f = _uniform(n, 1 - strength, 1 + strength, x, generator)[:, None, None, None]
            return 1 + (f - 1) * active

        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)[None, :, None, None]
        if self.brightness:
            x = (x * factor(self.brightness)).clamp(0, 1)
        if self.contrast:
            mean = (x * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
            x = ((x - mean) * factor(self.contrast) + mean).clamp(0, 1)
        if self.saturation:
            grey = (x * weights).sum(1, keepdim=True)
            x = ((x - grey) * factor(self.saturation) + grey).clamp(0, 1)
        return x

    def _affine(self, x: Tensor, active: Tensor, generator: torch.Generator | None) -> Tensor:
        n = x.shape[0]
        on = active[:, 0, 0, 0]
        angle = _uniform(n, -self.rotate, self.rotate, x, generator) * (math.pi / 180) * on
        zoom = 1 + _uniform(n, -self.scale, self.scale, x, generator) * on
        shift = torch.stack(
            [_uniform(n, -self.translate, self.translate, x, generator) * 2 * on for _ in range(2)], 1
        )
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _erase(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        n, _, height, width = x.shape
        area = _uniform(n, 0.02, 0.2, x, generator) * height * width
        aspect = torch.exp(_uniform(n, math.log(0.3), math.log(1 / 0.3), x, generator))
        h = (area * aspect).sqrt().round().clamp(1, height)
        w = (area / aspect).sqrt().round().clamp(1, width)
        top = (torch.rand(n, generator=generator).to(x.device, x.dtype) * (height - h + 1)).floor()
        left = (torch.rand(n, generator=generator).to(x.device, x.dtype) * (width - w + 1)).floor()
        erase = (torch.rand(n, generator=generator) < self.erase).to(x.device)
        rows = torch.arange(height, device=x.device, dtype=x.dtype)[None, :, None]
        cols = torch.arange(width, device=x.device, dtype=x.dtype)[None, None, :]
        inside = (
            (rows >= top[:, None, None])
            & (rows < (top + h)[:, None, None])
            & (cols >= left[:, None, None])
            & (cols < (left + w)[:, None, None])
            & erase[:, None, None]
        )[:, None]
        if generator is not None and x.device != generator.device:  # draw the noise where the batch is
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            generator = torch.Generator(x.device).manual_seed(seed)
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return torch.where(inside, noise, x)
