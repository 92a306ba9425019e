"""Your own labelled photos, in the two layouts users have, read into what the CelebA layouts give
(file names, 0/1 labels, splits, people) and aligned once to CelebA's framing.

- **Class folders**, for one attribute: ``ROOT/smiling/*.jpg`` and ``ROOT/not_smiling/*.jpg``
  (``data.attributes: [Smiling]``, ``data.photos.positive: smiling``), optionally under a ``train/``,
  ``val/`` and ``test/`` level.
- **A CSV** ``ROOT/*.csv`` of ``file,<attribute>,...`` with 1/0 or 1/-1 values, the files relative to
  ``ROOT/images/`` when there is such a folder, else to ``ROOT``; optional columns ``split``
  (train/val/test) and ``person`` or ``group``.

A layout that names no split gets a seeded one (``data.photos.split``, default 0.8/0.1/0.1 of the
photos, ``data.photos.seed``); with a person or group column, one person's photos all go to one split.
Each photo is then aligned once (:func:`align_photos`): read upright, its largest face found and framed
like ``img_align_celeba`` (or, without a face, the whole image under the ``whole`` rule), and saved as a
178x218 PNG in a folder keyed by the photos and the alignment settings, so a change of detector or rule
aligns them again. The data module serves that folder as it serves CelebA's images.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from smile.console import say
from smile.data.cache import CACHE_FOLDER
from smile.data.celeba import IMAGE_SUFFIXES
from smile.errors import DataError
from smile.faces.options import FaceOptions

#: Image files a class folder may hold (upper or lower case).
PHOTO_SUFFIXES = (*IMAGE_SUFFIXES, ".webp", ".bmp")
#: The folder names and CSV values that name a split, and its code (as in list_eval_partition.txt).
SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
#: CSV columns that name the photo, and that keep one person's photos in one split.
FILE_COLUMNS = ("file", "image", "filename", "path")
GROUP_COLUMNS = ("person", "group")
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
#: Bumped when the alignment changes in a way that its settings do not show.
ALIGNMENT_VERSION = 1


class PhotoOptions(TypedDict, total=False):
    """How to read and align your own labelled photos (``data.photos``): ``positive``, the class folder of
    the photos that have the attribute; ``split``, the train, val and test shares when the layout names
    no split; ``seed``, that split's seed; ``detector``, ``min_face`` and ``no_face``, the alignment's
    (:class:`~smile.faces.options.FaceOptions`)."""

    positive: str
    split: list[float]
    seed: int
    detector: str
    min_face: int
    no_face: str


@dataclass(frozen=True)
class PhotoLayout:
    """A folder of labelled photos, read: ``files`` relative to ``root``, ``labels`` ``(N, K)`` 0/1 for
    ``names``, ``splits`` ``(N,)`` 0/1/2 when the layout names them, ``groups`` (a person or group per
    photo) when it has them."""

    kind: str  # "folders" or "csv"
    root: Path
    source: Path  # the CSV, or the root of the folders
    names: list[str]
    files: list[str]
    labels: np.ndarray
    splits: np.ndarray | None = None
    groups: list[str] | None = None


def _photos_in(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in PHOTO_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _subfolders(folder: Path) -> list[Path]:
    """The class (or split) folders: not hidden, and not the caches smile keeps beside the photos."""
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != CACHE_FOLDER
    )


def _csv_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.csv") if p.is_file())


def is_photo_layout(root: str | Path) -> bool:
    """Whether ``root`` looks like one of these layouts (a CSV at its top, or folders of photos) and not
    like CelebA (whose annotation files it would hold)."""
    root = Path(root)
    if not root.is_dir():
        return False
    names = {p.name for p in root.iterdir()}
    if {"list_attr_celeba.txt", "list_attr_celeba.csv", "celeba"} & names:
        return False
    return bool(_csv_files(root)) or any(_photos_in(folder) for folder in _subfolders(root))


def read_photo_layout(
    root: str | Path, attributes: Sequence[str] | str, options: PhotoOptions
) -> PhotoLayout:
    """The layout under ``root`` read and checked; a CSV wins over class folders."""
    root = Path(root)
    csvs = _csv_files(root)
    if len(csvs) > 1:
        raise DataError(
            f"{root} holds {len(csvs)} CSV files ({', '.join(p.name for p in csvs)}); keep the one that "
            "labels the photos"
        )
    if csvs:
        return read_csv(csvs[0], attributes)
    return read_folders(root, attributes, options.get("positive"))


def read_folders(root: Path, attributes: Sequence[str] | str, positive: str | None) -> PhotoLayout:
    """Class folders for one attribute: ``ROOT/<class>/...``, or ``ROOT/<split>/<class>/...``."""
    names = [attributes] if isinstance(attributes, str) else list(attributes)
    if len(names) != 1 or names[0].lower() == "all":
        raise DataError(
            f"{root}: class folders label one attribute; give its name alone, e.g. --data.attributes "
            f"'[Smiling]' (got {names})"
        )
    top = _subfolders(root)
    split_level = bool(top) and all(folder.name.lower() in SPLIT_NAMES for folder in top)
    groups = [(SPLIT_NAMES[folder.name.lower()], folder) for folder in top] if split_level else [(None, root)]
    classes = sorted({folder.name for _, parent in groups for folder in _subfolders(parent)})
    if len(classes) != 2:
        raise DataError(
            f"{root}: expected two class folders (the photos with {names[0]} and those without), found "
            f"{len(classes)}: {', '.join(classes) or 'none'}"
        )
    positive = positive or _implied_positive(classes, names[0])
    if positive not in classes:
        raise DataError(
            f"{root}: data.photos.positive is {positive!r}; expected the name of one of the class folders "
            f"{', '.join(classes)} (the one whose photos have {names[0]})"
        )
    files, labels, splits = [], [], []
    for split, parent in groups:
        for name in classes:
            folder = parent / name
            found = _photos_in(folder) if folder.is_dir() else []
            if not found and split is None:
                raise DataError(f"{folder}: the class folder holds no photos ({', '.join(PHOTO_SUFFIXES)})")
            files += [str(path.relative_to(root)) for path in found]
            labels += [int(name == positive)] * len(found)
            splits += [split] * len(found)
    for value, meaning in ((1, "with"), (0, "without")):
        if value not in labels:
            raise DataError(f"{root}: no photo {meaning} {names[0]}: both class folders need photos")
    return PhotoLayout(
        kind="folders",
        root=root,
        source=root,
        names=names,
        files=files,
        labels=np.array(labels, dtype=np.uint8).reshape(-1, 1),
        splits=np.array(splits, dtype=np.int64) if split_level else None,
    )


def _implied_positive(classes: list[str], attribute: str) -> str:
    """The positive folder when the names say it (``smiling`` beside ``not_smiling``), else an error
    that asks for ``data.photos.positive``."""
    for name in classes:
        other = next(c for c in classes if c != name)
        if other.lower() in (f"not_{name}".lower(), f"no_{name}".lower(), f"non_{name}".lower()):
            return name
    raise DataError(
        f"which class folder holds the photos with {attribute}: {' or '.join(classes)}? Give "
        f"--data.photos.positive {classes[0]} (or name the other folder not_{classes[0]})"
    )


def read_csv(path: Path, attributes: Sequence[str] | str) -> PhotoLayout:
    """``file,<attribute>,...[,split][,person|group]`` with 1/0 or 1/-1 values; ``attributes``: the
    columns to use, or ``all`` for every attribute column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from err
    rows = [(number, [cell.strip() for cell in row]) for number, row in enumerate(rows, start=1) if any(row)]
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header 'file,<attribute>,...'")
    header_line, header = rows[0]
    lowered = [name.lower() for name in header]
    file_column = next((lowered.index(name) for name in FILE_COLUMNS if name in lowered), None)
    if file_column is None:
        raise DataError(
            f"{path}, line {header_line}: no column names the photos; expected one of {', '.join(FILE_COLUMNS)}"
        )
    split_column = lowered.index("split") if "split" in lowered else None
    group_column = next((lowered.index(name) for name in GROUP_COLUMNS if name in lowered), None)
    label_columns = [i for i in range(len(header)) if i not in (file_column, split_column, group_column)]
    available = [header[i] for i in label_columns]
    wanted = [attributes] if isinstance(attributes, str) else list(attributes)
    if len(wanted) == 1 and wanted[0].lower() == "all":
        wanted = available
    missing = [name for name in wanted if name not in available]
    if missing or not wanted:
        raise DataError(
            f"{path}, line {header_line}: data.attributes asks for {missing or wanted}, but the attribute "
            f"columns are {', '.join(available) or 'none'}"
        )
    columns = [label_columns[available.index(name)] for name in wanted]
    images = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    files, labels, splits, groups, seen = [], [], [], [], {}
    for number, fields in rows[1:]:
        if len(fields) != len(header):
            raise DataError(
                f"{path}, line {number}: expected {len(header)} values ({', '.join(header)}), found "
                f"{len(fields)}"
            )
        name = fields[file_column]
        if name in seen:
            raise DataError(f"{path}, line {number}: {name} is listed twice (first on line {seen[name]})")
        seen[name] = number
        if not (images / name).is_file():
            raise DataError(f"{path}, line {number}: {images / name} does not exist")
        row = []
        for column in columns:
            value = fields[column]
            if value not in ("1", "0", "-1"):
                raise DataError(
                    f"{path}, line {number}: {header[column]} of {name} is {value!r}; expected 1 (has it), "
                    "0 or -1 (has it not)"
                )
            row.append(int(value == "1"))
        if split_column is not None:
            split = fields[split_column].lower()
            if split not in SPLIT_NAMES:
                raise DataError(
                    f"{path}, line {number}: split of {name} is {fields[split_column]!r}; expected train, "
                    "val or test"
                )
            splits.append(SPLIT_NAMES[split])
        if group_column is not None:
            groups.append(fields[group_column])
        files.append(str((images / name).relative_to(path.parent)))
        labels.append(row)
    if not files:
        raise DataError(f"{path}: the header names columns but no photo follows it")
    table = np.array(labels, dtype=np.uint8)
    for k, name in enumerate(wanted):
        values = sorted(set(table[:, k].tolist()))
        if len(values) < 2:
            raise DataError(
                f"{path}: every photo has {name} = {'1' if values == [1] else '0 or -1'}; a class needs "
                "photos of both kinds to be learnt"
            )
    return PhotoLayout(
        kind="csv",
        root=path.parent,
        source=path,
        names=wanted,
        files=files,
        labels=table,
        splits=np.array(splits, dtype=np.int64) if split_column is not None else None,
        groups=groups if group_column is not None else None,
    )


