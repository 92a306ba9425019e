"""Find the faces of a photo and frame each one as CelebA's aligned images are framed.

Example::

    from PIL import Image
    from smile.faces.aligner import FaceAligner

    faces = FaceAligner()(Image.open("group.jpg"))
    for face in faces:  # left to right
        face.aligned.save(f"face_{face.box[0]}.png")  # 178x218, framed like img_align_celeba
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from smile.faces.detectors import Detection, make_detector
from smile.faces.geometry import (
    ALIGNED_SIZE,
    CELEBA_LANDMARKS,
    align,
    apply_transform,
    box_landmarks,
    invert_transform,
    opencv,
    rescale,
    rgb_array,
    similarity_transform,
    warp,
    whole_image_transform,
)
from smile.faces.options import FaceOptions


@dataclass
class Face:
    """A detected face: where it is in the photo and its CelebA-framed crop.

    ``landmarks`` are the five CelebA points in the photo (image-left eye first), measured by the
    detector, or, with Haar, the eyes measured and the other three inferred from them; ``None`` when the
    crop was framed from the box alone. ``method`` says which: ``"landmarks"``, ``"eyes"`` or ``"box"``;
    ``"whole_image"`` for a photo in which no face was found, taken whole as a face crop (its box is the
    whole image, its score ``None``: :meth:`FaceAligner.frame`). ``transform`` is the 2x3 matrix that maps
    photo coordinates to ``aligned`` coordinates.
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    score: float | None
    aligned: Image.Image
    method: str = "landmarks"
    transform: np.ndarray | None = None


#: :attr:`Face.method` of a photo taken whole because no face was found in it.
WHOLE_IMAGE = "whole_image"


class FaceAligner:
    """Find the faces of a photo and crop each one as CelebA's aligned images are cropped: calling it
    gives a :class:`Face` per face, whose ``aligned`` holds the crop (a 178x218 RGB image, what the
    models and their ONNX exports take after the central crop and resize of ``eval_transform``).

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
        detector: str | Callable[[np.ndarray], list[Detection]] = FaceOptions.detector,
        min_face: int = FaceOptions.min_face,
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
            self.detector_name, self._detect = make_detector(str(detector), min_face=min_face)
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
        rgb = rgb_array(image)
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
                    landmarks=None if det.landmarks is None else rescale(det.landmarks, factor),
                    eyes=None if det.eyes is None else rescale(det.eyes, factor),
                )
            )
        return found

    def __call__(self, image: Image.Image | np.ndarray) -> list[Face]:
        """All faces of ``image``, left to right, each with its 178x218 CelebA-framed crop in
        :attr:`Face.aligned`."""
        rgb = rgb_array(image)
        return [self.face(rgb, det) for det in sorted(self.detect(rgb), key=lambda d: d.box[0])]

    def refine(self, image: Image.Image | np.ndarray, boxes: np.ndarray) -> list[Detection] | None:
        """The faces found again near ``boxes`` (``x, y, w, h`` in ``image``, where a video's tracks
        expect them) by the detector's cheap second look, at least ``min_face`` wide; ``None`` when the
        detector has none (only MTCNN has: :meth:`~smile.faces.detectors.MTCNNDetector.refine`)."""
        refine = getattr(self._detect, "refine", None)
        if refine is None:
            return None
        return [det for det in refine(rgb_array(image), boxes) if det.box[2] >= self.min_face]

    def face(self, image: Image.Image | np.ndarray, det: Detection) -> Face:
        """One detection of ``image`` as a :class:`Face`, its crop framed by the landmarks, else the eyes,
        else the box."""
        rgb = rgb_array(image)
        if det.landmarks is not None:
            landmarks, method = np.asarray(det.landmarks, dtype=np.float64), "landmarks"
            matrix = similarity_transform(landmarks, self.template)
        elif det.eyes is not None:
            matrix = similarity_transform(det.eyes, self.eye_template)
            landmarks, method = apply_transform(invert_transform(matrix), self.template), "eyes"
        else:
            matrix = similarity_transform(box_landmarks(det.box), self.template)
            landmarks, method = None, "box"
        return Face(
            box=tuple(int(round(v)) for v in det.box),  # type: ignore[arg-type]
            landmarks=landmarks,
            score=det.score,
            aligned=warp(rgb, matrix, self.size),
            method=method,
            transform=matrix,
        )

    def align(self, image: Image.Image | np.ndarray, landmarks: np.ndarray) -> Image.Image:
        """Crop ``image`` so that ``landmarks`` (5x2, CelebA order, e.g. a :attr:`Face.landmarks` from this
        aligner's detector) land on :attr:`template`; a ``size`` (178x218) RGB image."""
        return align(image, landmarks, self.template, self.size)

    def frame(self, image: Image.Image | np.ndarray, no_face: str = FaceOptions.no_face) -> list[Face]:
        """The faces of ``image`` (:meth:`__call__`); when there is none, by the ``no_face`` rule, the whole
        image framed as a face crop (``whole``: one :data:`WHOLE_IMAGE` face) or nothing (``skip``)."""
        faces = self(image)
        if faces or no_face == "skip":
            return faces
        if no_face != "whole":
            raise ValueError(f"no_face is {no_face!r}: choose whole or skip")
        return [whole_image_face(image, self.size)]


def whole_image_face(image: Image.Image | np.ndarray, size: tuple[int, int] = ALIGNED_SIZE) -> Face:
    """``image`` taken whole as a face crop (:func:`~smile.faces.geometry.whole_image_transform`)."""
    rgb = rgb_array(image)
    height, width = rgb.shape[:2]
    matrix = whole_image_transform((width, height))
    return Face(
        box=(0, 0, width, height),
        landmarks=None,
        score=None,
        aligned=warp(rgb, matrix, size),
        method=WHOLE_IMAGE,
        transform=matrix,
    )
