"""Use a trained model from Python: ``smile.load`` and :class:`Predictor`.

``load`` takes a shipped model's name (``smiling``, the default, or ``attributes``), a checkpoint (a
path, or ``best``/``last`` as on the command line) or a file written by ``smile export`` (``.onnx``,
``.pt2``): :mod:`smile.trained` resolves it and builds the one inference model every user of a model
shares. ``Predictor.predict`` runs photos through the photo pipeline
(:mod:`smile.photos.pipeline`: the detection, alignment and preprocessing of ``smile predict``) and
returns one record per face::

    >>> import smile
    >>> model = smile.load("best.ckpt")                      # doctest: +SKIP
    >>> faces = model.predict("group.jpg")                   # doctest: +SKIP
    >>> [(f.box, round(f.probabilities["Smiling"], 3), f.predicted["Smiling"]) for f in faces]  # doctest: +SKIP
    [((72, 40, 98, 121), 0.912, True), ((301, 55, 90, 112), 0.087, False)]

Images may be a path, the bytes of an image file, a PIL image or a numpy array (``HxWx3`` uint8, RGB
unless ``channels="BGR"``, as OpenCV gives them); a list of them gives a list of results. One
:class:`Predictor` may be shared by threads: each thread gets its own face detector, and the network
is only read.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from smile.faces.aligner import Face
from smile.faces.images import ImageError, ImageInput, celeba_frame
from smile.faces.options import FaceOptions
from smile.photos.pipeline import PhotoFaces, PhotoPipeline
from smile.photos.predictions import PhotoRow, photo_rows
from smile.trained.inference import InferenceModel, load_model
from smile.trained.shipped import DEFAULT as DEFAULT_MODEL

if TYPE_CHECKING:
    from smile.video.pipeline import FrameResult

__all__ = ["FaceRecord", "ImageError", "Predictor", "load"]

#: What a model trained on drawn faces (the demo's) says once, wherever it is used on photos.
DRAWN_FACES = (
    "{source} was trained on drawn faces (smile synthetic, the demo), and knows no others: its answers on "
    "photographs mean little. The shipped model smiling knows real faces: smile.load(), or smile predict "
    "without --ckpt_path."
)


@dataclass
class FaceRecord:
    """One face of a photo: its index (left to right), box ``(x, y, w, h)`` in the photo's pixels (after
    EXIF rotation), the detector's score, a probability per attribute and the decision at the attribute's
    threshold. ``method`` says how the face was framed: ``landmarks``, ``eyes`` or ``box`` for a detected
    face; ``whole_image`` for a photo in which none was found, taken whole (score ``None``); ``aligned``
    for an input taken as an aligned crop."""

    face: int
    box: tuple[int, int, int, int]
    score: float | None
    probabilities: dict[str, float]
    predicted: dict[str, bool] = field(default_factory=dict)
    method: str = "landmarks"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``box`` as ``{"x", "y", "w", "h"}``."""
        x, y, w, h = self.box
        return {
            "face": self.face,
            "box": {"x": x, "y": y, "w": w, "h": h},
            "score": self.score,
            "method": self.method,
            "probabilities": self.probabilities,
            "predicted": self.predicted,
        }


