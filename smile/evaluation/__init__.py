"""The evaluation report: per-attribute metrics, calibration, fairness slices, errors and figures.

:mod:`.metrics` and :mod:`.report` work on arrays alone; :mod:`.runner` feeds them a model's
predictions (``python -m smile report``, and after ``python -m smile test``).
"""

#: The attributes whose groups the report's fairness slices compare, unless told otherwise.
DEFAULT_GROUPS = ("Male", "Young")
