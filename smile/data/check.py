"""``python -m smile check-data --data.root PATH``: find every problem of a CelebA copy in one pass.

Training stops at the first bad row or image it meets, with a message naming it; this scan reads the
annotation files and opens (fully decodes) every annotated image, and reports all problems at once,
counted by kind with examples. Exit status 0: nothing to fix; 1: problems found; 2: no dataset there.

What it checks, and what training would do with each:

- annotation rows (``list_attr_celeba``): the image count line, the header (the 40 attribute names in
  the official order), each row's number of values, values other than -1/1, repeated file names;
- the partition file: malformed rows and repeated names, images it gives no split and images it lists
  without attributes, splits left empty;
- images: missing, empty, an HTML page saved under an image name (Google Drive's quota page, for
  instance), not an image, truncated, of an unsupported mode, or of a size other than CelebA's aligned
  178x218 — all of which stop training; and, as notes, what loading converts: grayscale/RGBA/palette/
  CMYK images (to RGB) and the aligned shape at another scale (resized to 178x218);
- image files in the folder that no annotation row names (ignored by training; a note).
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from smile.data.celeba import ALIGNED_SIZE, CELEBA_ATTRIBUTES, IMAGE_SUFFIXES
from smile.data.dataset import conform
from smile.data.html_pages import sniff_html
from smile.data.layouts import SPLITS, CelebALayout, _rows, detect_layout
from smile.errors import DataError


@dataclass(frozen=True)
class Problem:
    """One finding: its kind (the summary groups by it), the file, the line where it applies, what is wrong."""

    kind: str
    path: Path
    detail: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line else str(self.path)
        return f"{where}: {self.detail}"


@dataclass
class ScanReport:
    """Everything :func:`scan` found. ``str()`` is the summary the command prints."""

    root: Path
    layout: CelebALayout | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    annotated: int = 0
    images_checked: int = 0
    split_sizes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    examples: int = 3

    @property
    def ok(self) -> bool:
        return not self.problems

    def _section(self, title: str, findings: list[Problem]) -> list[str]:
        groups: dict[str, list[Problem]] = defaultdict(list)
        for finding in findings:
            groups[finding.kind].append(finding)
        lines = [f"{title}: {len(findings)} in {len(groups)} kind{'s' if len(groups) != 1 else ''}"]
        for kind, group in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
            lines.append(f"  {kind}: {len(group)}")
            lines += [f"    {finding}" for finding in group[: self.examples]]
            if len(group) > self.examples:
                lines.append(f"    ... and {len(group) - self.examples} more")
        return lines

    def __str__(self) -> str:
        if self.layout is None:
            return "\n".join(self._section("Problems", self.problems))
        splits = ", ".join(f"{split} {count:,}" for split, count in self.split_sizes.items())
        lines = [
            f"CelebA, {self.layout.name} layout, under {self.root}",
            f"  {self.annotated:,} annotated images ({splits}); {self.images_checked:,} image files opened "
            f"and decoded in {self.seconds:.1f} s",
        ]
        lines += self._section("Problems", self.problems) if self.problems else ["No problems found."]
        if self.notes:
            lines += self._section("Notes (nothing to fix)", self.notes)
        if self.problems:
            lines.append(
                "Training stops at the first of these problems. Re-download or remove the damaged files "
                "(python -m smile download resumes and checks), or fix the annotation rows named."
            )
        return "\n".join(lines)


# --- annotation files ----------------------------------------------------------------------------


def _check_attributes(path: Path, report: ScanReport) -> tuple[list[str], list[str]]:
    """Every problem of the attribute file; returns the file names of its well-formed rows, and the
    names of all its rows (the others are reported once here, not again as missing elsewhere)."""
    try:
        rows = _rows(path)
    except DataError as err:
        report.problems.append(Problem("annotation file unreadable", path, str(err).split(": ", 1)[-1]))
        return [], []
    if path.suffix == ".csv":
        if not rows:
            report.problems.append(Problem("annotation header", path, "the file is empty", 1))
            return [], []
        header_line, header = rows[0]
        names, body = header[1:], rows[1:]
    else:
        if len(rows) < 2:
            report.problems.append(
                Problem("annotation header", path, "expected an image count and the 40 attribute names", 1)
            )
            return [], []
        (count_line, count_fields), (header_line, names) = rows[0], rows[1]
        body = rows[2:]
        if len(count_fields) != 1 or not count_fields[0].isdigit():
            report.problems.append(
                Problem(
                    "annotation count line",
                    path,
                    f"expected the image count, found {' '.join(count_fields)!r}",
                    count_line,
                )
            )
        elif int(count_fields[0]) != len(body):
            report.problems.append(
                Problem(
                    "annotation count line",
                    path,
                    f"the file says {count_fields[0]} images but lists {len(body)} rows",
                    count_line,
                )
            )
    if tuple(names) != CELEBA_ATTRIBUTES:
        unexpected = [name for name in names if name not in CELEBA_ATTRIBUTES]
        missing = [name for name in CELEBA_ATTRIBUTES if name not in names]
        detail = f"unexpected {unexpected}; missing {missing}" if unexpected or missing else "order differs"
        report.problems.append(
            Problem(
                "annotation header",
                path,
                f"the header does not list CelebA's 40 attributes in the official order ({detail})",
                header_line,
            )
        )
    files: list[str] = []
    seen: dict[str, int] = {}
    for number, fields in body:
        if fields:
            seen.setdefault(fields[0], number)
        if len(fields) != len(CELEBA_ATTRIBUTES) + 1:
            report.problems.append(
                Problem(
                    "annotation row: wrong number of values",
                    path,
                    f"expected a file name and {len(CELEBA_ATTRIBUTES)} values, found {len(fields)} fields",
                    number,
                )
            )
            continue
        name, values = fields[0], fields[1:]
        if seen[name] != number:
            report.problems.append(
                Problem(
                    "annotation row: repeated file name",
                    path,
                    f"{name} is listed twice (first on line {seen[name]})",
                    number,
                )
            )
            continue
        bad = [(column, value) for column, value in enumerate(values) if value not in ("1", "-1")]
        for column, value in bad:
            report.problems.append(
                Problem(
                    "annotation row: value not -1 or 1",
                    path,
                    f"{CELEBA_ATTRIBUTES[column]} of {name} is {value!r}; expected -1 or 1",
                    number,
                )
            )
        if not bad:
            files.append(name)
    return files, list(seen)


def _check_partition(path: Path, annotated: Sequence[str], report: ScanReport) -> None:
    try:
        rows = _rows(path)
    except DataError as err:
        report.problems.append(Problem("partition file unreadable", path, str(err).split(": ", 1)[-1]))
        return
    if path.suffix == ".csv" and rows and not rows[0][1][-1].isdigit():
        rows = rows[1:]
    partition: dict[str, int] = {}
    for number, fields in rows:
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            report.problems.append(
                Problem(
                    "partition row malformed",
                    path,
                    f"expected '<file> <0|1|2>' (0 train, 1 valid, 2 test), found {' '.join(fields)!r}",
                    number,
                )
            )
            continue
        if fields[0] in partition:
            report.problems.append(
                Problem("partition row repeated", path, f"{fields[0]} is listed twice", number)
            )
            continue
        partition[fields[0]] = int(fields[1])
    annotated_set = set(annotated)
    for name in annotated:
        if name not in partition:
            report.problems.append(
                Problem("partition disagrees: annotated image has no split", path, f"{name} is not listed")
            )
    for name in partition:
        if name not in annotated_set:
            report.problems.append(
                Problem(
                    "partition disagrees: listed image has no attributes",
                    path,
                    f"{name} has no row in the attribute file",
                )
            )
    counts = Counter(partition[name] for name in annotated if name in partition)
    report.split_sizes = {split: counts.get(code, 0) for split, code in SPLITS.items()}
    for split, count in report.split_sizes.items():
        if count == 0:
            report.problems.append(
                Problem("split empty", path, f"no annotated image is in the {split} split ({SPLITS[split]})")
            )


# --- images --------------------------------------------------------------------------------------


def check_image(path: Path) -> tuple[str, str, str] | None:
    """``(severity, kind, detail)`` for an image that training would reject (``problem``) or convert
    (``note``); ``None`` for a good 178x218 RGB image."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "problem", "image missing", "listed in the annotations but not in the image folder"
    if size == 0:
        return "problem", "image empty", "the file is empty (0 bytes: an interrupted download or copy?)"
    try:
        with Image.open(path) as image:
            mode, dimensions = image.mode, image.size
            image.load()
            conform(image, path)
    except UnidentifiedImageError:
        html = sniff_html(path)
        if html is not None:
            return (
                "problem",
                "not an image: an HTML page",
                f"an HTML page saved under an image name: {html[1]}",
            )
        with open(path, "rb") as handle:
            head = handle.read(8)
        return "problem", "not an image", f"not a readable image ({size} bytes; starts with {head!r})"
    except DataError as err:
        kind = "image size rejected" if "image is " in str(err) else "image mode rejected"
        return "problem", kind, str(err).split(": ", 1)[-1]
    except (OSError, SyntaxError, ValueError) as err:
        truncated = "truncated" in str(err).lower()
        kind = "image truncated" if truncated else "image unreadable"
        return "problem", kind, f"{err} ({size} bytes: an interrupted download?)"
    if mode != "RGB":
        return "note", f"image mode {mode}: converted to RGB", f"{mode} image, converted to RGB when loaded"
    if dimensions != ALIGNED_SIZE:
        width, height = dimensions
        return (
            "note",
            "image resized",
            f"{width}x{height}, the aligned faces' shape at another scale: resized to "
            f"{ALIGNED_SIZE[0]}x{ALIGNED_SIZE[1]} when loaded",
        )
    return None


