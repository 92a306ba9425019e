"""Per-attribute confusion counts with torchmetrics, and the figures derived from them."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import BinaryStatScores, MultilabelStatScores


def attribute_stat_scores(num_attributes: int) -> Metric:
    """Counts of true/false positives/negatives per attribute (multilabel when there are several)."""
    if num_attributes == 1:
        return BinaryStatScores()
    return MultilabelStatScores(num_labels=num_attributes, average=None)


def confusion_counts(stats: Metric) -> Tensor:
    """``(num_attributes, 4)`` float tensor of tp, fp, tn, fn from a metric of :func:`attribute_stat_scores`."""
    return stats.compute().reshape(-1, 5)[:, :4].float()


def accuracy(counts: Tensor) -> Tensor:
    """Per-attribute accuracy from :func:`confusion_counts`."""
    tp, fp, tn, fn = counts.unbind(-1)
    return (tp + tn) / (tp + fp + tn + fn).clamp_min(1)


def balanced_accuracy(counts: Tensor) -> Tensor:
    """Per-attribute mean of true-positive and true-negative rates."""
    tp, fp, tn, fn = counts.unbind(-1)
    return 0.5 * (tp / (tp + fn).clamp_min(1) + tn / (tn + fp).clamp_min(1))


def f1(counts: Tensor) -> Tensor:
    """Per-attribute F1 score of the positive class."""
    tp, fp, _, fn = counts.unbind(-1)
    return 2 * tp / (2 * tp + fp + fn).clamp_min(1)


def mean(values: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=torch.float32).mean()