class Predictor:
    """A trained model ready to predict on photos; made by :func:`load`.

    Attributes: ``model`` (the :class:`~smile.trained.inference.InferenceModel`), ``description`` (its
    :class:`~smile.trained.description.ModelDescription`), ``attributes`` (names, in output order),
    ``thresholds`` (one per attribute: an attribute is predicted present when its probability is
    greater), ``device``, ``source`` (the file loaded), ``backend`` (``"shipped"``, ``"checkpoint"``,
    ``"onnx"`` or ``"pt2"``), ``image_size`` (the network's input side), ``crop_size`` (the side of the
    face window it sees, in pixels of the 178x218 aligned face), ``pipeline`` (the
    :class:`~smile.photos.pipeline.PhotoPipeline` photos go through).
    """

    def __init__(
        self, model: InferenceModel, options: FaceOptions | None = None, threshold: float | None = None
    ) -> None:
        description = model.description
        self.model, self.description = model, description
        self.attributes: list[str] = list(description.attributes)
        chosen = description.thresholds if threshold is None else (threshold,) * len(self.attributes)
        self.thresholds = np.array(chosen, dtype=np.float64)
        self.image_size, self.crop_size = description.image_size, description.crop_size
        self.source, self.backend, self.device = model.source.path, model.source.kind, model.device
        uint8 = description.input_dtype == "uint8"
        self.pipeline = PhotoPipeline(self.image_size, self.crop_size, options, uint8=uint8)
        #: whether the model knows only drawn faces (trained on ``smile synthetic`` data, as the demo)
        self.synthetic = description.synthetic
        if self.synthetic:
            warnings.warn(DRAWN_FACES.format(source=self.source), UserWarning, stacklevel=3)

    def __repr__(self) -> str:
        return f"Predictor({str(self.source)!r}, backend={self.backend!r}, attributes={self.attributes})"

    @property
    def options(self) -> FaceOptions:
        """How faces are found (detector, minimum face, no-face rule, pixel limit)."""
        return self.pipeline.options

    def with_options(self, aligned: bool | None = None, **changes: Any) -> Predictor:
        """This predictor with some :class:`~smile.faces.options.FaceOptions` changed, or taking its
        inputs as aligned crops (``aligned``); the network is shared."""
        other = object.__new__(Predictor)
        other.__dict__.update(self.__dict__)
        other.pipeline = PhotoPipeline(
            self.image_size,
            self.crop_size,
            replace(self.options, **changes),
            aligned=self.pipeline.aligned if aligned is None else aligned,
            uint8=self.pipeline.uint8,
        )
        return other

    # --- the steps, for callers that run them apart (smile serve) ---------------------------------

    def detect(self, image: ImageInput, channels: str = "RGB") -> tuple[Image.Image, list[Face]]:
        """The image (RGB, upright) and its faces, left to right, by the no-face rule."""
        picture = self.pipeline.read(image, channels)
        return picture, self.pipeline.faces(picture)

    def tensor(self, crops: Sequence[Image.Image]) -> Tensor:
        """178x218 CelebA-framed crops as the network's input batch."""
        return self.pipeline.tensor(crops)

    def probabilities(self, batch: Tensor) -> np.ndarray:
        """``(N, K)`` probabilities for a prepared batch (:meth:`tensor`)."""
        return self.model.probabilities(batch)

    def records(self, faces: Sequence[Face], probabilities: np.ndarray) -> list[FaceRecord]:
        """One :class:`FaceRecord` per face."""
        return [
            FaceRecord(
                face=index,
                box=tuple(int(v) for v in face.box),  # type: ignore[arg-type]
                score=None if face.score is None else float(face.score),
                probabilities={name: float(p) for name, p in zip(self.attributes, row)},
                predicted=dict(zip(self.attributes, self.decide(row).tolist())),
                method=face.method,
            )
            for index, (face, row) in enumerate(zip(faces, probabilities))
        ]

    # --- the public calls --------------------------------------------------------------------------

    def predict(
        self, image: ImageInput | Sequence[ImageInput], channels: str = "RGB"
    ) -> list[FaceRecord] | list[list[FaceRecord]]:
        """The faces of ``image`` (a list of records, left to right), or, for a list or tuple of images,
        one such list per image. A photo without a detected face gives one ``whole_image`` record under
        the default no-face rule, none under ``no_face="skip"``. All faces go through the network in
        one batch."""
        many = isinstance(image, (list, tuple))
        found = [self.detect(item, channels)[1] for item in (image if many else [image])]  # type: ignore[union-attr]
        probabilities = self.probabilities(self.tensor([face.aligned for faces in found for face in faces]))
        results, start = [], 0
        for faces in found:
            results.append(self.records(faces, probabilities[start : start + len(faces)]))
            start += len(faces)
        return results if many else results[0]

    def predict_aligned(self, images: ImageInput | Sequence[ImageInput], channels: str = "RGB") -> np.ndarray:
        """``(N, K)`` probabilities for faces already in CelebA's framing (``img_align_celeba``, 178x218;
        other sizes are resized to it), without detection. One image gives ``(1, K)``."""
        items = images if isinstance(images, (list, tuple)) else [images]
        crops = [celeba_frame(self.pipeline.read(item, channels)) for item in items]
        return self.probabilities(self.tensor(crops))

    def predict_files(
        self,
        files: Iterable[Path],
        batch_size: int = 64,
        on_photo: Callable[[PhotoFaces, list[PhotoRow]], None] | None = None,
    ) -> list[PhotoRow]:
        """The predictions CSV's rows for ``files`` (:mod:`smile.photos.predictions`), in order: the
        faces of several photos go through the network together, ``batch_size`` at most at a time;
        ``on_photo(photo, rows)`` is called for each photo while its picture is in memory (annotated
        copies). A file that will not decode gets an ``unreadable`` row and the others still run."""
        rows: list[PhotoRow] = []
        pending: list[PhotoFaces] = []

        def flush() -> None:
            crops = [face.aligned for photo in pending for face in photo.faces]
            probabilities = self.probabilities(self.tensor(crops))
            start = 0
            for photo in pending:
                count = len(photo.faces)
                these = photo_rows(photo, probabilities[start : start + count])
                start += count
                rows.extend(these)
                if on_photo is not None:
                    on_photo(photo, these)
            pending.clear()

        for photo in self.pipeline.photos(files):
            pending.append(photo)
            if sum(len(p.faces) for p in pending) >= batch_size:
                flush()
        flush()
        return rows

    def predict_video(
        self,
        source: str | Path | Iterable[Any],
        every: int | None = None,
        fps: float | None = None,
        smoothing: float | None = None,
        detect_every: int | None = None,
        channels: str = "RGB",
        rate: float | None = None,
    ) -> Iterator[FrameResult]:
        """The frames of a video, each as a :class:`~smile.video.pipeline.FrameResult` (index, time,
        and its faces, each with a stable ``track`` id, the frame's raw probabilities, the smoothed
        ones and the decision on them), yielded as they come; the video is read as a stream, never
        whole.

        ``source``: a video file, or an iterable of numpy frames (``HxWx3`` uint8, RGB unless
        ``channels="BGR"``, as OpenCV's camera gives them) or of ``(time, frame)`` pairs; numpy frames
        are timed ``index / rate`` when ``rate`` (frames a second) is given, else as they arrive.
        ``every``: predict every N-th frame; ``fps``: at most that many frames a second (default:
        every frame). ``smoothing``: the time constant, in seconds, of each track's moving average
        (default 0.2; 0: off). ``detect_every``: a full face detection every this many frames, the
        detector's quick second look at the tracked faces in between (default 5; 1: detect on every
        frame, as on photos). :mod:`smile.video` has the details and the measurements behind them."""
        from smile.video import DEFAULT_DETECT_EVERY
        from smile.video import DEFAULT_SMOOTHING as DEFAULT_TAU
        from smile.video.pipeline import predict_video

        return predict_video(
            self,
            source,
            every=every,
            fps=fps,
            smoothing=DEFAULT_TAU if smoothing is None else smoothing,
            detect_every=DEFAULT_DETECT_EVERY if detect_every is None else detect_every,
            channels=channels,
            rate=rate,
        )

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Boolean decisions: each probability greater than its attribute's threshold (:attr:`thresholds`)."""
        return np.asarray(probabilities) > self.thresholds


def load(
    source: str | Path = DEFAULT_MODEL,
    device: str | torch.device | None = "cpu",
    detector: str = FaceOptions.detector,
    min_face: int = FaceOptions.min_face,
    threshold: float | None = None,
    max_pixels: int | None = FaceOptions.max_pixels,
    no_face: str = FaceOptions.no_face,
) -> Predictor:
    """Load a shipped model (``"smiling"``, the default, or ``"attributes"``), a checkpoint (a file, or
    ``best``/``last``: the newest run's) or an exported ``.onnx`` or ``.pt2`` file. A file of a shipped
    model's name in the current folder wins.

    ``device``: ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"`` or ``"auto"``. ``detector``, ``min_face``,
    ``max_pixels`` and ``no_face`` are :class:`~smile.faces.options.FaceOptions`, as in ``smile predict``;
    ``threshold``, when given, replaces the model's own per-attribute thresholds (0.5 unless it was
    trained with ``model.threshold_criterion``) in the records' decisions.
    """
    options = FaceOptions(detector=detector, min_face=min_face, no_face=no_face, max_pixels=max_pixels)  # type: ignore[arg-type]
    return Predictor(load_model(source, device), options, threshold)
