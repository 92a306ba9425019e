"""Test-time views: a network's logits averaged over the image, vertical shifts of it and their mirror
images (``model.tta``, ``model.tta_shifts``), in validation, test, predict and export; and the network
as it predicts, images in and probabilities out (:class:`ProbabilityModel`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smile.errors import OptionError


def flip_averaged(net: nn.Module, images: Tensor) -> Tensor:
    """Test-time augmentation: the mean of the logits of the images and of their mirror images."""
    return 0.5 * (net(images) + net(images.flip(-1)))


def check_shifts(shifts: Sequence[float]) -> None:
    """An :class:`OptionError` naming the first ``model.tta_shifts`` value out of range."""
    for shift in shifts:
        if not -0.5 < float(shift) < 0.5 or float(shift) == 0:
            raise OptionError(
                f"model.tta_shifts has {shift}: give non-zero fractions of the input's height between -0.5 "
                "and 0.5, e.g. [-0.1, -0.05, 0.05, 0.1]"
            )


def shifted_rows(images: Tensor, rows: int) -> Tensor:
    """``images`` (``(N, C, H, W)``) seen through a window ``rows`` lower (upper when negative), the
    rows it leaves the image by repeating the edge row: what a crop that many rows down would show,
    without the pixels outside the input."""
    if rows == 0:
        return images
    height = images.shape[-2]
    padded = F.pad(images, (0, 0, max(-rows, 0), max(rows, 0)), mode="replicate")
    start = max(rows, 0)
    return padded[..., start : start + height, :]


def view_averaged(net: nn.Module, images: Tensor, mirror: bool, shifts: Sequence[float] = ()) -> Tensor:
    """Test-time augmentation: the mean of the logits of the images, of each vertical shift of them
    (``shifts``: fractions of the height, see :func:`shifted_rows`) and, with ``mirror``, of the mirror
    image of every one of these. Training windows move vertically (``RandomCrop`` on the 178x218 face),
    so the shifted views are windows the network has learnt from; a horizontal shift, which training
    never makes, cost 1.3 points of mean validation accuracy over 40 attributes."""
    if not shifts:
        return flip_averaged(net, images) if mirror else net(images)
    height = images.shape[-2]
    views = [images, *(shifted_rows(images, round(shift * height)) for shift in shifts)]
    if mirror:
        views += [view.flip(-1) for view in views]
    return torch.stack([net(view) for view in views]).mean(0)


class ProbabilityModel(nn.Module):
    """``(N, 3, S, S)`` images -> ``(N, K)`` probabilities: the tensor steps of the evaluation transform,
    the network (its averaged weights with ``ema_decay``; the mean over its test-time views with ``tta``
    and ``tta_shifts``) and the sigmoid, as :meth:`smile.system.AttributeClassifier.predict_step` computes them, with
    ``uint8`` input first scaled to [0, 1]."""

    def __init__(
        self,
        net: nn.Module,
        tensor_steps: Sequence[nn.Module],
        uint8: bool,
        tta: bool = False,
        tta_shifts: Sequence[float] = (),
    ) -> None:
        super().__init__()
        self.net = net
        self.tensor_steps = nn.Sequential(*tensor_steps)
        self.uint8 = uint8
        self.tta = tta
        self.tta_shifts = tuple(tta_shifts)

    def forward(self, images: Tensor) -> Tensor:
        if self.uint8:
            images = images.float() / 255.0
        images = self.tensor_steps(images)
        logits = view_averaged(self.net, images, self.tta, self.tta_shifts)
        return torch.sigmoid(logits)
