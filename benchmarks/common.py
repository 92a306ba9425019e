"""What the benchmark scripts share (``from common import ...``: ``benchmarks/`` is on ``sys.path`` when a
script runs, and in the tests through ``tests/helpers/benchmarks.py``): paths, thread and subprocess
settings, the quiet Lightning Trainer, a checkpoint's model and its probabilities, a split's labels, and
OpenCV's Haar smile cascade (:class:`HaarSmile`). It puts the project on ``sys.path`` and imports only the
standard library, so that a script can still set its threads (:func:`set_threads`) before numpy, OpenCV
or torch start their pools; the timers that need torch and Lightning are in ``timing.py``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's ``smile``, installed or not
SAMPLE = ROOT.parent / "shared" / "celeba-sample"  # the real CelebA sample (official layout)
WILD = ROOT.parent / "shared" / "celeba-wild"  # photos with CelebA's labels: images/, list_attr_celeba.txt

T = TypeVar("T")


# --- the process ------------------------------------------------------------------------------------


def set_threads(count: int) -> None:
    """``count`` threads for OpenMP, OpenBLAS and MKL; call it before numpy, OpenCV or torch is imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(count)


def smile_command(*args: str) -> list[str]:
    """``python -m smile ARGS`` with this interpreter (run it with :func:`project_env`)."""
    return [sys.executable, "-m", "smile", *args]


def project_env() -> dict[str, str]:
    """This process's environment with the project first on ``PYTHONPATH``, for the ``python -m smile``
    commands a benchmark starts (in another folder, or with ``smile`` not installed)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where there are none), recorded beside wall-clock
    rates: on a busy machine they are low."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def timed(run: Callable[[], T]) -> tuple[T, float]:
    """``run()``'s result and its wall time in seconds."""
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def quiet_trainer(
    accelerator: str = "cpu",
    precision: str = "32-true",
    max_epochs: int = 1,
    train_batches: int | float | None = None,
    validate: bool = True,
    callbacks: Sequence[Any] = (),
    **settings: Any,
):
    """A Lightning Trainer for measuring, not for runs to keep: one device, no logger, no checkpoints,
    no progress bar, no model summary, no sanity validation. ``train_batches``: Lightning's
    ``limit_train_batches`` (``None``: every batch); ``validate=False``: no validation during fit;
    ``settings``: further Trainer arguments (``benchmark=True``...)."""
    import pytorch_lightning as pl

    if train_batches is not None:
        settings["limit_train_batches"] = train_batches
    if not validate:
        settings["limit_val_batches"] = 0
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=max_epochs,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **settings,
    )


# --- data and models --------------------------------------------------------------------------------


def load_split(root: Path, split: str, attribute: str = "Smiling") -> tuple[list[Path], list[int]]:
    """Image paths and ``attribute`` labels (0/1) of one split of a CelebA copy, in the split's order."""
    from smile.data.layouts import detect_layout, read_attributes, read_partition, split_files

    layout = detect_layout(root)
    table = read_attributes(layout.attributes)
    rows = split_files(table, read_partition(layout.partition), layout.partition)[split]
    labels = table.columns([attribute])[:, 0]
    return [layout.images / table.files[i] for i in rows], [int(labels[i]) for i in rows]


