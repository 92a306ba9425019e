"""CelebA's constants, in one place: the 40 attribute names (and choosing among them by name), the
geometry of the aligned images, and the image file suffixes."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from smile.errors import SmileError
from smile.faces.geometry import ALIGNED_SIZE  # the frame faces are aligned to: 178x218

#: The 40 attributes in the column order of ``list_attr_celeba.txt``.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)  # fmt: skip

#: The network's input side by default (``data.image_size``): the notebook's 64x64 crops.
IMAGE_SIZE = 64
#: The side of the square window the original transforms crop from an aligned image (its whole width):
#: the default and largest ``data.crop_size``.
CROP_SIZE = 178
#: The smallest ``data.crop_size``: a window that still holds both eyes and the mouth of an aligned face.
MIN_CROP_SIZE = 96
#: Rows of vertical play of the training crops: the original RandomCrop(178) on 218 rows (0..40).
CROP_PLAY = ALIGNED_SIZE[1] - CROP_SIZE


def centre_window(crop_size: int) -> tuple[int, int]:
    """``(left, top)`` of the central ``crop_size`` square of an aligned face, where torchvision's
    ``CenterCrop`` puts it (``int(round((178 - c) / 2))``, ``int(round((218 - c) / 2))``: 0, 20 for 178)."""
    return round((ALIGNED_SIZE[0] - crop_size) / 2), round((ALIGNED_SIZE[1] - crop_size) / 2)


#: File name endings of CelebA images in any layout (the official JPEGs, and PNG copies).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


class UnknownAttributeError(SmileError, ValueError):
    """An attribute name that is not one of CelebA's 40."""


def resolve_attributes(names: str | Sequence[str]) -> list[str]:
    """Validate attribute names; ``"all"`` (alone or as the only list item) means all 40.

    Raises :class:`UnknownAttributeError` naming the closest valid names for a typo.
    """
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if len(names) == 1 and names[0].lower() == "all":
        return list(CELEBA_ATTRIBUTES)
    if not names:
        raise UnknownAttributeError(
            "data.attributes is empty: give at least one CelebA attribute name, or 'all'"
        )
    lookup = {name.lower(): name for name in CELEBA_ATTRIBUTES}
    resolved = []
    for name in names:
        canonical = lookup.get(str(name).lower())
        if canonical is None:
            close = difflib.get_close_matches(str(name), CELEBA_ATTRIBUTES, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownAttributeError(
                f"Unknown CelebA attribute {name!r}.{hint} Valid names: {', '.join(CELEBA_ATTRIBUTES)}, or 'all'."
            )
        if canonical in resolved:
            raise UnknownAttributeError(f"Attribute {canonical!r} is listed twice in data.attributes")
        resolved.append(canonical)
    return resolved
