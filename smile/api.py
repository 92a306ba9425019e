"""Use a trained model from Python: ``smile.load`` and :class:`Predictor`.

``load`` takes a checkpoint (a path, or ``best``/``last`` as on the command line) or a file written by
``python -m smile export --format onnx``. ``Predictor.predict`` runs the same detection, alignment and
preprocessing as ``python -m smile predict --data.predict_path`` and returns one record per face::

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

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import functional as F

from smile.data.celeba import CROP_SIZE
from smile.data.pil_transforms import eval_transform
from smile.decisions import DEFAULT_THRESHOLD
from smile.errors import SmileError
from smile.photos.dataset import celeba_frame, load_photo, rgb_image

ImageInput = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray
#: Images above this many pixels are refused before decoding (Pillow's own bomb limit is 89 million).
DEFAULT_MAX_PIXELS = 50_000_000


class ImageError(SmileError, ValueError):
    """An input that is not a usable image; the message says what was wrong and what is expected."""


@dataclass
class FaceRecord:
    """One face of a photo: its index (left to right), box ``(x, y, w, h)`` in the photo's pixels (after
    EXIF rotation), the detector's score (``None`` for aligned input), a probability per attribute and the
    decision at the attribute's threshold."""

    face: int
    box: tuple[int, int, int, int]
    score: float | None
    probabilities: dict[str, float]
    predicted: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``box`` as ``{"x", "y", "w", "h"}``."""
        x, y, w, h = self.box
        return {
            "face": self.face,
            "box": {"x": x, "y": y, "w": w, "h": h},
            "score": self.score,
            "probabilities": self.probabilities,
            "predicted": self.predicted,
        }


def to_image(
    image: ImageInput, channels: str = "RGB", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Any accepted input as an 8-bit RGB PIL image (files and bytes turned upright by their EXIF
    orientation); raises :class:`ImageError` naming what was wrong."""
    if channels not in ("RGB", "BGR"):
        raise ImageError(f"channels={channels!r}: give 'RGB' or 'BGR'")
    if isinstance(image, Image.Image):
        return rgb_image(image)
    if isinstance(image, np.ndarray):
        return _array_image(image, channels)
    if isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ImageError(
                "the image is empty (0 bytes): expected the bytes of a JPEG, PNG, WebP or BMP file"
            )
        source: Any = io.BytesIO(bytes(image))
        name = "the image data"
    elif isinstance(image, (str, Path)):
        source = Path(image)
        if not source.is_file():
            raise ImageError(f"{source}: no such file")
        name = str(source)
    else:
        raise ImageError(
            f"cannot read an image from a {type(image).__name__}: give a path, bytes, a PIL image or a numpy array"
        )
    try:
        return load_photo(source, max_pixels=max_pixels)
    except SmileError:
        raise
    except Image.UnidentifiedImageError as err:
        raise ImageError(f"{name} is not an image Pillow can read (JPEG, PNG, WebP, BMP, ...)") from err
    except Image.DecompressionBombError as err:
        raise ImageError(f"{name}: {err}") from err
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt files
        raise ImageError(
            f"{name} is a damaged or truncated image: {' '.join(str(err).split())[:200]}"
        ) from err


def _array_image(array: np.ndarray, channels: str) -> Image.Image:
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ImageError(f"a numpy image must be uint8 (or uint16), got {array.dtype}")
    if array.ndim == 2:
        return Image.fromarray(array).convert("RGB")
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"a numpy image must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if channels == "BGR":
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    return rgb_image(Image.fromarray(np.ascontiguousarray(array)))


