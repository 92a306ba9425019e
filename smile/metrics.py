"""Per-attribute confusion counts with torchmetrics, and the figures derived from them."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import BinaryAUROC, BinaryStatScores, MultilabelAUROC, MultilabelStatScores


def attribute_stat_scores(num_attributes: int) -> Metric:
    """Counts of true/false positives/negatives per attribute (multilabel when there are several)."""
    if num_attributes == 1:
        return BinaryStatScores()
    return MultilabelStatScores(num_labels=num_attributes, average=None)


def attribute_auroc(num_attributes: int) -> Metric:
    """Area under the ROC curve per attribute (exact: keeps the epoch's probabilities)."""
    if num_attributes == 1:
        return BinaryAUROC()
    return MultilabelAUROC(num_labels=num_attributes, average=None)


def auroc_values(metric: Metric, counts: Tensor) -> Tensor:
    """Per-attribute AUROC from :func:`attribute_auroc`; NaN where the labels hold one class only
    (torchmetrics returns 0 there, with a warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No (positive|negative) samples in targets")
        values = metric.compute().reshape(-1).float()
    tp, fp, tn, fn = counts.unbind(-1)
    defined = (tp + fn > 0) & (tn + fp > 0)
    return torch.where(defined.to(values.device), values, torch.full_like(values, float("nan")))


def attribute_metrics(counts: Tensor) -> dict[str, Tensor]:
    """Per-attribute accuracy, balanced accuracy and F1 from :func:`confusion_counts`."""
    return {"acc": accuracy(counts), "balanced_acc": balanced_accuracy(counts), "f1": f1(counts)}


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