def _check_images(layout: CelebALayout, files: Sequence[str], report: ScanReport, workers: int) -> None:
    paths = [layout.images / name for name in files]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(check_image, paths, chunksize=64))
    for path, result in zip(paths, results):
        if result is not None:
            severity, kind, detail = result
            (report.problems if severity == "problem" else report.notes).append(Problem(kind, path, detail))
    report.images_checked = sum(1 for result in results if result is None or result[1] != "image missing")
    listed = set(files)
    try:
        unlisted = sorted(
            entry.name
            for entry in os.scandir(layout.images)
            if entry.name not in listed and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
        )
    except OSError:
        unlisted = []
    for name in unlisted:
        report.notes.append(
            Problem("image not annotated (ignored)", layout.images / name, "no annotation row names it")
        )


def scan(root: str | Path, examples: int = 3, workers: int | None = None) -> ScanReport:
    """Check the CelebA copy under ``root`` completely; never raises for a problem of the data."""
    start = time.perf_counter()
    report = ScanReport(root=Path(root), examples=examples)
    try:
        report.layout = detect_layout(root)
    except DataError as err:
        report.problems.append(Problem("no dataset", Path(root), str(err)))
        return report
    files, listed = _check_attributes(report.layout.attributes, report)
    report.annotated = len(listed)
    _check_partition(report.layout.partition, listed, report)
    _check_images(report.layout, listed, report, workers or min(8, os.cpu_count() or 1))
    report.seconds = time.perf_counter() - start
    return report
