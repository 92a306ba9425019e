"""How faces are found in a photo: the one set of defaults that ``smile predict``, ``smile.load``,
``smile serve`` and training on your own photos share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from smile.errors import OptionError

#: The names a face detector is chosen by (:mod:`smile.faces.detectors`).
DETECTORS = ("auto", "mtcnn", "yunet", "haar")

#: What a photo without a detected face gets: ``whole``, the whole image framed as a face crop and
#: predicted on (many users' photos are face crops too close for a detector); ``skip``, nothing.
NO_FACE_RULES = ("whole", "skip")
NoFaceRule = Literal["whole", "skip"]
DetectorName = Literal["auto", "mtcnn", "yunet", "haar"]


@dataclass(frozen=True)
class FaceOptions:
    """``detector``: ``auto`` (the first of MTCNN, YuNet, Haar whose package is installed), ``mtcnn``,
    ``yunet`` or ``haar``; ``min_face``: the narrowest face kept, in pixels of the photo; ``no_face``: a
    rule of :data:`NO_FACE_RULES` ("whole" was chosen on the sample's validation split:
    benchmarks/no_face.py); ``max_pixels``: larger images are refused before they are decoded (Pillow's
    own bomb limit is 89 million)."""

    detector: DetectorName = "auto"
    min_face: int = 40
    no_face: NoFaceRule = "whole"
    max_pixels: int | None = 50_000_000

    def __post_init__(self) -> None:
        if self.no_face not in NO_FACE_RULES:
            raise OptionError(f"no_face is {self.no_face!r}: choose one of {', '.join(NO_FACE_RULES)}")
        if self.detector not in DETECTORS and not callable(self.detector):
            raise OptionError(f"detector is {self.detector!r}: choose one of {', '.join(DETECTORS)}")
        if self.min_face < 1:
            raise OptionError(f"min_face is {self.min_face}: give a width of at least 1 pixel")
