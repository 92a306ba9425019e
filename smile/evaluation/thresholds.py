"""Decision thresholds, in one place: the default, choosing them on validation, applying them.

An image is predicted to have an attribute when its probability is *greater than* the attribute's
threshold (torchmetrics' rule). A model keeps its thresholds with its weights
(:attr:`smile.system.AttributeClassifier.thresholds`, tuned after each validation with
``model.threshold_criterion``, or afterwards by ``smile thresholds``); test, predict, the Python API,
serving and export decide with them. numpy only, so that the prediction paths do not pay for
torchmetrics' import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from smile.trained.description import DEFAULT_THRESHOLD

#: What a tuned threshold maximises on the validation split (:func:`best_threshold`).
CRITERIA = ("acc", "balanced_acc", "f1")
#: Validation images of each class an attribute needs before its threshold is tuned: a threshold tuned
#: on a handful of images fits their noise.
MIN_TUNE_COUNT = 20


def present(probs: Sequence[float], attributes: Sequence[str], thresholds: Sequence[float]) -> str:
    """The attributes whose probability is greater than their threshold, space-separated (the
    ``predicted`` column of the predictions CSVs)."""
    return " ".join(name for name, p, t in zip(attributes, probs, thresholds) if p > t)


def model_thresholds(model: Any) -> tuple[list[float] | float, str | None]:
    """The decision thresholds ``model`` (an :class:`~smile.system.AttributeClassifier`) ships with, and
    where they come from (0.5 and ``None`` for a model without tuned ones)."""
    values = [float(t) for t in getattr(model, "thresholds", [])]
    criterion = getattr(model, "hparams", {}).get("threshold_criterion")
    if not values or all(t == DEFAULT_THRESHOLD for t in values):
        return DEFAULT_THRESHOLD, None
    return values, f"the model's, tuned on validation for {criterion}" if criterion else "the model's"


def checked_arrays(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``probs`` as float64 and ``labels`` as int64, flat, of equal length; labels must be 0 or 1."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if probs.shape != labels.shape:
        raise ValueError(f"{probs.shape[0]} probabilities but {labels.shape[0]} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return probs, labels.astype(np.int64)


def best_threshold(probs: np.ndarray, labels: np.ndarray, criterion: str = "acc") -> tuple[float, float]:
    """The threshold that maximises ``criterion`` (one of :data:`CRITERIA`) on these predictions, and
    the value it reaches.

    Candidates lie midway between consecutive distinct probabilities (and beyond both ends), so every
    distinct split of the images is tried once; among equally good ones, the closest to 0.5 wins.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"Unknown threshold criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    probs, labels = checked_arrays(probs, labels)
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


def tune_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    criterion: str = "acc",
    min_count: int = MIN_TUNE_COUNT,
    default: float = DEFAULT_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute (column of ``(images, attributes)`` arrays): the :func:`best_threshold` for
    ``criterion``, and whether it was tuned. An attribute with fewer than ``min_count`` images of either
    class keeps ``default``."""
    probs = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)
    labels = np.asarray(labels).reshape(len(labels), -1)
    thresholds = np.full(probs.shape[1], default, dtype=np.float64)
    tuned = np.zeros(probs.shape[1], dtype=bool)
    for k in range(probs.shape[1]):
        positives = int(labels[:, k].sum())
        if min(positives, len(labels) - positives) >= min_count:
            thresholds[k] = best_threshold(probs[:, k], labels[:, k], criterion)[0]
            tuned[k] = True
    return thresholds, tuned
