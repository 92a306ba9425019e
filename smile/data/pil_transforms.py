"""The original notebook's image transforms: a 178x178 crop of the 178x218 aligned face, resized.

``crop_size`` (``data.crop_size``) narrows the window around the same centre, for networks trained on
tighter face crops; the training crops keep the original's 40 rows of vertical play.
"""

from __future__ import annotations

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