def load_classifier(checkpoint: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """A checkpoint's (a file, best / last, or a shipped model's name) :class:`~smile.system.AttributeClassifier` (eval mode, on the CPU), its settings
    (:class:`~smile.trained.description.ModelDescription`: ``image_size``, ``crop_size``...) and the loaded
    checkpoint itself."""
    from smile.system import AttributeClassifier
    from smile.trained.checkpoints import describe
    from smile.trained.inference import checkpoint_of

    raw = checkpoint_of(checkpoint)
    return AttributeClassifier.from_checkpoint(raw), describe(raw), raw


def probabilities(model: Any, images: Sequence[Any], batch_size: int = 64, transform: Callable | None = None):
    """``(len(images), attributes)`` probabilities of ``model`` (``predict_step``), ``batch_size`` images
    at a time: ``images`` are input tensors, or images that ``transform`` (the evaluation transform)
    turns into them one batch at a time."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            batch = torch.stack(
                [transform(image) for image in chunk] if transform is not None else list(chunk)
            )
            out.append(model.predict_step(batch, 0))
    return torch.cat(out).numpy() if out else torch.zeros(0, len(model.attributes)).numpy()


def largest(boxes: Iterable[Sequence[float]]) -> int:
    """Index of the box ``(x, y, w, h)`` with the largest area (the first of equals)."""
    areas = [float(w) * float(h) for _, _, w, h in boxes]
    return max(range(len(areas)), key=areas.__getitem__)


# --- OpenCV's smile cascade -------------------------------------------------------------------------

#: Mouth regions of the aligned 178x218 image (x0, y0, x1, y1); CelebA's mean mouth corners are at
#: (71.7, 152.1) and (106.4, 152.0), the nose tip at (88.8, 135.5).
REGIONS = {"tight": (49, 132, 129, 182), "wide": (34, 122, 144, 197)}
MIN_SIZE = (36, 18)  # the smile cascade's training window
#: The usual smile-cascade recipe on photos (OpenCV tutorials): faces, then a smile in their lower half.
HAAR_FACE = {"scaleFactor": 1.3, "minNeighbors": 5, "minSize": (30, 30)}
HAAR_SMILE = {"scaleFactor": 1.7, "minNeighbors": 22}


class HaarSmile:
    """OpenCV's smile cascade (``haarcascade_smile.xml``, in ``opencv-python-headless<5``) as a smile
    detector: :meth:`photo_score` on a photo, in the faces of the frontal-face cascade, as the usual recipe
    runs it (peers.py); :meth:`aligned_score` and :meth:`predict` on the mouth region of an aligned
    178x218 CelebA image, with a tuned setting (smile_baseline.py, whose docstring gives the rule).
    Raises ``RuntimeError`` when a cascade does not load.
    """

    def __init__(
        self, region: str = "tight", enlarge: float = 1.0, scale: float = 1.1, threshold: int = 2
    ) -> None:
        import cv2

        self.cv2 = cv2
        self.face, self.smile = (
            self._cascade(name) for name in ("haarcascade_frontalface_default.xml", "haarcascade_smile.xml")
        )
        self.region, self.enlarge, self.scale, self.threshold = region, enlarge, scale, threshold

    def _cascade(self, name: str):
        cascade = self.cv2.CascadeClassifier(self.cv2.data.haarcascades + name)
        if cascade.empty():
            raise RuntimeError(f"could not load {name} (opencv-python-headless<5 ships it)")
        return cascade

    def settings(self) -> dict[str, Any]:
        """The aligned rule's setting."""
        return {
            "region": self.region,
            "box": REGIONS[self.region],
            "enlarge": self.enlarge,
            "scaleFactor": self.scale,
            "minSize": MIN_SIZE,
            "threshold": self.threshold,
        }

    def aligned_score(self, rgb) -> int:
        """``rgb``: an aligned 178x218 image (H x W x 3 uint8)."""
        cv2 = self.cv2
        x0, y0, x1, y1 = REGIONS[self.region]
        grey = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
        if self.enlarge != 1.0:
            grey = cv2.resize(grey, None, fx=self.enlarge, fy=self.enlarge, interpolation=cv2.INTER_LINEAR)
        grey = cv2.equalizeHist(grey)
        _, counts = self.smile.detectMultiScale2(
            grey, scaleFactor=self.scale, minNeighbors=1, minSize=MIN_SIZE
        )
        return int(max(counts)) if len(counts) else 0

    def predict(self, rgb) -> int:
        """1 when the aligned image ``rgb`` is called smiling, else 0."""
        return int(self.aligned_score(rgb) >= self.threshold)

    def photo_score(self, path: Path) -> float:
        """The fraction of the faces of the photo at ``path`` in which a smile is found (NaN: no face)."""
        import numpy as np

        cv2 = self.cv2
        grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
        faces = np.reshape(self.face.detectMultiScale(grey, **HAAR_FACE), (-1, 4))
        if len(faces) == 0:
            return float("nan")
        found = [
            len(self.smile.detectMultiScale(grey[y + h // 2 : y + h, x : x + w], **HAAR_SMILE)) > 0
            for x, y, w, h in faces
        ]
        return float(np.mean(found))
