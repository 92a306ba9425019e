"""The project's metrics, in one place: the per-attribute figures logged in training and testing
(torchmetrics' confusion counts and AUROC, accumulated over an epoch), and the report's figures of one
attribute at a time (numpy arrays in; AUROC, ROC and calibration error computed by torchmetrics).

One rule everywhere (torchmetrics' own): an image is predicted positive when its probability is
*greater than* the threshold; a rate whose denominator is empty is NaN (never 0), so that an
undefined figure cannot pass for a measured one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import BinaryAUROC, BinaryStatScores, MultilabelAUROC, MultilabelStatScores
from torchmetrics.functional.classification import binary_auroc, binary_calibration_error, binary_roc
from torchmetrics.utilities import dim_zero_cat

from smile.evaluation.thresholds import checked_arrays

NAN = float("nan")


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else NAN


@dataclass(frozen=True)
class Counts:
    """The confusion counts of one attribute at one threshold."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        return self.tn + self.fp

    def rates(self) -> dict[str, float]:
        """Accuracy, balanced accuracy, precision, TPR (recall), TNR, FPR, F1; NaN where undefined."""
        tpr = _ratio(self.tp, self.positives)
        tnr = _ratio(self.tn, self.negatives)
        return {
            "acc": _ratio(self.tp + self.tn, self.n),
            "balanced_acc": 0.5 * (tpr + tnr),
            "precision": _ratio(self.tp, self.tp + self.fp),
            "tpr": tpr,
            "tnr": tnr,
            "fpr": _ratio(self.fp, self.negatives),
            "f1": _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn),
        }


