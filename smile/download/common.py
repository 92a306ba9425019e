"""Pieces shared by the download sources: errors, HTML sniffing, MD5, atomic moves, zip extraction, state."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from smile.errors import SmileError

#: Order in which ``--source auto`` tries the sources.
SOURCES = ("gdrive", "huggingface", "kaggle")
#: Written under the root; ``status`` is ``in-progress`` until the data is complete and verified.
STATE_FILE = ".smile-download.json"
EXTRA_HINT = 'pip install "smile[download]"'
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DownloadError(SmileError):
    """A source failed in a way the user can act on; the message says how."""


class MissingExtraError(DownloadError):
    """An optional package a source needs is not installed."""


def say(message: str) -> None:
    """Progress and status lines go to stderr, beside the progress bars."""
    print(message, file=sys.stderr, flush=True)


def next_source_hint(source: str, root: Path) -> str:
    """``Next source to try: python -m smile download ...``: the source after ``source`` (in auto's order)."""
    later = SOURCES[SOURCES.index(source) + 1 :] if source in SOURCES else ()
    if not later:
        others = " or ".join(f"--source {name}" for name in SOURCES if name != source)
        return f"The other sources: python -m smile download --root {root} {others}"
    return f"Next source to try: python -m smile download --root {root} --source {later[0]}"


def require(module: str, package: str, source: str) -> object:
    """Import an optional dependency or raise :class:`MissingExtraError` with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{source}: the optional package '{package}' is not installed ({err}). "
            f'Install the download extras with: {EXTRA_HINT}   (or just: pip install "{package}")'
        ) from err


# --- HTML pages saved in place of data ------------------------------------------------------------

HTML_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # kind: (what it is, for the user; lower-case keywords that identify it); the first match wins
    "quota": (
        'Google Drive\'s "quota exceeded" page (too many users have downloaded this file in the last 24 hours; '
        "it usually clears within a day)",
        ("quota exceeded", "too many users have viewed or downloaded this file recently"),
    ),
    "virus-scan": (
        'Google Drive\'s "virus scan warning" page (the file is too big for Drive to scan, and the confirmation '
        "could not be followed; pip install -U gdown may help)",
        ("virus scan warning", "can't scan this file for viruses", "can&#39;t scan this file for viruses"),
    ),
    "login": (
        "a Google sign-in page (the link needs a login, or it has expired or been restricted)",
        ("accounts.google.com", "servicelogin", "sign in - google accounts", "<title>sign in"),
    ),
    "no-public-link": (
        'Google Drive\'s "cannot retrieve the public link" answer (the file needs a login or permission, or '
        "has had too many accesses)",
        ("cannot retrieve the public link of the file",),
    ),
}
GENERIC_HTML = "an HTML page (an error or interstitial page of the server)"


def looks_like_html(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) is an HTML page rather than data."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<meta", b"<!--")) or (
        text.startswith(b"<") and b"<html" in text[:4096]
    )


def classify_html(text: str) -> tuple[str, str]:
    """Kind and explanation of a Google page (quota, virus-scan, login, ...) from its text."""
    lowered = text.lower()
    for kind, (meaning, keywords) in HTML_KINDS.items():
        if any(keyword in lowered for keyword in keywords):
            return kind, meaning
    return "html", GENERIC_HTML


def sniff_html(path: Path) -> tuple[str, str] | None:
    """If the file at ``path`` is an HTML page, its kind and explanation; else None."""
    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    if not looks_like_html(head):
        return None
    return classify_html(head.decode("utf-8", errors="replace"))


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
    tmp = root / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, root / STATE_FILE)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class LayoutSummary:
    """What the final check found."""

    layout: str
    images: int
    annotated: int
    partition: int


_LAYOUTS = (
    # name, image folder, attribute file, partition file, header lines before the rows
    ("kaggle", "img_align_celeba/img_align_celeba", "list_attr_celeba.csv", "list_eval_partition.csv", 1),
    ("official", "img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt", 2),
    (
        "torchvision",
        "celeba/img_align_celeba",
        "celeba/list_attr_celeba.txt",
        "celeba/list_eval_partition.txt",
        2,
    ),
)


def _count_rows(path: Path, header: int) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip()) - header


def find_complete_layout(root: Path) -> LayoutSummary | None:
    """The first layout under ``root`` whose annotation files exist and whose image count matches them."""
    for name, images, attributes, partition, header in _LAYOUTS:
        image_dir, attr_path, part_path = root / images, root / attributes, root / partition
        if not (image_dir.is_dir() and attr_path.is_file() and part_path.is_file()):
            continue
        count = sum(
            1
            for entry in os.scandir(image_dir)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES)
        )
        annotated = _count_rows(attr_path, header)
        split = _count_rows(part_path, 1 if part_path.suffix == ".csv" else 0)
        if count == annotated == split and count > 0:
            return LayoutSummary(name, count, annotated, split)
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
    """Run ``smile.data.check.scan(root)`` if the project has it (it reports problems itself)."""
    try:
        from smile.data.check import scan  # type: ignore[import-not-found]
    except ImportError:
        return
    say(f"Running the data health scan on {root} ...")
    result = scan(root)
    if result is not None:
        say(str(result))
