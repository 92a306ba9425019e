"""Use a trained model from Python: ``smile.load`` and :class:`Predictor`.

``load`` takes a checkpoint (a path, or ``best``/``last`` as on the command line) or a file written by
``python -m smile export --format onnx``. ``Predictor.predict`` runs photos through the photo pipeline
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from smile.data.celeba import CROP_SIZE
from smile.errors import SmileError
from smile.evaluation.thresholds import DEFAULT_THRESHOLD
from smile.faces.aligner import Face
from smile.faces.images import ImageError, ImageInput, celeba_frame
from smile.faces.options import FaceOptions
from smile.photos.pipeline import PhotoFaces, PhotoPipeline
from smile.photos.predictions import PhotoRow, photo_rows
from smile.shipped import DEFAULT as DEFAULT_MODEL

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

    Attributes: ``attributes`` (names, in output order), ``thresholds`` (one per attribute: an attribute
    is predicted present when its probability is greater), ``device``, ``source`` (the file loaded),
    ``backend`` (``"shipped"``, ``"checkpoint"`` or ``"onnx"``), ``image_size`` (the network's input side), ``crop_size``
    (the side of the face window it sees, in pixels of the 178x218 aligned face), ``pipeline`` (the
    :class:`~smile.photos.pipeline.PhotoPipeline` photos go through).
    """

    def __init__(
        self,
        network: Callable[[Tensor], np.ndarray],
        metadata: dict[str, Any],
        source: Path,
        backend: str,
        device: torch.device,
        options: FaceOptions | None = None,
        threshold: float | None = None,
    ) -> None:
        self.attributes: list[str] = list(metadata["attributes"])
        saved = metadata.get("thresholds") or {}  # files exported before thresholds were saved: 0.5
        self.thresholds = np.array(
            [
                threshold if threshold is not None else saved.get(name, DEFAULT_THRESHOLD)
                for name in self.attributes
            ],
            dtype=np.float64,
        )
        self.image_size = int(metadata["input"]["shape"][-1])
        self.crop_size = int(metadata["input"].get("crop_size", CROP_SIZE))  # absent: exported before it
        self.metadata, self.source, self.backend, self.device = metadata, source, backend, device
        uint8 = metadata["input"]["dtype"] == "uint8"
        self.pipeline = PhotoPipeline(self.image_size, self.crop_size, options, uint8=uint8)
        self._network = network
        #: whether the model knows only drawn faces (trained on ``smile synthetic`` data, as the demo)
        self.synthetic = metadata.get("trained_on") == "synthetic faces"
        if self.synthetic:
            warnings.warn(DRAWN_FACES.format(source=source), UserWarning, stacklevel=3)

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
        if len(batch) == 0:
            return np.zeros((0, len(self.attributes)), dtype=np.float32)
        return self._network(batch)

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

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Boolean decisions: each probability greater than its attribute's threshold (:attr:`thresholds`)."""
        return np.asarray(probabilities) > self.thresholds


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SmileError(f"device={str(device)!r}: CUDA is not available here; use device='cpu'")
    return device


def load(
    source: str | Path = DEFAULT_MODEL,
    device: str | torch.device | None = "cpu",
    detector: str = FaceOptions.detector,
    min_face: int = FaceOptions.min_face,
    threshold: float | None = None,
    max_pixels: int | None = FaceOptions.max_pixels,
    no_face: str = FaceOptions.no_face,
) -> Predictor:
    """Load a shipped model (``"smiling"``, the default, or ``"attributes"``: :mod:`smile.shipped`), a
    checkpoint (a file, or ``best``/``last``: the newest run's) or an exported ``.onnx`` file. A file of
    a shipped model's name in the current folder wins.

    ``device``: ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"`` or ``"auto"``. ``detector``, ``min_face``,
    ``max_pixels`` and ``no_face`` are :class:`~smile.faces.options.FaceOptions`, as in ``smile predict``;
    ``threshold``, when given, replaces the model's own per-attribute thresholds (0.5 unless it was
    trained with ``model.threshold_criterion``) in the records' decisions.
    """
    from smile.checkpoints import resolve_checkpoint
    from smile.shipped import probability_model, shipped

    options = FaceOptions(detector=detector, min_face=min_face, no_face=no_face, max_pixels=max_pixels)  # type: ignore[arg-type]
    torch_device = _device(device)
    path = Path(source)
    if path.suffix == ".onnx":
        path = resolve_checkpoint(source)  # a file, or best.onnx / last.onnx: the newest run's export
        from smile.export import read_metadata

        network, metadata, backend = _onnx_network(path, torch_device), read_metadata(path), "onnx"
    elif (model := shipped(source)) is not None:
        path, backend = model.path, "shipped"
        network, metadata = _network(*probability_model(model), torch_device)
    else:
        path = resolve_checkpoint(source)
        from smile.export import load_for_export

        network, metadata = _network(*load_for_export(path), torch_device)
        backend = "checkpoint"
    return Predictor(network, metadata, path, backend, torch_device, options, threshold)


def _network(model: torch.nn.Module, metadata: dict[str, Any], device: torch.device):
    """``model`` on ``device`` as a function batch -> probabilities (numpy), and ``metadata``."""
    model = model.to(device).eval()

    def run(batch: Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(batch.to(device)).float().cpu().numpy()

    run.module = model  # type: ignore[attr-defined]  # the torch module itself (smile.photos.bulk)
    return run, metadata


def _onnx_network(path: Path, device: torch.device):
    try:
        import onnxruntime
    except ImportError as err:
        raise SmileError("running an ONNX file needs onnxruntime: pip install 'smile[export]'") from err
    from smile.export import INPUT_NAME

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    session = onnxruntime.InferenceSession(str(path), providers=providers)

    def run(batch: Tensor) -> np.ndarray:
        return session.run(None, {INPUT_NAME: batch.numpy()})[0]  # thread-safe

    return run
