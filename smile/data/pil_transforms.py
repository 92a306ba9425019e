"""The original notebook's image transforms: a 178x178 crop of the 178x218 aligned face, resized."""

from __future__ import annotations

from torchvision import transforms

from smile.data.celeba import CROP_SIZE


def train_transform(image_size: int = 64) -> transforms.Compose:
    """RandomCrop(178), RandomHorizontalFlip, Resize(image_size), ToTensor (values in [0, 1])."""
    return transforms.Compose(
        [
            transforms.RandomCrop((CROP_SIZE, CROP_SIZE)),
            transforms.RandomHorizontalFlip(),
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
        ]
    )


def eval_transform(image_size: int = 64) -> transforms.Compose:
    """CenterCrop(178), Resize(image_size), ToTensor (values in [0, 1])."""
    return transforms.Compose(
        [
            transforms.CenterCrop((CROP_SIZE, CROP_SIZE)),
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
        ]
    )
