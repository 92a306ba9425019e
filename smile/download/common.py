"""Pieces shared by the download sources: errors, MD5, moves, zip extraction, the state file and the final
check (with :mod:`smile.data.layouts` and :mod:`smile.data.check`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from smile.console import say
from smile.data.celeba import IMAGE_SUFFIXES
from smile.data.check import scan
from smile.data.html_pages import sniff_html
from smile.data.layouts import annotation_rows, candidate_layouts, missing_files
from smile.errors import SmileError
from smile.install import install_hint
from smile.io import atomic_write

#: Order in which ``--source auto`` tries the sources.
SOURCES = ("gdrive", "huggingface", "kaggle")
#: Written under the root; ``status`` is ``in-progress`` until the data is complete and verified.
STATE_FILE = ".smile-download.json"
EXTRA_HINT = install_hint("download")


class DownloadError(SmileError):
    """A source failed in a way the user can act on; the message says how."""


class MissingExtraError(DownloadError):
    """An optional package a source needs is not installed."""


def next_source_hint(source: str, root: Path) -> str:
    """``Next source to try: python -m smile download ...``: the source after ``source`` (in auto's order)."""
    later = SOURCES[SOURCES.index(source) + 1 :] if source in SOURCES else ()
    if not later:
        others = " or ".join(f"--source {name}" for name in SOURCES if name != source)
        return f"The other sources: python -m smile download --data.root {root} {others}"
    return f"Next source to try: python -m smile download --data.root {root} --source {later[0]}"


def require(module: str, package: str, source: str) -> object:
    """Import an optional dependency or raise :class:`MissingExtraError` with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{source}: the optional package '{package}' is not installed ({err}). "
            f'Install the download extras with: {EXTRA_HINT}, or just: pip install "{package}"'
        ) from err


# --- MD5, atomic moves -----------------------------------------------------------------------------


def md5sum(path: Path, desc: str | None = None, chunk_size: int = 1 << 20) -> str:
    """MD5 of a file, with a progress bar for large files."""
    digest = hashlib.md5()
    size = path.stat().st_size
    with (
        open(path, "rb") as handle,
        tqdm(
            total=size, unit="B", unit_scale=True, desc=desc or f"MD5 {path.name}", disable=size < 64 << 20
        ) as bar,
    ):
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


# --- zip archives ----------------------------------------------------------------------------------


def check_zip(path: Path, source: str, root: Path) -> zipfile.ZipFile:
    """Open a downloaded zip, turning 'not a zip' into a message that says what the file is instead."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        found = sniff_html(path)
        what = f"{found[1]} instead of the file" if found else f"not a complete zip archive ({err})"
        remove(path)
        raise DownloadError(
            f"{source}: {path.name} is {what}. It was deleted so that the next run downloads it again. "
            f"{next_source_hint(source, root)}"
        ) from err


def extract_zip(archive: zipfile.ZipFile, staging: Path, desc: str) -> None:
    """Extract every member into ``staging``, skipping files already extracted whole by an earlier run.

    zipfile's own ``extract`` refuses absolute paths and ``..``, so nothing lands outside ``staging``.
    """
    staging.mkdir(parents=True, exist_ok=True)
    members = archive.infolist()
    with tqdm(total=sum(m.file_size for m in members), unit="B", unit_scale=True, desc=desc) as bar:
        for member in members:
            target = staging / member.filename
            if not member.is_dir() and target.is_file() and target.stat().st_size == member.file_size:
                bar.update(member.file_size)
                continue
            archive.extract(member, staging)
            bar.update(member.file_size)


# --- the state file and the final check ------------------------------------------------------------


def read_state(root: Path) -> dict:
    try:
        return json.loads((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_state(root: Path, **fields: object) -> None:
    """Update the state file atomically (a kill leaves the old one)."""
    root.mkdir(parents=True, exist_ok=True)
    state = read_state(root) | fields
    with atomic_write(root / STATE_FILE) as handle:
        handle.write(json.dumps(state, indent=2) + "\n")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class LayoutSummary:
    """What the final check found."""

    layout: str
    images: int
    annotated: int
    partition: int


def find_complete_layout(root: Path) -> LayoutSummary | None:
    """The first layout under ``root`` (:func:`smile.data.layouts.candidate_layouts`) whose annotation
    files exist and whose image count matches them."""
    for layout in candidate_layouts(root):
        if missing_files(layout):
            continue
        count = sum(
            1
            for entry in os.scandir(layout.images)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES)
        )
        annotated, split = annotation_rows(layout)
        if count == annotated == split and count > 0:
            return LayoutSummary(layout.name, count, annotated, split)
    return None


def verify_layout(root: Path) -> LayoutSummary:
    """Check the layout the trainer reads, and run the data health scan where the project has one."""
    summary = find_complete_layout(root)
    if summary is None:
        raise DownloadError(
            f"The download finished but {root} does not hold a complete CelebA copy: the image count does "
            "not match list_attr_celeba / list_eval_partition, or a file is missing. Run the command again "
            "to resume."
        )
    say(
        f"Checked {root} ({summary.layout} layout): {summary.images:,} images, "
        f"{summary.annotated:,} attribute rows, {summary.partition:,} partition rows."
    )
    run_health_scan(root)
    return summary


def run_health_scan(root: Path) -> None:
    """Run :func:`smile.data.check.scan` on ``root`` (it reports problems itself)."""
    say(f"Running the data health scan on {root} ...")
    result = scan(root)
    if result is not None:
        say(str(result))
