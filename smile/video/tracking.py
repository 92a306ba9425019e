"""Faces followed from frame to frame, one stable id per person: ByteTrack's association (Zhang et al.,
"ByteTrack: Multi-Object Tracking by Associating Every Detection Box", ECCV 2022) on face boxes.

Each track carries a constant-velocity Kalman filter over its box (centre, aspect ratio, height and
their velocities, with noise proportional to the box's height, as ByteTrack and SORT keep it); every
frame the tracks are predicted forward, then matched to the frame's faces by the Hungarian algorithm on
IoU (SciPy's ``linear_sum_assignment``): first the confident faces against every track, lost ones
included, then the less confident against the tracks still unmatched. A track unmatched for longer
than ``max_lost`` seconds ends; an unmatched confident face starts a new track with the next id.

Why not a tracking package: supervision moved its ``ByteTrack`` into Roboflow's ``trackers``, and both
(``supervision<=0.26``, ``trackers``) require ``opencv-python``, a second ``cv2`` beside smile's
``opencv-python-headless`` (pip resolves it to OpenCV 5, which dropped the Haar cascades the ``haar``
detector reads); ``norfair`` pins ``numpy<2`` and ``bytetracker`` pins torch 1.13. What smile needs of
them is this association, written here (about 150 lines) and tested on two-person clips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Faces at or above this detector score take part in the first association and may start tracks;
#: those between :data:`LOW_SCORE` and it only continue tracks (ByteTrack's two stages).
HIGH_SCORE = 0.5
LOW_SCORE = 0.1


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), both ``x, y, w, h``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a0, a1 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b0, b1 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0, None).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return inter / np.maximum(union, 1e-9)


def assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Least-cost one-to-one pairs of rows and columns with cost below ``limit``; the unpaired rows and
    columns."""
    if cost.size == 0:
        return [], list(range(cost.shape[0])), list(range(cost.shape[1]))
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < limit]
    paired_rows, paired_cols = {r for r, _ in pairs}, {c for _, c in pairs}
    return (
        pairs,
        [r for r in range(cost.shape[0]) if r not in paired_rows],
        [c for c in range(cost.shape[1]) if c not in paired_cols],
    )


class BoxFilter:
    """A constant-velocity Kalman filter over ``(cx, cy, aspect, height)`` and their velocities, one step
    per frame; its noise scales with the box's height (a near face moves more pixels than a far one)."""

    POSITION, VELOCITY = 1.0 / 20, 1.0 / 160

    def __init__(self, box: np.ndarray) -> None:
        measured = self.measure(box)
        self.mean = np.concatenate([measured, np.zeros(4)])
        h = measured[3]
        std = [2 * self.POSITION * h, 2 * self.POSITION * h, 1e-2, 2 * self.POSITION * h]
        std += [10 * self.VELOCITY * h, 10 * self.VELOCITY * h, 1e-5, 10 * self.VELOCITY * h]
        self.covariance = np.diag(np.square(std))

    @staticmethod
    def measure(box: np.ndarray) -> np.ndarray:
        x, y, w, h = (float(v) for v in box)
        return np.array([x + w / 2, y + h / 2, w / max(h, 1e-6), h])

    def box(self) -> np.ndarray:
        """The filter's box, ``x, y, w, h``."""
        cx, cy, aspect, h = self.mean[:4]
        h = max(h, 1.0)
        w = max(aspect * h, 1.0)
        return np.array([cx - w / 2, cy - h / 2, w, h])

    def predict(self) -> None:
        h = self.mean[3]
        std = [self.POSITION * h, self.POSITION * h, 1e-2, self.POSITION * h]
        std += [self.VELOCITY * h, self.VELOCITY * h, 1e-5, self.VELOCITY * h]
        motion = np.eye(8)
        motion[:4, 4:] = np.eye(4)
        self.mean = motion @ self.mean
        self.covariance = motion @ self.covariance @ motion.T + np.diag(np.square(std))

    def update(self, box: np.ndarray) -> None:
        measured = self.measure(box)
        h = self.mean[3]
        noise = np.diag(np.square([self.POSITION * h, self.POSITION * h, 1e-1, self.POSITION * h]))
        projected = self.covariance[:4, :4] + noise
        gain = np.linalg.solve(projected, self.covariance[:4, :]).T  # (8, 4)
        self.mean = self.mean + gain @ (measured - self.mean[:4])
        self.covariance = self.covariance - gain @ projected @ gain.T


