"""What predicting on photos writes: a CSV row (or a JSON object, with the same fields) for every face
and for every photo without one, a short table on the terminal, and annotated copies of the photos.

Every file gets at least one row: one per face, with its box and probabilities (``status`` ``ok``, or
``whole_image`` for a photo in which no face was found and that was predicted whole, as a face crop);
``no_face`` without probabilities under the ``skip`` rule; ``unreadable: <reason>`` for a file that is
not an image or is corrupt, ``failed: <reason>`` when the detector broke on it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from smile.evaluation.thresholds import present
from smile.faces.aligner import WHOLE_IMAGE
from smile.io import atomic_write
from smile.photos.pipeline import PhotoFaces

OK, NO_FACE = "ok", "no_face"
PREDICTED = (OK, WHOLE_IMAGE)  # rows that get probabilities
CSV_COLUMNS = ("image", "face", "box_x", "box_y", "box_w", "box_h", "score", "status")
_ANNOTATED_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}


@dataclass
class PhotoRow:
    """One row of the predictions CSV: a face of a photo, or a photo without a usable face.

    ``face`` is the face's index in its photo (left to right), ``box`` its ``(x, y, w, h)`` in the photo's
    pixels (after EXIF rotation), ``score`` the detector's confidence (``None`` for a whole image or an
    aligned crop); ``probabilities`` one per attribute, ``None`` unless ``status`` is in :data:`PREDICTED`.
    """

    image: Path
    status: str
    face: int | None = None
    box: tuple[int, int, int, int] | None = None
    score: float | None = None
    probabilities: list[float] | None = None


def photo_rows(photo: PhotoFaces, probabilities: Sequence[Sequence[float]]) -> list[PhotoRow]:
    """The rows of one photo; ``probabilities`` has a row per face of ``photo``."""
    assert photo.source is not None
    if photo.error is not None:
        return [PhotoRow(photo.source, photo.error)]
    if not photo.faces:
        return [PhotoRow(photo.source, NO_FACE)]
    return [
        PhotoRow(
            photo.source,
            WHOLE_IMAGE if face.method == WHOLE_IMAGE else OK,
            index,
            tuple(int(v) for v in face.box),  # type: ignore[arg-type]
            None if face.score is None else float(face.score),
            [float(p) for p in probs],
        )
        for index, (face, probs) in enumerate(zip(photo.faces, probabilities))
    ]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def csv_header(attributes: Sequence[str]) -> list[str]:
    """The CSV's columns: :data:`CSV_COLUMNS`, one probability per attribute, ``predicted``."""
    return [*CSV_COLUMNS, *attributes, "predicted"]


def csv_fields(row: PhotoRow, attributes: Sequence[str], thresholds: Sequence[float]) -> list[str]:
    """One row's CSV fields: the probabilities and ``predicted`` (the attributes above their thresholds)
    left empty where nothing was predicted."""
    box = [str(v) for v in row.box] if row.box is not None else ["", "", "", ""]
    values = row.probabilities
    probs = [f"{p:.6f}" for p in values] if values is not None else [""] * len(attributes)
    decided = present(values, attributes, thresholds) if values is not None else ""
    face = "" if row.face is None else str(row.face)
    return [str(row.image), face, *box, _fmt(row.score), row.status, *probs, decided]


def write_csv(
    rows: Sequence[PhotoRow], attributes: Sequence[str], thresholds: Sequence[float], path: Path
) -> Path:
    """Write the CSV atomically: one line per row (:func:`csv_fields`)."""
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(csv_header(attributes))
        writer.writerows(csv_fields(row, attributes, thresholds) for row in rows)
    return path


def records(
    rows: Sequence[PhotoRow], attributes: Sequence[str], thresholds: Sequence[float]
) -> list[dict[str, Any]]:
    """The rows as the JSON output has them: the CSV's fields, with numbers as numbers and ``None``
    where the CSV leaves a cell empty (``predicted`` too, where nothing was predicted)."""
    out = []
    for row in rows:
        values = row.probabilities
        box = row.box if row.box is not None else (None, None, None, None)
        record: dict[str, Any] = {"image": str(row.image), "face": row.face}
        record.update(zip(CSV_COLUMNS[2:6], box))
        record["score"] = None if row.score is None else round(row.score, 4)
        record["status"] = row.status
        if values is None:
            record.update(dict.fromkeys(attributes))
        else:
            record.update((name, round(p, 6)) for name, p in zip(attributes, values))
        record["predicted"] = present(values, attributes, thresholds) if values is not None else None
        out.append(record)
    return out


