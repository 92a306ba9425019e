"""Smoothing each track's probabilities over time, so that one odd frame is not a "smile".

A network sees each frame alone, and its probability for the same face jitters from frame to frame
(the face turns, blurs, the detector's box moves a pixel); near the threshold every jitter flips the
decision. The filter here is causal (it uses only frames already seen, so a live camera gets it too)
and per track (each person's own history), and works in seconds, not frames, so that sampled video
(``--every``, ``--fps``) and a camera's uneven frames are smoothed alike.

:class:`Ema`, the exponential moving average with time constant ``tau`` seconds, ``s += a (p - s)``
with ``a = 1 - exp(-dt / tau)``, is the default, at ``tau`` 0.2 s. Measured on the 11 real clips
(``benchmarks/video.py --only flicker``, 143 s, 4,162 face-frames), the decision flips 0.80 times a
second unsmoothed; the average at 0.2 s cuts that to 0.26 with decisions 0.12 s behind a zero-phase
reference, where 0.3 s flips as often and lags 0.17 s, and 0.5 s flips 0.19 times for 0.27 s of lag.
:class:`OneEuro` (Casiez et al., CHI 2012), whose cut-off rises with the signal's speed, lags least
(0.05 s) but keeps 0.39-0.41 flips a second at any setting: the flicker to remove is itself a fast
change, which it lets through. A track not seen for a while starts afresh.

``tau=0`` turns smoothing off: the smoothed probability is the raw one.
"""

from __future__ import annotations

import math

import numpy as np

from smile.errors import OptionError
from smile.video import DEFAULT_SMOOTHING as DEFAULT_TAU

FILTERS = ("ema", "one_euro")


class Ema:
    """Exponential moving average over time: time constant ``tau`` seconds."""

    def __init__(self, tau: float = DEFAULT_TAU) -> None:
        self.tau = float(tau)
        self.value: np.ndarray | None = None
        self.time: float | None = None

    def __call__(self, when: float, probabilities: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if self.value is None or self.tau <= 0 or self.time is None:
            self.value = probabilities.copy()
        else:
            dt = max(when - self.time, 0.0)
            weight = 1.0 - math.exp(-dt / self.tau)
            self.value = self.value + weight * (probabilities - self.value)
        self.time = when
        return self.value.copy()


class OneEuro:
    """The 1-euro filter (Casiez, Roussel and Vogel, CHI 2012): a low-pass filter whose cut-off rises
    with the signal's speed, ``min_cutoff + beta * |dp/dt|`` Hz."""

    def __init__(self, min_cutoff: float = 0.5, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None
        self.time: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64))
        return 1.0 / (1.0 + tau / max(dt, 1e-6))

    def __call__(self, when: float, probabilities: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if self.value is None or self.time is None:
            self.value, self.speed = probabilities.copy(), np.zeros_like(probabilities)
        else:
            dt = max(when - self.time, 1e-6)
            raw_speed = (probabilities - self.value) / dt
            self.speed = self.speed + self._alpha(self.d_cutoff, dt) * (raw_speed - self.speed)
            cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
            self.value = self.value + self._alpha(cutoff, dt) * (probabilities - self.value)
        self.time = when
        return self.value.copy()


class TrackSmoother:
    """One filter per track. ``kind``: ``"ema"`` (time constant ``tau`` seconds; 0 is off) or
    ``"one_euro"`` (``tau`` is then its ``1 / (2 pi min_cutoff)``, so that the two are compared at the
    same smoothing of a still face). A track unseen for ``reset_after`` seconds starts afresh."""

    def __init__(self, tau: float = DEFAULT_TAU, kind: str = "ema", reset_after: float = 2.0) -> None:
        if kind not in FILTERS:
            raise OptionError(f"smoothing filter {kind!r}: choose one of {', '.join(FILTERS)}")
        if tau < 0 or not math.isfinite(tau):
            raise OptionError(f"smoothing time constant {tau}: give 0 (off) or a positive number of seconds")
        self.tau, self.kind, self.reset_after = float(tau), kind, reset_after
        self._filters: dict[int, Ema | OneEuro] = {}

    @property
    def off(self) -> bool:
        return self.tau == 0

    def _new(self) -> Ema | OneEuro:
        if self.kind == "one_euro" and self.tau > 0:
            return OneEuro(min_cutoff=1.0 / (2 * math.pi * self.tau))
        return Ema(self.tau)

    def __call__(self, track: int, when: float, probabilities: np.ndarray) -> np.ndarray:
        """The smoothed probabilities of ``track`` at time ``when`` (seconds), given its raw ones."""
        if self.off:
            return np.asarray(probabilities, dtype=np.float64).copy()
        current = self._filters.get(track)
        if current is None or (current.time is not None and when - current.time > self.reset_after):
            current = self._filters[track] = self._new()
        return current(when, probabilities)

    def forget(self, keep: set[int]) -> None:
        """Drop the filters of tracks not in ``keep`` (ended)."""
        for track in list(self._filters):
            if track not in keep:
                del self._filters[track]
