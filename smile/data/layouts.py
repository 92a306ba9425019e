"""Find CelebA on disk in the layouts users have, and read its annotation files.

Three layouts are recognised under ``root``:

- ``official``: ``img_align_celeba/*.jpg``, ``list_attr_celeba.txt``, ``list_eval_partition.txt``
  (the files of the official download, extracted in place);
- ``torchvision``: the same files under ``root/celeba/`` (what ``torchvision.datasets.CelebA`` writes);
- ``kaggle``: ``img_align_celeba/img_align_celeba/*.jpg``, ``list_attr_celeba.csv`` and
  ``list_eval_partition.csv`` (the Kaggle mirror, with header rows).

Identity, bounding-box and landmark files are optional everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smile.data.celeba import CELEBA_ATTRIBUTES
from smile.errors import DataError

SPLITS = {"train": 0, "val": 1, "test": 2}
#: The splits each command reads.
STAGE_SPLITS: dict[str, tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}


def splits_for(trainer: Any) -> tuple[str, ...]:
    """The splits a trainer's current command reads (:data:`STAGE_SPLITS`); all three without a trainer."""
    fn = getattr(getattr(getattr(trainer, "state", None), "fn", None), "value", None)
    return STAGE_SPLITS.get(fn, ("train", "val", "test"))


DOWNLOAD_HINT = (
    "CelebA can be had from the official site (mmlab.ie.cuhk.edu.hk/projects/CelebA.html, "
    "'Align&Cropped Images' and the 'Anno' and 'Eval' files), through `smile download`, "
    "or from the Kaggle mirror 'jessicali9530/celeba-dataset'. To try the project without it, run "
    "`smile fit --config demo`, which trains on synthetic CelebA-format data."
)
#: The layouts of your own labelled photos (:mod:`smile.data.photo_layouts`), as the error lists them.
PHOTO_LAYOUTS = (
    "  class folders  smiling/*.jpg and not_smiling/*.jpg, one folder per class (optionally under train/, "
    "val/, test/)",
    "  a CSV          labels.csv of file,Smiling,... (optional split and person columns), the photos in "
    "images/ or beside it",
)


@dataclass(frozen=True)
class CelebALayout:
    """Where the files of one CelebA copy are."""

    name: str
    images: Path
    attributes: Path
    partition: Path
    identity: Path | None = None
    bbox: Path | None = None
    landmarks: Path | None = None


def _official(base: Path, name: str, images: Path) -> CelebALayout:
    def optional(filename: str) -> Path | None:
        path = base / filename
        return path if path.is_file() else None

    return CelebALayout(
        name=name,
        images=images,
        attributes=base / "list_attr_celeba.txt",
        partition=base / "list_eval_partition.txt",
        identity=optional("identity_CelebA.txt"),
        bbox=optional("list_bbox_celeba.txt"),
        landmarks=optional("list_landmarks_align_celeba.txt"),
    )


def _kaggle(base: Path) -> CelebALayout:
    def optional(filename: str) -> Path | None:
        path = base / filename
        return path if path.is_file() else None

    return CelebALayout(
        name="kaggle",
        images=base / "img_align_celeba" / "img_align_celeba",
        attributes=base / "list_attr_celeba.csv",
        partition=base / "list_eval_partition.csv",
        bbox=optional("list_bbox_celeba.csv"),
        landmarks=optional("list_landmarks_align_celeba.csv"),
    )


def candidate_layouts(root: str | Path) -> list[CelebALayout]:
    """The layouts a copy under ``root`` could have, most specific first."""
    root = Path(root)
    return [
        _kaggle(root),
        _official(root, "official", root / "img_align_celeba"),
        _official(root / "celeba", "torchvision", root / "celeba" / "img_align_celeba"),
    ]


def missing_files(layout: CelebALayout) -> list[Path]:
    """The required folder and files of ``layout`` that are not there."""
    required = (layout.images, layout.attributes, layout.partition)
    return [path for path in required if not (path.is_dir() if path == layout.images else path.is_file())]


def detect_layout(root: str | Path) -> CelebALayout:
    """Return the layout of the CelebA copy under ``root``, or raise a :class:`DataError` that explains."""
    root = Path(root)
    layouts = candidate_layouts(root)
    for layout in layouts:
        if not missing_files(layout):
            return layout
    if not root.exists():
        problem = f"CelebA was not found: {root} does not exist."
    else:
        best = min(layouts, key=lambda layout: len(missing_files(layout)))
        missing = ", ".join(str(path) for path in missing_files(best))
        problem = f"CelebA under {root} is incomplete: missing {missing}."
    accepted = "\n".join(
        f"  {layout.name:<12} {layout.images.relative_to(root)}/, "
        f"{layout.attributes.relative_to(root)}, {layout.partition.relative_to(root)}"
        for layout in layouts
    )
    raise DataError(
        f"{problem}\nAccepted layouts (relative to data.root):\n{accepted}\n"
        f"Or your own labelled photos:\n{chr(10).join(PHOTO_LAYOUTS)}\n{DOWNLOAD_HINT}\n"
        "Point --data.root at your copy if it lies elsewhere."
    )


