"""The training recipe's parts that :class:`smile.system.AttributeClassifier` is configured with:
optimiser, learning-rate schedule, label smoothing, weight averaging, test-time views (mirror and
vertical shifts), and the check that the chosen precision is fast on this CPU."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from smile.errors import OptionError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "onecycle")


def parameter_groups(net: nn.Module, weight_decay: float, decay_all: bool) -> list[dict]:
    """One group for all parameters (``decay_all``), or weight decay on weights only, none on biases
    and normalisation layers (parameters with fewer than two dimensions)."""
    params = [p for p in net.parameters() if p.requires_grad]
    if decay_all or not weight_decay:
        return [{"params": params, "weight_decay": weight_decay}]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def build_optimizer(net: nn.Module, name: str, lr: float, weight_decay: float) -> Optimizer:
    """``adam`` (L2 penalty on all parameters, as the original), ``adamw`` or ``sgd`` (Nesterov, momentum 0.9;
    both with decoupled/plain decay on weights only, not on biases and normalisation layers)."""
    if name == "adam":
        return torch.optim.Adam(parameter_groups(net, weight_decay, True), lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(parameter_groups(net, weight_decay, False), lr=lr)
    if name == "sgd":
        return torch.optim.SGD(parameter_groups(net, weight_decay, False), lr=lr, momentum=0.9, nesterov=True)
    raise OptionError(f"Unknown optimizer {name!r} (model.optimizer); choose one of: {', '.join(OPTIMIZERS)}")


def lr_factor(step: int, total: int, warmup: int, shape: str) -> float:
    """Multiplier of the peak learning rate at ``step`` of ``total``: linear warm-up over ``warmup``
    steps from 1/25 of the peak (OneCycle's start), then cosine decay to 0 (``cosine``) or to 1/10^4 of the
    peak (``onecycle``, as torch's OneCycleLR)."""
    floor = 0.0 if shape == "cosine" else 1e-4
    if step < warmup:
        return 0.04 + 0.96 * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: Optimizer, name: str, total_steps: int, warmup_steps: int
) -> LRScheduler | None:
    """A per-step schedule, or ``None`` for a constant learning rate (``none``)."""
    if name == "none":
        return None
    if name not in SCHEDULERS:
        raise OptionError(
            f"Unknown scheduler {name!r} (model.scheduler); choose one of: {', '.join(SCHEDULERS)}"
        )
    total = max(1, total_steps)
    warmup = min(max(0, warmup_steps), total - 1)
    return LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, name))


def smooth_targets(targets: Tensor, epsilon: float) -> Tensor:
    """Binary label smoothing: 1 -> 1 - eps/2, 0 -> eps/2."""
    return targets * (1 - epsilon) + epsilon / 2 if epsilon else targets


def positive_weights(positive_rates: Tensor, scheme: str) -> Tensor:
    """BCE's ``pos_weight`` per attribute from its share of positive training images: ``balanced``
    weighs positives by ``negatives / positives`` (each class then carries equal weight in the loss),
    ``sqrt`` by its square root (half way, in log scale). Rates are clamped to [1e-3, 1 - 1e-3]."""
    rates = positive_rates.clamp(1e-3, 1 - 1e-3)
    odds = (1 - rates) / rates
    if scheme == "balanced":
        return odds
    if scheme == "sqrt":
        return odds.sqrt()
    raise OptionError(f"model.positive_weight is {scheme!r}; choose balanced, sqrt or null")


def ema_model(net: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``net``'s weights and buffers (BatchNorm statistics too),
    frozen (no gradients); call ``update_parameters(net)`` after each optimiser step."""
    if not 0 < decay < 1:
        raise OptionError(f"model.ema_decay is {decay}: give a value in (0, 1), e.g. 0.995, or null for none")
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema


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


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX). Without them torch emulates
    bfloat16, and ``bf16-mixed`` training of the recipe's network ran about 10x slower than float32
    (one thread, AVX2-only AMD EPYC: 5-7 against 49-53 images/s)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


#: Why bfloat16 is slow here, in both the command line's fallback message and the Python API's warning.
NO_BFLOAT16 = "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX)"


def emulated_bfloat16(precision: Any) -> bool:
    """Whether ``precision`` (a Trainer's) asks for bfloat16 and this CPU would emulate it."""
    return str(precision).startswith("bf16") and not cpu_has_fast_bfloat16()


def slow_precision_message(precision: str, device_type: str) -> str | None:
    """A one-line warning for bfloat16 on a CPU that emulates it, else ``None``: the command line falls
    back to float32 by itself (:func:`smile.devices.cpu_precision`), a Trainer built in Python does not."""
    if device_type == "cpu" and emulated_bfloat16(precision):
        return (
            f"trainer.precision is {precision}, but {NO_BFLOAT16}: training runs about 10x slower than "
            "float32. Add --trainer.precision 32-true."
        )
    return None
