"""Binary-classification figures in plain numpy, one attribute at a time.

Conventions (the same as torchmetrics'): an image is predicted positive when its probability is
*greater than* the threshold; a rate whose denominator is empty is NaN (never 0), so that an
undefined figure cannot pass for a measured one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAN = float("nan")
#: Threshold-selection criteria for :func:`best_threshold`.
CRITERIA = ("acc", "balanced_acc", "f1")


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else NAN


def _as_arrays(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if probs.shape != labels.shape:
        raise ValueError(f"{probs.shape[0]} probabilities but {labels.shape[0]} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return probs, labels.astype(np.int64)


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
    probs, labels = _as_arrays(probs, labels)
    predicted = probs > threshold
    positive = labels == 1
    return Counts(
        tp=int(np.sum(predicted & positive)),
        fp=int(np.sum(predicted & ~positive)),
        tn=int(np.sum(~predicted & ~positive)),
        fn=int(np.sum(~predicted & positive)),
    )


def roc_curve(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fpr, tpr, thresholds``: one point per distinct probability, from (0, 0) to (1, 1).

    Point ``i`` (after the first) is the operating point that predicts positive every image whose
    probability is at least ``thresholds[i]``; tied probabilities move together (a diagonal step).
    Rates are NaN when the labels hold one class only.
    """
    probs, labels = _as_arrays(probs, labels)
    order = np.argsort(-probs, kind="stable")
    probs, labels = probs[order], labels[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(probs)), len(probs) - 1]
    tps = np.cumsum(labels)[last_of_value]
    fps = (last_of_value + 1) - tps
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    tpr = np.r_[0.0, tps / positives] if positives else np.full(len(tps) + 1, NAN)
    fpr = np.r_[0.0, fps / negatives] if negatives else np.full(len(fps) + 1, NAN)
    thresholds = np.r_[np.inf, probs[last_of_value]]
    return fpr, tpr, thresholds


def auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when the labels hold one class only."""
    fpr, tpr, _ = roc_curve(probs, labels)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return NAN
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, list | float]:
    """A reliability diagram's numbers and the expected calibration error of the positive class.

    Bin ``b`` holds probabilities in ``[b/bins, (b+1)/bins)`` (1.0 in the last bin). For each bin:
    the number of images, their mean predicted probability and the fraction that are positive;
    ECE is the mean over bins of ``|fraction positive - mean probability|`` weighted by the bins'
    shares of images (torchmetrics' ``BinaryCalibrationError`` with the L1 norm).
    """
    probs, labels = _as_arrays(probs, labels)
    index = np.clip(np.floor(probs * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    prob_sums = np.bincount(index, weights=probs, minlength=bins)
    positive_sums = np.bincount(index, weights=labels.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.where(counts > 0, prob_sums / counts, NAN)
        frac_pos = np.where(counts > 0, positive_sums / counts, NAN)
    gaps = np.abs(np.nan_to_num(frac_pos) - np.nan_to_num(mean_prob))
    ece = float(np.sum(counts * gaps) / counts.sum()) if counts.sum() else NAN
    return {
        "edges": np.linspace(0.0, 1.0, bins + 1).tolist(),
        "count": counts.tolist(),
        "mean_prob": mean_prob.tolist(),
        "frac_pos": frac_pos.tolist(),
        "ece": ece,
    }


def best_threshold(probs: np.ndarray, labels: np.ndarray, criterion: str = "acc") -> tuple[float, float]:
    """The threshold that maximises ``criterion`` (one of :data:`CRITERIA`) on these predictions, and
    the value it reaches.

    Candidates lie midway between consecutive distinct probabilities (and beyond both ends), so every
    distinct split of the images is tried once; among equally good ones, the closest to 0.5 wins.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"Unknown threshold criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    probs, labels = _as_arrays(probs, labels)
    values = np.unique(probs)
    score: np.ndarray
    candidates = np.r_[values[0] / 2.0, (values[:-1] + values[1:]) / 2.0, (values[-1] + 1.0) / 2.0]
    # Images predicted negative at candidate j are those with probability <= values[j - 1].
    below = np.searchsorted(values, probs, side="left")  # index of each image's value
    fn = np.r_[0, np.cumsum(np.bincount(below, weights=labels, minlength=len(values)))]
    tn = np.r_[0, np.cumsum(np.bincount(below, weights=1 - labels, minlength=len(values)))]
    positives, negatives = labels.sum(), len(labels) - labels.sum()
    tp, fp = positives - fn, negatives - tn
    with np.errstate(invalid="ignore", divide="ignore"):
        if criterion == "acc":
            score = (tp + tn) / len(labels)
        elif criterion == "balanced_acc":
            score = (
                0.5 * (tp / positives + tn / negatives)
                if positives and negatives
                else (tp + tn) / len(labels)
            )
        else:
            score = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    if values[0] <= 0.0:  # no threshold in [0, 1] predicts a probability of 0 positive
        score[0] = -np.inf
    best = np.flatnonzero(score >= np.max(score) - 1e-12)
    chosen = best[np.argmin(np.abs(candidates[best] - 0.5))]
    return float(np.clip(candidates[chosen], 0.0, 1.0)), float(score[chosen])


def group_slices(
    probs: np.ndarray, labels: np.ndarray, group: np.ndarray, names: tuple[str, str], threshold: float = 0.5
) -> dict[str, dict[str, float]]:
    """Accuracy, TPR and FPR (and their counts) within the images where ``group`` is 1 and where it is 0.

    ``names`` labels the two groups (``group == 1`` first).
    """
    probs, labels = _as_arrays(probs, labels)
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