def write_json(
    rows: Sequence[PhotoRow], attributes: Sequence[str], thresholds: Sequence[float], path: Path
) -> Path:
    """Write the JSON atomically: a list of :func:`records`, one object a line."""
    lines = [json.dumps(record) for record in records(rows, attributes, thresholds)]
    with atomic_write(path) as handle:
        handle.write("[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n")
    return path


def write(
    rows: Sequence[PhotoRow], attributes: Sequence[str], thresholds: Sequence[float], path: Path, fmt: str
) -> Path:
    """Write the predictions as ``fmt`` (``csv`` or ``json``)."""
    return (write_json if fmt == "json" else write_csv)(rows, attributes, thresholds, path)


def written_here(path: Path) -> bool:
    """Whether ``path`` is a predictions file this module wrote (CSV or JSON, told by its first bytes),
    which a later ``smile predict`` on its folder leaves out instead of reporting it as no image."""
    if path.suffix.lower() not in (".csv", ".json"):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(256).decode("utf-8", errors="replace")
    except OSError:
        return False
    if path.suffix.lower() == ".csv":
        return head.startswith(",".join(CSV_COLUMNS) + ",")
    packed = "".join(head.split())
    return packed.startswith('[{"image":') or packed == "[]"


def summary(rows: Sequence[PhotoRow]) -> str:
    """A few lines: how many files, faces, photos without a face, and the unreadable files."""
    files = {row.image for row in rows}
    with_face = {row.image for row in rows if row.status == OK}
    faces = sum(1 for row in rows if row.status == OK)
    whole = sum(1 for row in rows if row.status == WHOLE_IMAGE)
    no_face = sum(1 for row in rows if row.status == NO_FACE)
    bad = [row for row in rows if row.status not in (OK, NO_FACE, WHOLE_IMAGE)]
    without = f"{whole + no_face} images without a face" + (
        f" ({whole} predicted whole, as face crops)" if whole else ""
    )
    lines = [f"{len(files)} files: {faces} faces in {len(with_face)} images, {without}, {len(bad)} skipped"]
    lines += [f"  skipped {row.image}: {row.status}" for row in bad]
    return "\n".join(lines)


def table(
    rows: Sequence[PhotoRow],
    attributes: Sequence[str],
    thresholds: Sequence[float],
    limit: int = 20,
) -> str:
    """The terminal's per-face table: file, face, box, probability and decision (of each attribute when
    there are at most three, else the attributes predicted present), at most ``limit`` rows."""
    few = len(attributes) <= 3
    head = ["file", "face", "box"] + (
        [f"P({name})" for name in attributes] + ["decision"] if few else ["present"]
    )
    lines = [head]
    for row in rows[:limit]:
        box = "" if row.box is None else "{},{} {}x{}".format(*row.box)
        face = row.status if row.face is None else str(row.face)
        if row.probabilities is None:
            values = [""] * len(attributes) + [""] if few else [""]
        elif few:
            decisions = [name for name, p, t in zip(attributes, row.probabilities, thresholds) if p > t]
            values = [f"{p:.3f}" for p in row.probabilities] + [" ".join(decisions) or "-"]
        else:
            values = [present(row.probabilities, attributes, thresholds) or "-"]
        if row.status == WHOLE_IMAGE:
            face += " (whole image)"
        lines.append([row.image.name, face, box, *values])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    if len(rows) > limit:
        text.append(f"... {len(rows) - limit} more rows")
    return "\n".join(text)


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


def annotated_path(image: Path, root: Path | None, annotate_dir: Path) -> Path:
    """Where the annotated copy of ``image`` goes: its path relative to the predicted folder ``root``,
    under ``annotate_dir``; a format Pillow may not write becomes ``.png``."""
    try:
        relative = image.relative_to(root) if root is not None else Path(image.name)
    except ValueError:
        relative = Path(image.name)
    if relative.suffix.lower() not in _ANNOTATED_FORMATS:
        relative = relative.with_name(relative.name + ".png")
    return annotate_dir / relative


def draw_faces(
    image: Image.Image,
    faces: Sequence[PhotoRow],
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
    for row in faces:
        assert row.box is not None
        x, y, w, h = row.box
        probs = row.probabilities
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
    picture: Image.Image,
    rows: Sequence[PhotoRow],
    attributes: Sequence[str],
    thresholds: Sequence[float],
    out: Path,
) -> None:
    """Write the annotated copy of one photo to ``out`` (atomically)."""
    faces = [row for row in rows if row.status in PREDICTED]
    drawn = draw_faces(picture, faces, attributes, thresholds)
    fmt = _ANNOTATED_FORMATS[out.suffix.lower()]
    with atomic_write(out, "wb") as handle:
        drawn.save(handle, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
