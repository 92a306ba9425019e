"""From probabilities to yes/no: the default threshold and the list of attributes present.

Kept apart from :mod:`smile.evaluation.metrics` (which imports torchmetrics, about 0.9 s) so that the
prediction paths (``smile.load`` with an ONNX file, the predictions CSV) do not pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The decision threshold of an attribute whose threshold is not tuned: an image is predicted positive
#: when its probability is greater.
DEFAULT_THRESHOLD = 0.5


def present(probs: Sequence[float], attributes: Sequence[str], thresholds: Sequence[float]) -> str:
    """The attributes whose probability is greater than their threshold, space-separated (the
    ``predicted`` column of the predictions CSVs)."""
    return " ".join(name for name, p, t in zip(attributes, probs, thresholds) if p > t)
