"""The training recipe's parts that :class:`smile.system.AttributeClassifier` is configured with:
optimiser, learning-rate schedule, label smoothing, positive weights and weight averaging."""

from __future__ import annotations

import math

import torch
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