def confusion(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> Counts:
    """Counts of true/false positives/negatives when ``probs > threshold`` is predicted positive."""
    probs, labels = checked_arrays(probs, labels)
    predicted = probs > threshold
    positive = labels == 1
    return Counts(
        tp=int(np.sum(predicted & positive)),
        fp=int(np.sum(predicted & ~positive)),
        tn=int(np.sum(~predicted & ~positive)),
        fn=int(np.sum(~predicted & positive)),
    )


def roc_curve(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fpr, tpr, thresholds``: one point per distinct probability, from (0, 0) to (1, 1)
    (torchmetrics' ``binary_roc``).

    Point ``i`` (after the first) is the operating point that predicts positive every image whose
    probability is at least ``thresholds[i]``; tied probabilities move together (a diagonal step).
    The first point predicts nothing positive; its threshold is ``inf``. Rates are NaN when the labels
    hold one class only.
    """
    probs, labels = checked_arrays(probs, labels)
    positives = int(labels.sum())
    with warnings.catch_warnings():  # one class only: torchmetrics warns and returns 0s, NaN below
        warnings.filterwarnings("ignore", message="No (positive|negative) samples in targets")
        fpr, tpr, thresholds = (
            t.numpy() for t in binary_roc(torch.from_numpy(probs), torch.from_numpy(labels))
        )
    thresholds = thresholds.astype(np.float64)
    thresholds[0] = np.inf
    if not positives:
        tpr = np.full(len(tpr), NAN)
    if positives == len(labels):
        fpr = np.full(len(fpr), NAN)
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds


def auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half; torchmetrics' ``binary_auroc``); NaN when the labels
    hold one class only."""
    probs, labels = checked_arrays(probs, labels)
    if labels.min(initial=1) == labels.max(initial=0):
        return NAN
    return float(binary_auroc(torch.from_numpy(probs), torch.from_numpy(labels)))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, list | float]:
    """A reliability diagram's numbers and the expected calibration error of the positive class.

    Bin ``b`` holds probabilities in ``[b/bins, (b+1)/bins)`` (1.0 in the last bin). For each bin:
    the number of images, their mean predicted probability and the fraction that are positive;
    ECE is the mean over bins of ``|fraction positive - mean probability|`` weighted by the bins'
    shares of images (computed by torchmetrics' ``binary_calibration_error``, L1 norm; the diagram's
    numbers, which torchmetrics does not return, are counted here with the same bins).
    """
    probs, labels = checked_arrays(probs, labels)
    index = np.clip(np.floor(probs * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    prob_sums = np.bincount(index, weights=probs, minlength=bins)
    positive_sums = np.bincount(index, weights=labels.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.where(counts > 0, prob_sums / counts, NAN)
        frac_pos = np.where(counts > 0, positive_sums / counts, NAN)
    ece = (
        float(binary_calibration_error(torch.from_numpy(probs), torch.from_numpy(labels), n_bins=bins))
        if len(probs)
        else NAN
    )
    return {
        "edges": np.linspace(0.0, 1.0, bins + 1).tolist(),
        "count": counts.tolist(),
        "mean_prob": mean_prob.tolist(),
        "frac_pos": frac_pos.tolist(),
        "ece": ece,
    }


def mean_rates(probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float]) -> dict[str, float]:
    """Mean accuracy and mean balanced accuracy over the attributes (columns of ``(images, attributes)``
    arrays), each decided at its own threshold; undefined rates are left out of the means."""
    probs = np.asarray(probs).reshape(len(probs), -1)
    labels = np.asarray(labels).reshape(len(labels), -1)
    rates = [confusion(probs[:, k], labels[:, k], thresholds[k]).rates() for k in range(probs.shape[1])]
    return {
        "mean_acc": float(np.nanmean([r["acc"] for r in rates])),
        "mean_balanced_acc": float(np.nanmean([r["balanced_acc"] for r in rates])),
    }


def group_slices(
    probs: np.ndarray, labels: np.ndarray, group: np.ndarray, names: tuple[str, str], threshold: float = 0.5
) -> dict[str, dict[str, float]]:
    """Accuracy, TPR and FPR (and their counts) within the images where ``group`` is 1 and where it is 0.

    ``names`` labels the two groups (``group == 1`` first).
    """
    probs, labels = checked_arrays(probs, labels)
    group = np.asarray(group).reshape(-1)
    if group.shape != probs.shape:
        raise ValueError(f"{group.shape[0]} group labels for {probs.shape[0]} predictions")
    slices = {}
    for name, value in zip(names, (1, 0)):
        mask = group == value
        counts = confusion(probs[mask], labels[mask], threshold)
        rates = counts.rates()
        slices[name] = {
            "n": counts.n,
            "positives": counts.positives,
            "negatives": counts.negatives,
            "acc": rates["acc"],
            "tpr": rates["tpr"],
            "fpr": rates["fpr"],
        }
    return slices


#: For each fairness metric, the count each group needs (``min_count``) for its gap to be ranked.
GAP_SUPPORT = {"acc": "n", "tpr": "positives", "fpr": "negatives"}


def gaps(slices: dict[str, dict[str, float]], min_count: int = 0) -> dict[str, dict[str, float | bool]]:
    """Per metric of :data:`GAP_SUPPORT`: the largest minus the smallest value over the groups, and
    whether every group has at least ``min_count`` images behind that metric (``supported``)."""
    out = {}
    for metric, support in GAP_SUPPORT.items():
        values = [s[metric] for s in slices.values()]
        gap = NAN if any(np.isnan(v) for v in values) else float(max(values) - min(values))
        out[metric] = {
            "gap": gap,
            "supported": bool(all(s[support] >= min_count for s in slices.values())) and not np.isnan(gap),
        }
    return out


# --- per-epoch figures over all attributes (training, validation, testing) ------------------------


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


class EpochOutputs(Metric):
    """An epoch's probabilities and labels, ``(images, attributes)`` each, gathered from every process
    (to tune the decision thresholds on the whole validation split)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, probs: Tensor, labels: Tensor) -> None:
        self.probs.append(probs.float().reshape(len(probs), -1))
        self.labels.append(labels.int().reshape(len(labels), -1))

    def compute(self) -> tuple[Tensor, Tensor]:
        return dim_zero_cat(self.probs), dim_zero_cat(self.labels)


def confusion_counts(stats: Metric) -> Tensor:
    """``(num_attributes, 4)`` float tensor of tp, fp, tn, fn from a metric of :func:`attribute_stat_scores`."""
    return stats.compute().reshape(-1, 5)[:, :4].float()


def auroc_values(metric: Metric, counts: Tensor) -> Tensor:
    """Per-attribute AUROC from :func:`attribute_auroc`; NaN where the labels hold one class only
    (torchmetrics returns 0 there, with a warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No (positive|negative) samples in targets")
        values = metric.compute().reshape(-1).float()
    tp, fp, tn, fn = counts.unbind(-1)
    defined = (tp + fn > 0) & (tn + fp > 0)
    return torch.where(defined.to(values.device), values, torch.full_like(values, NAN))


def _divide(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, NaN where ``den`` is 0 (the module's rule)."""
    return torch.where(den > 0, num / den.clamp_min(1), torch.full_like(num, NAN))


def attribute_metrics(counts: Tensor) -> dict[str, Tensor]:
    """Per-attribute accuracy, balanced accuracy and F1 from :func:`confusion_counts` (NaN where a
    denominator is empty, as :meth:`Counts.rates`)."""
    tp, fp, tn, fn = counts.unbind(-1)
    return {
        "acc": _divide(tp + tn, tp + fp + tn + fn),
        "balanced_acc": 0.5 * (_divide(tp, tp + fn) + _divide(tn, tn + fp)),
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
    }