def assign_splits(
    layout: PhotoLayout, fractions: Sequence[float] = DEFAULT_SPLIT, seed: int = 0
) -> np.ndarray:
    """Each photo's split (0 train, 1 val, 2 test): the layout's own, else a seeded draw of ``fractions``
    of the photos in which one person's (group's) photos stay together."""
    if layout.splits is not None:
        return layout.splits
    fractions = np.asarray(list(fractions), dtype=np.float64)
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise DataError(
            f"data.photos.split is {fractions.tolist()}: give the train, val and test shares, summing to 1"
        )
    keys = layout.groups if layout.groups is not None else layout.files
    units = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(units))
    sizes = {unit: 0 for unit in units}
    for key in keys:
        sizes[key] += 1
    bounds = np.cumsum(fractions) * len(keys)
    split_of, done = {}, 0
    for index in order:
        unit = units[index]
        split_of[unit] = int(np.searchsorted(bounds, done + sizes[unit] / 2))  # by the unit's middle photo
        done += sizes[unit]
    return np.array([min(split_of[key], 2) for key in keys], dtype=np.int64)


@dataclass(frozen=True)
class AlignedPhotos:
    """The photos of a layout aligned (:func:`align_photos`): ``images/<n>.png`` under ``folder``, and for
    each of ``files`` (the aligned names) its row in the layout (``rows``)."""

    folder: Path
    files: list[str]
    rows: np.ndarray
    summary: str

    @property
    def images(self) -> Path:
        return self.folder / "images"


