"""The original notebook's image transforms: a 178x178 crop of the 178x218 aligned face, resized.

``crop_size`` (``data.crop_size``) narrows the window around the same centre, for networks trained on
tighter face crops; the training crops keep the original's 40 rows of vertical play.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision import transforms

from smile.data.celeba import ALIGNED_SIZE, CROP_PLAY, CROP_SIZE


def train_transform(image_size: int = 64, crop_size: int = CROP_SIZE) -> transforms.Compose:
    """RandomCrop(178), RandomHorizontalFlip, Resize(image_size), ToTensor (values in [0, 1]); a tighter
    ``crop_size`` c first takes the central c columns and c + 40 rows."""
    steps: list = []
    if crop_size != CROP_SIZE:
        steps.append(transforms.CenterCrop((min(crop_size + CROP_PLAY, ALIGNED_SIZE[1]), crop_size)))
    return transforms.Compose(
        [
            *steps,
            transforms.RandomCrop((crop_size, crop_size)),
            transforms.RandomHorizontalFlip(),
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
        ]
    )


def eval_transform(image_size: int = 64, crop_size: int = CROP_SIZE) -> transforms.Compose:
    """CenterCrop(crop_size: 178), Resize(image_size), ToTensor (values in [0, 1])."""
    return transforms.Compose(
        [
            transforms.CenterCrop((crop_size, crop_size)),
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
        ]
    )


def split_transform(transform: transforms.Compose) -> tuple[list[Any], list[nn.Module]]:
    """The steps of ``transform`` before ``ToTensor`` (done on the PIL image) and after it (tensor
    modules: the photo pipeline runs them on the batch, export builds them into the graph)."""
    steps = list(transform.transforms)
    cut = next((i for i, step in enumerate(steps) if isinstance(step, transforms.ToTensor)), None)
    if cut is None:
        raise ValueError(f"the evaluation transform has no ToTensor step: {transform}")
    after = steps[cut + 1 :]
    for step in after:
        if not isinstance(step, nn.Module):
            raise ValueError(
                f"the evaluation transform's step {step!r} after ToTensor is not a tensor module"
            )
    return steps[:cut], after
