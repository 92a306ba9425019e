"""Predict on any photo: find the faces of a file or folder, frame them like CelebA, write a CSV.

``python -m smile predict --ckpt_path best.ckpt --data.predict_path PATH`` makes
:class:`~smile.data.datamodule.CelebADataModule` serve a :class:`PhotoFaces` dataset instead of the
test split. It lists ``PATH`` (one file, or every file under a folder, recursively, hidden ones
excepted), opens each file, finds its faces with :class:`smile.photos.faces.FaceAligner` (MTCNN by default)
and aligns each face to CelebA's 178x218 framing; the crops then go through the usual
:func:`~smile.data.pil_transforms.eval_transform`. With ``aligned=True`` the files are taken to be
CelebA-style aligned crops already and are used whole (resized to 178x218 if they are another size).

Every file gets at least one row in the CSV (:func:`write_predictions`): one per face, with its box and
probabilities (``status`` ``ok``); ``unreadable: <reason>`` for a file that is not an image or is
corrupt (it is reported and skipped, the rest still run). When no face is found, ``no_face="whole"``
(the default) takes the whole image as a tight face crop (:func:`smile.photos.faces.whole_image_transform`)
and predicts on it (``status`` ``whole_image``): many users' photos are face crops too close for the
detector; ``no_face="skip"`` writes a ``no_face`` row without probabilities instead.

Detection runs once, up front, in :meth:`PhotoFaces.from_path`; the crops are cut again from the
photo when the loader asks for them, so memory does not grow with the number of faces.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps
from torch.utils.data import Dataset

from smile.decisions import DEFAULT_THRESHOLD, present
from smile.errors import DataError, SmileError
from smile.io import atomic_write
from smile.photos.faces import ALIGNED_SIZE  # OpenCV is imported only when a face is detected or warped

OK, NO_FACE, UNREADABLE, FAILED = "ok", "no_face", "unreadable", "failed"
WHOLE_IMAGE = "whole_image"  # no face found: the whole image predicted on as a face crop
PREDICTED = (OK, WHOLE_IMAGE)  # rows that get probabilities
NO_FACE_CHOICES = ("whole", "skip")
CSV_COLUMNS = ("image", "face", "box_x", "box_y", "box_w", "box_h", "score", "status")
_ANNOTATED_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


class ImageTooLarge(SmileError, ValueError):
    """An image with more pixels than the caller accepts."""


@dataclass
class PhotoRow:
    """One row of the predictions CSV: a face of a photo, or a photo without a usable face.

    ``face`` is the face's index in its photo (left to right), ``box`` its ``(x, y, w, h)`` in the photo's
    pixels (after EXIF rotation), ``score`` the detector's confidence; all ``None`` unless ``status`` is
    ``"ok"`` (a ``"whole_image"`` row has face 0, the whole image as its box and no score).
    ``transform`` maps photo coordinates to the 178x218 crop (``None``: the file is the crop).
    """

    image: Path
    status: str
    face: int | None = None
    box: tuple[int, int, int, int] | None = None
    score: float | None = None
    transform: np.ndarray | None = None


def predict_shorthands(args: list[str]) -> list[str]:
    """``predict ... --aligned`` (no value) means ``--data.aligned=true``."""
    if not args or args[0] != "predict":
        return args
    return ["--data.aligned=true" if arg == "--aligned" else arg for arg in args]


def load_photo(path: Path | IO[bytes], max_pixels: int | None = None) -> Image.Image:
    """Open an image file as RGB (:func:`rgb_image`), turned upright by its EXIF orientation (phone
    photos). With ``max_pixels``, a larger image is refused (:class:`ImageTooLarge`) before it is decoded."""
    with Image.open(path) as image:
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise ImageTooLarge(
                f"the image is {image.width}x{image.height} = {image.width * image.height:,} pixels; "
                f"at most {max_pixels:,} are accepted"
            )
        image.load()
        upright = ImageOps.exif_transpose(image)
        return rgb_image(upright if upright is not None else image)


def rgb_image(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: transparency composited over white, 16- and 32-bit greys scaled to 8 bits
    (``convert("RGB")`` would clip them to white), palettes and CMYK converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        top = 65535.0 if image.mode.startswith("I;16") or image.getextrema()[1] > 255 else 255.0
        grey = np.asarray(image, dtype=np.float64) * (255.0 / top)
        return Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def celeba_frame(image: Image.Image) -> Image.Image:
    """An image taken to be an aligned CelebA-style crop, at CelebA's 178x218 (resized if another size)."""
    return image if image.size == ALIGNED_SIZE else image.resize(ALIGNED_SIZE, Image.Resampling.BICUBIC)


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, Image.UnidentifiedImageError):
        text = "not an image (or an unsupported format)"
    return text[:200]