@dataclass
class Track:
    """One person's face over time: its ``id`` (1, 2, ... in order of appearance), the frame it was last
    matched in (``last_step``), how many frames matched it (``hits``) and its box filter."""

    id: int
    filter: BoxFilter
    last_step: int
    hits: int = 1
    lost: bool = False
    box: np.ndarray = field(default_factory=lambda: np.zeros(4))  # the last matched face's box


class FaceTracker:
    """Stable ids for the faces of successive frames. Call :meth:`predict` once per frame, before
    finding its faces (it gives each live track's expected box), then :meth:`update` with the faces:
    it answers each face's track id.

    ``max_lost``: seconds a track may go unmatched before it ends (a face turned away, hidden, or not
    found for a few frames keeps its id), at ``rate`` frames a second; ``match_iou``: the least IoU
    between a track's expected box and a confident face for them to be matched."""

    def __init__(self, rate: float = 30.0, max_lost: float = 1.0, match_iou: float = 0.2) -> None:
        self.max_lost_steps = max(1, math.ceil(max_lost * (rate or 30.0)))
        self.match_cost = 1.0 - match_iou
        self.tracks: list[Track] = []
        self.step = 0
        self._next_id = 1
        self._predicted = False

    def predict(self) -> dict[int, np.ndarray]:
        """Advance every track one frame; the expected box (``x, y, w, h``) of each track seen in the
        last frame (those to look for again without a full detection)."""
        self.step += 1
        for track in self.tracks:
            track.filter.predict()
        self._predicted = True
        return {t.id: t.filter.box() for t in self.tracks if not t.lost}

    def update(self, boxes: Sequence[Sequence[float]], scores: Sequence[float | None]) -> list[int | None]:
        """Match this frame's faces (``x, y, w, h`` boxes and detector scores) to the tracks; each face's
        track id, or ``None`` for a face too unsure to start a track of its own."""
        if not self._predicted:
            self.predict()
        self._predicted = False
        boxes_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        score_array = np.array([1.0 if s is None else float(s) for s in scores], dtype=np.float64)
        ids: list[int | None] = [None] * len(boxes_array)
        high = [i for i in range(len(boxes_array)) if score_array[i] >= HIGH_SCORE]
        low = [i for i in range(len(boxes_array)) if LOW_SCORE <= score_array[i] < HIGH_SCORE]

        # first association: confident faces, every track (lost ones too), IoU weighed by the score
        pool = list(self.tracks)
        expected = np.array([t.filter.box() for t in pool]).reshape(-1, 4)
        cost = 1.0 - iou_matrix(expected, boxes_array[high]) * score_array[high][None, :]
        pairs, unmatched, new = assign(cost, self.match_cost)
        for row, col in pairs:
            self._match(pool[row], high[col], boxes_array, ids)
        # second association: the less confident faces, only tracks seen in the last frame
        remaining = [pool[r] for r in unmatched if not pool[r].lost]
        cost = 1.0 - iou_matrix(
            np.array([t.filter.box() for t in remaining]).reshape(-1, 4), boxes_array[low]
        )
        pairs, _, _ = assign(cost, 0.5)
        for row, col in pairs:
            self._match(remaining[row], low[col], boxes_array, ids)
        # tracks not matched this frame are lost; those lost too long end
        for track in self.tracks:
            if track.last_step != self.step:
                track.lost = True
        self.tracks = [t for t in self.tracks if self.step - t.last_step <= self.max_lost_steps]
        for col in new:
            index = high[col]
            track = Track(self._next_id, BoxFilter(boxes_array[index]), self.step, box=boxes_array[index])
            self._next_id += 1
            self.tracks.append(track)
            ids[index] = track.id
        return ids

    def _match(self, track: Track, index: int, boxes: np.ndarray, ids: list[int | None]) -> None:
        track.filter.update(boxes[index])
        track.last_step, track.lost, track.box = self.step, False, boxes[index]
        track.hits += 1
        ids[index] = track.id