def alignment_key(layout: PhotoLayout, options: FaceOptions) -> str:
    """What the aligned folder depends on: the photos (names, sizes, modification times, in order) and
    the alignment's settings."""
    digest = hashlib.sha256(
        json.dumps(
            [
                ALIGNMENT_VERSION,
                options.detector,
                options.min_face,
                options.no_face,
                str(layout.root.resolve()),
            ]
        ).encode()
    )
    for name in layout.files:
        stat = (layout.root / name).stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def align_photos(layout: PhotoLayout, cache: Path, options: FaceOptions) -> AlignedPhotos:
    """Align every photo of ``layout`` once into ``cache/aligned-<key>/`` (built under a lock, the manifest
    written last; a valid folder is reused): its largest face framed like CelebA's aligned images, or the
    whole image when it has none (rule ``whole``), or nothing (rule ``skip``: the photo is left out).
    Unreadable photos are an error that names them."""
    from filelock import FileLock

    folder = cache / f"aligned-{alignment_key(layout, options)}"
    manifest = folder / "manifest.json"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not manifest.is_file():
            _align_into(layout, folder, options)
        saved = json.loads(manifest.read_text())
    return AlignedPhotos(folder, saved["files"], np.array(saved["rows"], dtype=np.int64), saved["summary"])


