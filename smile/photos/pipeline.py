"""The photo pipeline: read (EXIF orientation), find and align the faces (:mod:`smile.faces`), the
evaluation transform, batch. ``smile predict``, ``smile.load(...).predict`` and ``smile serve`` all run
photos through it, with the defaults of :class:`~smile.faces.options.FaceOptions`.

With ``aligned=True`` the inputs are taken to be CelebA-style aligned crops already and used whole
(resized to 178x218 if they are another size), without detection.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from smile.data.celeba import CROP_SIZE
from smile.data.pil_transforms import CentreWindow
from smile.errors import DataError
from smile.faces.aligner import Face
from smile.faces.images import ImageInput, celeba_frame, reason, to_image
from smile.faces.options import FaceOptions

#: :attr:`Face.method` of an input taken as an aligned crop (``aligned=True``).
ALIGNED = "aligned"


@dataclass
class PhotoFaces:
    """One photo through the pipeline: its faces (left to right), or why it could not be used."""

    source: Path | None
    faces: list[Face] = field(default_factory=list)
    picture: Image.Image | None = None
    error: str | None = None  # "unreadable: ..." or "failed: ..." (the detector broke on it)


class PhotoPipeline:
    """Photos in, network input out: one pipeline for a network that takes ``image_size`` squares cut
    from ``crop_size`` windows of the aligned face. Thread-safe: each thread gets its own face detector.
    It may be pickled (DataLoader workers that spawn) and forked (workers that fork): the detector is
    never copied, each process makes its own on first use.
    """

    def __init__(
        self,
        image_size: int,
        crop_size: int = CROP_SIZE,
        options: FaceOptions | None = None,
        aligned: bool = False,
        uint8: bool = False,
    ) -> None:
        self.image_size, self.crop_size = image_size, crop_size
        self.options = options or FaceOptions()
        self.aligned, self.uint8 = aligned, uint8
        self._window = CentreWindow(image_size, crop_size)  # the evaluation transform's, before ToTensor
        self._local = threading.local()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]  # detectors stay in the process and thread that made them
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def aligner(self):
        """This thread's :class:`~smile.faces.aligner.FaceAligner` (detectors are not shared between threads,
        nor between a process and the processes forked from it). Raises a :class:`DataError` naming the fix
        when the detector's package is missing."""
        aligner = getattr(self._local, "aligner", None)
        if aligner is None or self._local.pid != os.getpid():
            from smile.faces.aligner import FaceAligner  # OpenCV and the detector load here

            try:
                aligner = FaceAligner(self.options.detector, min_face=self.options.min_face)
            except ImportError as err:
                raise DataError(
                    f"{err}. Photos that are already aligned CelebA crops can skip detection (aligned)."
                ) from err
            self._local.aligner, self._local.pid = aligner, os.getpid()
        return aligner

    def read(self, image: ImageInput, channels: str = "RGB") -> Image.Image:
        """The image as upright 8-bit RGB, refused above :attr:`FaceOptions.max_pixels`."""
        return to_image(image, channels, self.options.max_pixels)

    def faces(self, picture: Image.Image) -> list[Face]:
        """The faces of a read photo, each with its 178x218 crop, by the options' no-face rule."""
        if self.aligned:
            crop = celeba_frame(picture)
            return [Face(box=(0, 0, *picture.size), landmarks=None, score=None, aligned=crop, method=ALIGNED)]
        return self.aligner().frame(picture, self.options.no_face)

    def photos(self, files: Iterable[Path]) -> Iterator[PhotoFaces]:
        """Each file read and its faces found; a file that will not decode, or on which the detector
        fails, is reported (:attr:`PhotoFaces.error`) and the others still run."""
        for file in files:
            try:
                picture = self.read(file)
            except Exception as err:  # any file that will not decode is reported and skipped
                yield PhotoFaces(file, error=f"unreadable: {reason(err)}")
                continue
            try:
                found = self.faces(picture)
            except DataError:
                raise
            except Exception as err:  # a detector failure on one photo must not stop the others
                yield PhotoFaces(file, error=f"failed: {reason(err)}")
                continue
            yield PhotoFaces(file, found, picture)

    def tensor(self, crops: Sequence[Image.Image]) -> Tensor:
        """178x218 CelebA-framed crops as the network's input batch: the evaluation transform up to
        ``ToTensor`` (``uint8``: the 0-255 pixels, as a network exported with ``--input_dtype uint8`` takes)."""
        size = (len(crops), 3, self.image_size, self.image_size)
        if not crops:
            return torch.zeros(size, dtype=torch.uint8 if self.uint8 else torch.float32)
        pixels = np.stack([np.asarray(self._window(crop.convert("RGB"))) for crop in crops])
        batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        return batch if self.uint8 else batch.float().div(255.0)  # as ToTensor does
