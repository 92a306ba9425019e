"""Augmentation on batches of image tensors, on whatever device the batch is on.

Two layers, both plain torch so they run on a GPU batch as well as a CPU one:

- :func:`take_windows` cuts the network's square input out of a batch of pre-resized images (the
  decoded cache, or any uint8 batch): a random window and a random horizontal flip for
  training, the centre window for evaluation. On 64x78 images this is exactly the original recipe's
  RandomCrop(178x178) + RandomHorizontalFlip + Resize(64) on the 178x218 face, up to resampling.
- :class:`BatchAugment` adds what the original recipe lacks, on float batches in [0, 1]: colour
  jitter, a small random affine transform, and random erasing, each drawn per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def take_windows(images: Tensor, size: int, train: bool, generator: torch.Generator | None = None) -> Tensor:
    """``(N, C, size, size)`` float windows in [0, 1] from ``(N, C, H, W)`` images (uint8 or float).

    Training: a uniformly random window per image and a horizontal flip with probability 1/2.
    Evaluation: the centre window.
    """
    n, _, height, width = images.shape
    if height < size or width < size:
        raise ValueError(f"images of {height}x{width} are smaller than the {size}x{size} window")
    if train:
        device = images.device
        top = torch.randint(0, height - size + 1, (n,), device="cpu", generator=generator).to(device)
        left = torch.randint(0, width - size + 1, (n,), device="cpu", generator=generator).to(device)
        flip = (torch.rand(n, generator=generator) < 0.5).to(device)
        steps = torch.arange(size, device=device)
        rows = (top[:, None] + steps)[:, None, :, None]  # (N, 1, size, 1)
        cols = left[:, None] + steps  # (N, size)
        cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # (N, 1, 1, size)
        batch = torch.arange(n, device=device)[:, None, None, None]
        channels = torch.arange(images.shape[1], device=device)[None, :, None, None]
        out = images[batch, channels, rows, cols]
    else:
        top, left = (height - size) // 2, (width - size) // 2
        out = images[:, :, top : top + size, left : left + size]
    return out.float().div_(255) if out.dtype == torch.uint8 else out.float()


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