def _align_into(layout: PhotoLayout, folder: Path, options: FaceOptions) -> None:
    from tqdm import tqdm

    from smile.faces.aligner import WHOLE_IMAGE, FaceAligner
    from smile.faces.images import load_photo, reason
    from smile.io import atomic_write

    try:
        aligner = FaceAligner(options.detector, min_face=options.min_face)
    except ImportError as err:
        raise DataError(f"aligning your photos needs a face detector: {err}") from err
    images = folder / "images"
    images.mkdir(exist_ok=True)
    files, rows, whole, skipped, several, unreadable = [], [], 0, 0, 0, []
    bar = tqdm(layout.files, desc="Aligning the photos", unit="photo", file=sys.stderr, disable=None)
    for row, name in enumerate(bar):
        try:
            picture = load_photo(layout.root / name, max_pixels=options.max_pixels)
        except Exception as err:  # collected and reported together below
            unreadable.append(f"{layout.root / name} ({reason(err)})")
            continue
        faces = aligner.frame(picture, options.no_face)
        if not faces:
            skipped += 1
            continue
        whole += faces[0].method == WHOLE_IMAGE
        several += len(faces) > 1
        face = max(faces, key=lambda f: f.box[2] * f.box[3])
        aligned_name = f"{len(files) + 1:06d}.png"
        with atomic_write(images / aligned_name, "wb") as handle:
            face.aligned.save(handle, format="PNG")
        files.append(aligned_name)
        rows.append(row)
    if unreadable:
        raise DataError(
            f"{len(unreadable)} of {len(layout.files)} photos could not be read: {'; '.join(unreadable[:3])}"
            + (" ..." if len(unreadable) > 3 else "")
        )
    if not files:
        raise DataError(f"{layout.source}: no face was found in any photo, and data.photos.no_face is skip")
    summary = (
        f"Aligned {len(files)} of {len(layout.files)} photos to CelebA's framing ({aligner.detector_name} "
        "detector): "
        f"{whole + skipped} had no face ({whole} taken whole, {skipped} left out), {several} had several "
        "(the largest taken)"
    )
    with atomic_write(folder / "manifest.json") as handle:
        json.dump({"files": files, "rows": rows, "summary": summary}, handle)
    say(summary)
