"""The original notebook's image transforms: a 178x178 crop of the 178x218 aligned face, resized.

``crop_size`` (``data.crop_size``) narrows the window around the same centre, for networks trained on
tighter face crops; the training crops keep the original's 40 rows of vertical play. The evaluation
window (:class:`CentreWindow`) is plain PIL, so that predicting on a photo does not import torchvision
(1.4 s of start-up, for its detection operators); it cuts and resizes exactly as torchvision's
``CenterCrop`` and ``Resize`` do on a PIL image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from smile.data.celeba import ALIGNED_SIZE, CROP_PLAY, CROP_SIZE, IMAGE_SIZE

if TYPE_CHECKING:
    from torch import nn
    from torchvision import transforms


class CentreWindow:
    """The central ``crop_size`` square of an image (where torchvision's ``CenterCrop`` puts it: top and
    left at ``round((side - crop_size) / 2)``), resized to ``image_size`` with PIL's bilinear filter (what
    torchvision's ``Resize`` does to a PIL image)."""

    def __init__(self, image_size: int = IMAGE_SIZE, crop_size: int = CROP_SIZE) -> None:
        self.image_size, self.crop_size = image_size, crop_size

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        left, top = round((width - self.crop_size) / 2), round((height - self.crop_size) / 2)
        window = image.crop((left, top, left + self.crop_size, top + self.crop_size))
        return window.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)

    def __repr__(self) -> str:
        return f"CentreWindow(image_size={self.image_size}, crop_size={self.crop_size})"


def train_transform(image_size: int = IMAGE_SIZE, crop_size: int = CROP_SIZE) -> transforms.Compose:
    """RandomCrop(178), RandomHorizontalFlip, Resize(image_size), ToTensor (values in [0, 1]); a tighter
    ``crop_size`` c first takes the central c columns and c + 40 rows."""
    from torchvision import transforms

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


def eval_transform(image_size: int = IMAGE_SIZE, crop_size: int = CROP_SIZE) -> transforms.Compose:
    """The central ``crop_size`` window resized to ``image_size`` (:class:`CentreWindow`), ToTensor
    (values in [0, 1])."""
    from torchvision import transforms

    return transforms.Compose([CentreWindow(image_size, crop_size), transforms.ToTensor()])


def split_transform(transform: transforms.Compose) -> tuple[list[Any], list[nn.Module]]:
    """The steps of ``transform`` before ``ToTensor`` (done on the PIL image) and after it (tensor
    modules: export builds them into the graph)."""
    from torch import nn
    from torchvision import transforms

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