def list_photos(path: str | Path, exclude: Sequence[str | Path] = ()) -> list[Path]:
    """``path`` itself if it is a file, else every file under it (recursively, sorted), hidden ones and
    those under ``exclude`` left out."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"data.predict_path {path} does not exist: give an image file or a folder of them")
    skip = [Path(folder).resolve() for folder in exclude]
    files = []
    for candidate in sorted(path.rglob("*")):
        relative = candidate.relative_to(path)
        if any(part.startswith(".") for part in relative.parts) or not candidate.is_file():
            continue
        resolved = candidate.resolve()
        if any(resolved.is_relative_to(folder) for folder in skip):
            continue
        files.append(candidate)
    if not files:
        raise DataError(f"data.predict_path {path} holds no files to predict on")
    return files


class PhotoFaces(Dataset):
    """``(image tensor, row index)`` for every face found in a set of photos.

    ``rows`` lists every CSV row (faces, photos without a face, unreadable files); the dataset serves
    only the rows to predict on (``ok`` and ``whole_image``), and :attr:`row_of` maps its indices to rows.
    """

    def __init__(
        self,
        rows: list[PhotoRow],
        transform: Callable[[Image.Image], torch.Tensor],
        root: Path | None = None,
        annotate_dir: str | Path | None = None,
    ) -> None:
        self.rows = rows
        self.row_of = [i for i, row in enumerate(rows) if row.status in PREDICTED]
        self.transform = transform
        self.root = root
        self.annotate_dir = None if annotate_dir is None else Path(annotate_dir)
        self._last: tuple[Path, Image.Image] | None = None  # a photo's faces come one after another

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        transform: Callable[[Image.Image], torch.Tensor],
        aligned: bool = False,
        detector: str | Callable = "auto",
        annotate_dir: str | Path | None = None,
        verbose: bool = True,
        min_face: int = 40,
        no_face: str = "whole",
    ) -> PhotoFaces:
        """Open every file of ``path`` and find its faces (or, ``aligned``, take each file as one).

        ``no_face``: what a photo without a detected face gets: ``"whole"``, a ``whole_image`` row that
        takes the whole image as a face crop; ``"skip"``, a ``no_face`` row without probabilities."""
        if no_face not in NO_FACE_CHOICES:
            raise DataError(f"data.no_face is {no_face!r}: choose one of {', '.join(NO_FACE_CHOICES)}")
        path = Path(path)
        files = list_photos(path, exclude=[annotate_dir] if annotate_dir else [])
        aligner = None
        if not aligned:
            from smile.photos.faces import FaceAligner  # needs OpenCV (the ``photos`` extra)

            try:
                aligner = FaceAligner(detector, min_face=min_face)
            except ImportError as err:
                raise DataError(
                    f"{err}. Images that are already aligned CelebA crops can skip detection with "
                    "--data.aligned true."
                ) from err
        rows: list[PhotoRow] = []
        for file in _progress(files, verbose):
            try:
                image = load_photo(file)
            except Exception as err:  # any file that will not decode is reported and skipped
                rows.append(PhotoRow(file, f"{UNREADABLE}: {_reason(err)}"))
                continue
            if aligner is None:
                rows.append(PhotoRow(file, OK, face=0, box=(0, 0, *image.size)))
                continue
            try:
                faces = aligner(image)
            except Exception as err:  # a detector failure on one photo must not stop the others
                rows.append(PhotoRow(file, f"{FAILED}: {_reason(err)}"))
                continue
            if not faces:
                rows.append(_no_face_row(file, image.size, no_face))
            for index, face in enumerate(faces):
                rows.append(
                    PhotoRow(file, OK, index, tuple(face.box), float(face.score), np.array(face.transform))
                )
        dataset = cls(rows, transform, root=path if path.is_dir() else path.parent, annotate_dir=annotate_dir)
        if verbose:
            print(dataset.summary(), file=sys.stderr)
        return dataset

    def summary(self) -> str:
        """A few lines: how many files, faces, photos without a face, and the unreadable files."""
        files = {row.image for row in self.rows}
        with_face = {row.image for row in self.rows if row.status == OK}
        faces = sum(1 for row in self.rows if row.status == OK)
        whole = sum(1 for row in self.rows if row.status == WHOLE_IMAGE)
        no_face = sum(1 for row in self.rows if row.status == NO_FACE)
        bad = [row for row in self.rows if row.status not in (OK, NO_FACE, WHOLE_IMAGE)]
        without = f"{whole + no_face} images without a face" + (
            f" ({whole} predicted whole, as face crops)" if whole else ""
        )
        lines = [
            f"{len(files)} files: {faces} faces in {len(with_face)} images, {without}, {len(bad)} skipped"
        ]
        lines += [f"  skipped {row.image}: {row.status}" for row in bad]
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.row_of)

    def crop(self, index: int) -> Image.Image:
        """The 178x218 CelebA-framed crop of the ``index``-th face."""
        row = self.rows[self.row_of[index]]
        if self._last is not None and self._last[0] == row.image:
            image = self._last[1]
        else:
            try:
                image = load_photo(row.image)
            except Exception as err:
                raise DataError(f"{row.image}: could not be read again ({_reason(err)})") from err
            self._last = (row.image, image)
        if row.transform is None:
            return celeba_frame(image)
        from smile.photos.faces import warp

        return warp(image, row.transform, ALIGNED_SIZE)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.crop(index)), self.row_of[index]


def _no_face_row(file: Path, size: tuple[int, int], no_face: str) -> PhotoRow:
    """The row of a photo in which no face was found (see :meth:`PhotoFaces.from_path`)."""
    if no_face == "skip":
        return PhotoRow(file, NO_FACE)
    from smile.photos.faces import whole_image_transform

    return PhotoRow(file, WHOLE_IMAGE, face=0, box=(0, 0, *size), transform=whole_image_transform(size))


def _progress(files: list[Path], verbose: bool):
    if not verbose or len(files) < 20:
        return files
    from tqdm import tqdm

    return tqdm(files, desc="Finding faces", unit="image", file=sys.stderr, disable=None)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def write_predictions(
    dataset: PhotoFaces,
    probabilities: torch.Tensor,
    indices: Sequence[int],
    attributes: Sequence[str],
    path: Path,
    thresholds: Sequence[float] | None = None,
) -> Path:
    """Write the CSV (one row per :class:`PhotoRow`, probabilities and ``predicted`` left empty unless
    predicted on) and, when the dataset has an ``annotate_dir``, the annotated copies. ``indices`` are
    dataset indices, one per row of ``probabilities``; ``thresholds`` decide what is ``predicted``
    (default 0.5 for each attribute)."""
    thresholds = list(thresholds) if thresholds is not None else [DEFAULT_THRESHOLD] * len(attributes)
    by_row: dict[int, list[float]] = {
        dataset.row_of[index]: values for index, values in zip(indices, probabilities.tolist())
    }
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CSV_COLUMNS, *attributes, "predicted"])
        for i, row in enumerate(dataset.rows):
            box = row.box if row.box is not None else ("", "", "", "")
            values = by_row.get(i)
            probs = [f"{p:.6f}" for p in values] if values is not None else [""] * len(attributes)
            decided = present(values, attributes, thresholds) if values is not None else ""
            face = "" if row.face is None else row.face
            writer.writerow([str(row.image), face, *box, _fmt(row.score), row.status, *probs, decided])
    faces = sum(1 for row in dataset.rows if row.status == OK)
    whole = sum(1 for row in dataset.rows if row.status == WHOLE_IMAGE)
    print(f"Wrote {len(dataset.rows)} rows ({faces} faces, {whole} whole images) to {path}")
    if dataset.annotate_dir is not None:
        written = annotate(dataset, by_row, attributes, thresholds)
        print(f"Wrote {written} annotated images to {dataset.annotate_dir}")
    return path


# --- annotated copies -------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def label_lines(
    probs: Sequence[float], attributes: Sequence[str], thresholds: Sequence[float], top: int = 3
) -> list[str]:
    """Text for one face: every attribute's probability when there are at most ``top``, else the ``top``
    most probable attributes among those predicted (above their thresholds)."""
    triples = list(zip(attributes, probs, thresholds))
    if len(triples) > top:
        triples = sorted((t for t in triples if t[1] > t[2]), key=lambda t: -t[1])[:top]
        if not triples:
            return ["no attribute predicted"]
    return [f"{name} {p:.2f}" for name, p, _ in triples]


def annotated_path(dataset: PhotoFaces, image: Path) -> Path:
    """Where the annotated copy of ``image`` goes: its path relative to the predicted folder, under
    ``annotate_dir``; a format Pillow may not write becomes ``.png``."""
    assert dataset.annotate_dir is not None
    try:
        relative = image.relative_to(dataset.root) if dataset.root is not None else Path(image.name)
    except ValueError:
        relative = Path(image.name)
    if relative.suffix.lower() not in _ANNOTATED_SUFFIXES:
        relative = relative.with_name(relative.name + ".png")
    return dataset.annotate_dir / relative


def draw_faces(
    image: Image.Image,
    faces: list[tuple[PhotoRow, list[float] | None]],
    attributes: Sequence[str],
    thresholds: Sequence[float],
) -> Image.Image:
    """``image`` with each face's box and labels drawn: green when the first attribute is predicted
    (above its threshold), red when not; a banner when no face was found (and none was predicted on)."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    side = max(image.size)
    width = max(2, round(side / 300))
    if not faces:
        font = _font(max(12, round(side / 30)))
        draw.rectangle((0, 0, image.width, font.size + 2 * width + 4), fill=(0, 0, 0))
        draw.text((4, width + 2), "no face found", fill=(255, 255, 0), font=font)
        return image
    for row, probs in faces:
        assert row.box is not None
        x, y, w, h = row.box
        positive = probs is not None and probs[0] > thresholds[0]
        colour = (40, 220, 60) if positive else (235, 50, 50)
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=width)
        name = "no face found: whole image" if row.status == WHOLE_IMAGE else f"#{row.face}"
        lines = [name] + (label_lines(probs, attributes, thresholds) if probs is not None else [])
        font = _font(max(11, min(round(w / 7), round(side / 25))))
        text = "\n".join(lines)
        left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=2)
        tw, th = right - left + 6, bottom - top + 6
        tx = min(max(x, 0), max(image.width - tw, 0))
        ty = y + h + width if y + h + width + th <= image.height else max(y - th - width, 0)
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=(0, 0, 0))
        draw.multiline_text((tx + 3 - left, ty + 3 - top), text, fill=colour, font=font, spacing=2)
    return image


def annotate(
    dataset: PhotoFaces,
    by_row: dict[int, list[float]],
    attributes: Sequence[str],
    thresholds: Sequence[float],
) -> int:
    """Write annotated copies of the readable photos; returns how many."""
    groups: dict[Path, list[tuple[PhotoRow, list[float] | None]]] = {}
    for i, row in enumerate(dataset.rows):
        if row.status in PREDICTED:
            groups.setdefault(row.image, []).append((row, by_row.get(i)))
        elif row.status == NO_FACE:
            groups.setdefault(row.image, [])
    written = 0
    for image_path, faces in groups.items():
        try:
            image = load_photo(image_path)
        except Exception as err:
            print(f"warning: {image_path}: not annotated ({_reason(err)})", file=sys.stderr)
            continue
        out = annotated_path(dataset, image_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        drawn = draw_faces(image, faces, attributes, thresholds)
        suffix = out.suffix.lower()
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}[suffix]
        with atomic_write(out, "wb") as handle:
            drawn.save(handle, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
        written += 1
    return written