class Predictor:
    """A trained model ready to predict on photos; made by :func:`load`.

    Attributes: ``attributes`` (names, in output order), ``thresholds`` (one per attribute: an attribute
    is predicted present when its probability is greater), ``device``, ``source`` (the file loaded),
    ``backend`` (``"checkpoint"`` or ``"onnx"``), ``image_size`` (the network's input side), ``crop_size``
    (the side of the face window it sees, in pixels of the 178x218 aligned face).
    """

    def __init__(
        self,
        network: Any,
        metadata: dict[str, Any],
        source: Path,
        backend: str,
        device: torch.device,
        detector: str = "auto",
        min_face: int = 40,
        threshold: float | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
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
        self.uint8_input = metadata["input"]["dtype"] == "uint8"
        self.metadata, self.source, self.backend, self.device = metadata, source, backend, device
        self.detector, self.min_face, self.max_pixels = detector, min_face, max_pixels
        self._network = network
        from smile.export import split_transform  # the steps before ToTensor, as in training

        self._image_steps = split_transform(eval_transform(self.image_size, self.crop_size))[0]
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Predictor({str(self.source)!r}, backend={self.backend!r}, attributes={self.attributes})"

    # --- preprocessing ---------------------------------------------------------------------------

    def aligner(self):
        """This thread's :class:`smile.photos.faces.FaceAligner` (detectors are not shared between threads)."""
        aligner = getattr(self._local, "aligner", None)
        if aligner is None:
            from smile.photos.faces import FaceAligner

            aligner = self._local.aligner = FaceAligner(self.detector, min_face=self.min_face)
        return aligner

    def tensor(self, crops: Sequence[Image.Image]) -> Tensor:
        """178x218 CelebA-framed crops as the network's input batch (the evaluation transform)."""
        size = (len(crops), 3, self.image_size, self.image_size)
        if not crops:
            return torch.zeros(size, dtype=torch.uint8 if self.uint8_input else torch.float32)
        pixels = []
        for crop in crops:
            for step in self._image_steps:
                crop = step(crop)
            pixels.append(F.pil_to_tensor(crop))
        batch = torch.stack(pixels)
        return batch if self.uint8_input else batch.float().div(255.0)  # as ToTensor does

    def detect(self, image: ImageInput, channels: str = "RGB") -> tuple[Image.Image, list[Any]]:
        """The image (RGB, upright) and its faces (:class:`smile.photos.faces.Face`, left to right)."""
        picture = to_image(image, channels, self.max_pixels)
        return picture, self.aligner()(picture)

    # --- the network -------------------------------------------------------------------------------

    def probabilities(self, batch: Tensor) -> np.ndarray:
        """``(N, K)`` probabilities for a prepared batch (:meth:`tensor`)."""
        if len(batch) == 0:
            return np.zeros((0, len(self.attributes)), dtype=np.float32)
        return self._network(batch)

    def records(self, faces: Sequence[Any], probabilities: np.ndarray) -> list[FaceRecord]:
        """One :class:`FaceRecord` per detected face."""
        return [
            FaceRecord(
                face=index,
                box=tuple(int(v) for v in face.box),  # type: ignore[arg-type]
                score=float(face.score),
                probabilities={name: float(p) for name, p in zip(self.attributes, row)},
                predicted=dict(zip(self.attributes, self.decide(row).tolist())),
            )
            for index, (face, row) in enumerate(zip(faces, probabilities))
        ]

    # --- the public calls --------------------------------------------------------------------------

    def predict(
        self, image: ImageInput | Sequence[ImageInput], channels: str = "RGB"
    ) -> list[FaceRecord] | list[list[FaceRecord]]:
        """The faces of ``image`` (a list of records, left to right; empty when there is none), or, for a
        list or tuple of images, one such list per image. Detection and alignment are those of
        ``python -m smile predict``; all faces go through the network in one batch."""
        many = isinstance(image, (list, tuple))
        found = [self.detect(item, channels)[1] for item in (image if many else [image])]  # type: ignore[union-attr]
        crops = [face.aligned for faces in found for face in faces]
        probabilities = self.probabilities(self.tensor(crops))
        results, start = [], 0
        for faces in found:
            results.append(self.records(faces, probabilities[start : start + len(faces)]))
            start += len(faces)
        return results if many else results[0]

    def predict_aligned(self, images: ImageInput | Sequence[ImageInput], channels: str = "RGB") -> np.ndarray:
        """``(N, K)`` probabilities for faces already in CelebA's framing (``img_align_celeba``, 178x218;
        other sizes are resized to it), without detection. One image gives ``(1, K)``."""
        items = images if isinstance(images, (list, tuple)) else [images]
        crops = [celeba_frame(to_image(item, channels, self.max_pixels)) for item in items]
        return self.probabilities(self.tensor(crops))

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
    source: str | Path,
    device: str | torch.device | None = "cpu",
    detector: str = "auto",
    min_face: int = 40,
    threshold: float | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Predictor:
    """Load a checkpoint (a file, or ``best``/``last``: the newest run's) or an exported ``.onnx`` file.

    ``device``: ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"`` or ``"auto"``. ``detector`` and ``min_face``
    are those of ``predict`` (``--data.detector``, ``--data.min_face``); ``threshold``, when given, replaces
    the model's own per-attribute thresholds (0.5 unless it was trained with ``model.threshold_criterion``)
    in the records' decisions.
    """
    from smile.training.checkpoints import resolve_checkpoint

    torch_device = _device(device)
    path = Path(source)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise SmileError(f"{path}: no such ONNX file")
        from smile.export import read_metadata

        network, metadata, backend = _onnx_network(path, torch_device), read_metadata(path), "onnx"
    else:
        path = resolve_checkpoint(source)
        network, metadata = _checkpoint_network(path, torch_device)
        backend = "checkpoint"
    return Predictor(
        network, metadata, path, backend, torch_device, detector, min_face, threshold, max_pixels
    )


def _checkpoint_network(path: Path, device: torch.device):
    from smile.export import load_for_export

    model, metadata = load_for_export(path)
    model = model.to(device).eval()

    def run(batch: Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(batch.to(device)).float().cpu().numpy()

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