def annotation_rows(layout: CelebALayout) -> tuple[int, int]:
    """Rows of the attribute file and of the partition file, headers not counted (a quick count of
    non-empty lines, for a completeness check; :func:`read_attributes` checks every row)."""

    def count(path: Path, header: int) -> int:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip()) - header

    csv = layout.attributes.suffix == ".csv"
    return count(layout.attributes, 1 if csv else 2), count(layout.partition, 1 if csv else 0)


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a whitespace- or comma-separated file, with 1-based line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text annotation file ({err})") from err
    separator = "," if path.suffix == ".csv" else None
    return [
        (number, [field.strip() for field in line.split(separator)])
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


@dataclass(frozen=True)
class AttributeTable:
    """The rows of an attribute file: file names and 0/1 labels for all its attributes (CelebA's 40, or
    the columns of your own photos' labels)."""

    files: list[str]
    labels: np.ndarray  # (N, len(names)) uint8, 1 where the file has the attribute
    names: Sequence[str] = CELEBA_ATTRIBUTES

    def columns(self, names: list[str]) -> np.ndarray:
        """The 0/1 label columns for ``names``, looked up by name (never by position)."""
        index = [list(self.names).index(name) for name in names]
        return self.labels[:, index]


def read_attributes(path: str | Path) -> AttributeTable:
    """Read ``list_attr_celeba.txt`` (count line, names line, rows) or the Kaggle ``.csv``.

    Every row is checked: its number of values, that each is -1 or 1, and that no file name repeats.
    """
    path = Path(path)
    rows = _rows(path)
    if path.suffix == ".csv":
        if not rows:
            raise DataError(f"{path}: the file is empty; expected a header row 'image_id,<40 attributes>'")
        header_line, header = rows[0]
        names, body = header[1:], rows[1:]
    else:
        if len(rows) < 2:
            raise DataError(f"{path}: expected an image count on line 1 and the 40 attribute names on line 2")
        (count_line, count_fields), (header_line, names) = rows[0], rows[1]
        body = rows[2:]
        if len(count_fields) != 1 or not count_fields[0].isdigit():
            raise DataError(
                f"{path}, line {count_line}: expected the image count, found {' '.join(count_fields)!r}"
            )
        if int(count_fields[0]) != len(body):
            raise DataError(
                f"{path}, line {count_line}: the file says {count_fields[0]} images but lists {len(body)} rows"
            )
    if tuple(names) != CELEBA_ATTRIBUTES:
        unexpected = [name for name in names if name not in CELEBA_ATTRIBUTES]
        missing = [name for name in CELEBA_ATTRIBUTES if name not in names]
        detail = f"unexpected {unexpected}; missing {missing}" if unexpected or missing else "order differs"
        raise DataError(
            f"{path}, line {header_line}: the header does not list CelebA's 40 attributes in the official "
            f"order ({detail})"
        )
    files: list[str] = []
    labels = np.empty((len(body), len(CELEBA_ATTRIBUTES)), dtype=np.uint8)
    seen: dict[str, int] = {}
    for i, (number, fields) in enumerate(body):
        if len(fields) != len(CELEBA_ATTRIBUTES) + 1:
            raise DataError(
                f"{path}, line {number}: expected a file name and {len(CELEBA_ATTRIBUTES)} values, "
                f"found {len(fields)} fields"
            )
        name, values = fields[0], fields[1:]
        if name in seen:
            raise DataError(f"{path}, line {number}: {name} is listed twice (first on line {seen[name]})")
        seen[name] = number
        for column, value in enumerate(values):
            if value == "1":
                labels[i, column] = 1
            elif value == "-1":
                labels[i, column] = 0
            else:
                raise DataError(
                    f"{path}, line {number}: {CELEBA_ATTRIBUTES[column]} of {name} is {value!r}; "
                    "expected -1 or 1"
                )
        files.append(name)
    return AttributeTable(files=files, labels=labels)


def read_partition(path: str | Path) -> dict[str, int]:
    """Read ``list_eval_partition.txt`` (``file split``) or the Kaggle ``.csv``: file name -> 0, 1 or 2."""
    path = Path(path)
    rows = _rows(path)
    if path.suffix == ".csv" and rows and not rows[0][1][-1].isdigit():
        rows = rows[1:]  # header "image_id,partition"
    partition: dict[str, int] = {}
    for number, fields in rows:
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(
                f"{path}, line {number}: expected '<file> <0|1|2>' (0 train, 1 valid, 2 test), "
                f"found {' '.join(fields)!r}"
            )
        if fields[0] in partition:
            raise DataError(f"{path}, line {number}: {fields[0]} is listed twice")
        partition[fields[0]] = int(fields[1])
    return partition


def read_identities(path: str | Path) -> dict[str, int]:
    """Read ``identity_CelebA.txt`` (``file person``): file name -> person number."""
    path = Path(path)
    identities: dict[str, int] = {}
    for number, fields in _rows(path):
        if len(fields) != 2 or not fields[1].isdigit():
            raise DataError(
                f"{path}, line {number}: expected '<file> <person number>', found {' '.join(fields)!r}"
            )
        identities[fields[0]] = int(fields[1])
    return identities


def split_files(
    table: AttributeTable, partition: dict[str, int], partition_path: Path
) -> dict[str, np.ndarray]:
    """Row indices of ``table`` in each split, in file order; the two files must list the same images."""
    missing = [name for name in table.files if name not in partition]
    if missing or len(partition) != len(table.files):
        extra = len(set(partition) - set(table.files))
        raise DataError(
            f"{partition_path} disagrees with the attribute file: {len(missing)} annotated images have no split "
            f"(e.g. {missing[:3]}) and {extra} listed images have no attributes"
        )
    codes = np.fromiter((partition[name] for name in table.files), dtype=np.int64, count=len(table.files))
    return {split: np.flatnonzero(codes == code) for split, code in SPLITS.items()}
