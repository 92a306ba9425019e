"""The official CelebA files from Google Drive, through gdown (the library torchvision uses for them)."""

from __future__ import annotations

import inspect
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from smile.data.html_pages import classify_html, sniff_html
from smile.download.common import (
    DownloadError,
    check_zip,
    extract_zip,
    human_size,
    md5sum,
    next_source_hint,
    read_state,
    remove,
    require,
    say,
    write_state,
)

#: Google Drive's download endpoint; ``--gdrive_url`` or ``SMILE_GDRIVE_URL`` point elsewhere (tests, mirrors).
GDRIVE_URL = "https://drive.google.com/uc"
#: Seconds to wait before the n-th retry is ``RETRY_DELAY * n``.
RETRY_DELAY = 2.0


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its Google Drive id, MD5 and name."""

    file_id: str
    md5: str
    name: str


#: The official files, as in torchvision.datasets.CelebA.file_list; the image zip comes last so that
#: ``img_align_celeba/`` only appears once every other file is in place.
GDRIVE_FILES: tuple[RemoteFile, ...] = (
    RemoteFile("0B7EVK8r0v71pblRyaVFSWGxPY0U", "75e246fa4810816ffd6ee81facbd244c", "list_attr_celeba.txt"),
    RemoteFile("0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668", "list_eval_partition.txt"),
    RemoteFile(
        "1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS", "32bd1bd63d3c78cd57e08160ec5ed1e2", "identity_CelebA.txt"
    ),
    RemoteFile("0B7EVK8r0v71pbThiMVRxWXZ4dU0", "00566efa6fedff7a56946cd1c10f1c16", "list_bbox_celeba.txt"),
    RemoteFile(
        "0B7EVK8r0v71pd0FJY3Blby1HUTQ", "cc24ecafdb5b50baae59b03474781f8c", "list_landmarks_align_celeba.txt"
    ),
    RemoteFile("0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb", "img_align_celeba.zip"),
)
IMAGE_ZIP = "img_align_celeba.zip"
IMAGE_DIR = "img_align_celeba"


def file_url(base_url: str, file_id: str) -> str:
    return f"{base_url}?{urlencode({'id': file_id, 'export': 'download'})}"


def _gdown_partials(part: Path) -> list[Path]:
    """gdown's own temporary files for ``part`` (``NAME.part`` + 8 random characters + ``.part``)."""
    return [p for p in part.parent.glob(part.name + "????????.part") if p.is_file()]


def _as_tuple(error: type | tuple) -> tuple:
    return error if isinstance(error, tuple) else (error,)


def _gdown_kwargs(gdown: object) -> dict:
    """Options only newer gdown versions take."""
    parameters = inspect.signature(gdown.download).parameters  # type: ignore[attr-defined]
    return {"timeout": 60} if "timeout" in parameters else {}


def _fetch(remote: RemoteFile, root: Path, base_url: str, retries: int, quiet: bool) -> Path:
    """Download one file into ``NAME.part`` (resuming gdown's partial file), retrying dropped connections."""
    gdown = require("gdown", "gdown", "gdrive")
    import requests

    url = file_url(base_url, remote.file_id)
    part = root / (remote.name + ".part")
    errors = getattr(gdown, "exceptions", None)
    retrieval_error = getattr(errors, "FileURLRetrievalError", ())
    transfer_error = getattr(errors, "DownloadError", ())  # incomplete body, several partial files
    for attempt in range(retries + 1):
        partials = sorted(_gdown_partials(part), key=lambda p: p.stat().st_size, reverse=True)
        for extra in partials[1:]:  # gdown refuses to resume when there are several; keep the longest
            remove(extra)
        if partials and partials[0].stat().st_size and not part.exists():
            say(
                f"gdrive: resuming {remote.name} from {human_size(partials[0].stat().st_size)} already received"
            )
        try:
            gdown.download(url=url, output=str(part), quiet=quiet, resume=True, **_gdown_kwargs(gdown))  # type: ignore[attr-defined]
        except retrieval_error as err:  # Google answered with a page instead of the file
            _, meaning = classify_html(str(err))
            raise DownloadError(
                f"gdrive: {remote.name}: got {meaning} instead of the file (gdown stopped there); nothing "
                f"was saved. {next_source_hint('gdrive', root)}"
            ) from err
        except requests.HTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if status is not None and status < 500:
                meaning = {
                    403: "refused the download (HTTP 403: the quota is exceeded or the file needs a login)",
                    404: "does not know the file (HTTP 404: the link was removed)",
                    429: "refused the download (HTTP 429: too many requests; the quota is exceeded)",
                }.get(status, f"refused the download (HTTP {status})")
                raise DownloadError(
                    f"gdrive: {remote.name}: the server {meaning}. {next_source_hint('gdrive', root)}"
                ) from err
            failure: Exception = err
        except (requests.RequestException, ConnectionError, TimeoutError, *_as_tuple(transfer_error)) as err:
            failure = err
        except OSError as err:  # the disk, not the network
            raise DownloadError(f"gdrive: {remote.name}: cannot write under {root}: {err}") from err
        else:
            if not part.is_file():
                raise DownloadError(f"gdrive: {remote.name}: gdown reported success but wrote no file")
            return part
        kept = _gdown_partials(part)
        received = human_size(kept[0].stat().st_size) if kept else "nothing"
        reason = str(failure).splitlines()[0].rstrip(".")
        if attempt == retries:
            times = f" {retries + 1} times" if retries else ""
            raise DownloadError(
                f"gdrive: {remote.name}: the connection dropped{times} ({reason}). The {received} received so "
                f"far are kept in {kept[0] if kept else root} and the next run resumes from there. "
                f"{next_source_hint('gdrive', root)}"
            ) from failure
        say(
            f"gdrive: {remote.name}: connection lost after {received} ({reason}); resuming (try {attempt + 2})"
        )
        time.sleep(RETRY_DELAY * (attempt + 1))
    raise AssertionError("unreachable")


def _mismatch_detail(path: Path, name: str) -> str:
    """Why a file whose MD5 is wrong is wrong, as far as its content tells."""
    if name.endswith(".zip"):
        if not zipfile.is_zipfile(path):
            return "it is truncated or corrupt (the zip's central directory is missing)"
        return "it is a complete zip archive, but not the expected one (another version, or corrupted on the way)"
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 1))
        last = handle.read(1)
    if last not in (b"\n", b""):
        return "it is truncated (it ends in the middle of a line)"
    return "its content differs from the official file (another version, or corrupted on the way)"


def _verify(remote: RemoteFile, part: Path, root: Path) -> Path:
    """Reject HTML pages and MD5 mismatches (deleting the file); rename a good file to its final name."""
    size = part.stat().st_size
    found = sniff_html(part)
    if found is not None:
        _, meaning = found
        remove(part)
        raise DownloadError(
            f"gdrive: {remote.name}: got {meaning} instead of the file. The {human_size(size)} page was "
            f"deleted, so nothing is left under the file's name. {next_source_hint('gdrive', root)}"
        )
    digest = md5sum(part, desc=f"MD5 {remote.name}")
    if digest != remote.md5:
        detail = _mismatch_detail(part, remote.name)
        remove(part)
        failures = dict(read_state(root).get("md5_failures", {}))
        failures[remote.name] = failures.get(remote.name, 0) + 1
        write_state(root, md5_failures=failures)
        again = (
            f" This is mismatch number {failures[remote.name]} for this file: the copy being served is not the "
            "official one, so downloading it again will not help."
            if failures[remote.name] > 1
            else " It was deleted; the next run downloads it again from the start."
        )
        raise DownloadError(
            f"gdrive: {remote.name}: MD5 mismatch (got {digest}, expected {remote.md5}; {human_size(size)}): "
            f"{detail}.{again} {next_source_hint('gdrive', root)}"
        )
    final = root / remote.name
    os.replace(part, final)
    say(f"gdrive: {remote.name} OK ({human_size(size)}, MD5 verified)")
    return final


def extract_images(root: Path, keep_archive: bool) -> None:
    """Extract ``img_align_celeba.zip`` into a staging folder, then rename its image folder into place."""
    archive_path, images = root / IMAGE_ZIP, root / IMAGE_DIR
    if not images.is_dir():
        staging = root / f".{IMAGE_DIR}.extracting"
        with check_zip(archive_path, "gdrive", root) as archive:
            extract_zip(archive, staging, desc=f"Extracting {IMAGE_ZIP}")
        extracted = staging / IMAGE_DIR
        if not extracted.is_dir():
            raise DownloadError(
                f"gdrive: {IMAGE_ZIP} has no {IMAGE_DIR}/ folder inside; it is not the official zip"
            )
        os.replace(extracted, images)
        remove(staging)
    if not keep_archive:
        remove(archive_path)


def download_gdrive(
    root: Path,
    base_url: str | None = None,
    files: tuple[RemoteFile, ...] | None = None,
    retries: int = 3,
    keep_archive: bool = False,
    quiet: bool = False,
) -> None:
    """Fetch every official file (skipping those already verified), check MD5s, extract the images."""
    base_url = base_url or os.environ.get("SMILE_GDRIVE_URL") or GDRIVE_URL
    files = GDRIVE_FILES if files is None else files
    root.mkdir(parents=True, exist_ok=True)
    say(f"gdrive: downloading {len(files)} official files from {base_url} into {root}")
    for remote in files:
        final = root / remote.name
        if final.is_file() or (remote.name == IMAGE_ZIP and (root / IMAGE_DIR).is_dir()):
            say(f"gdrive: {remote.name} already downloaded and verified")
            continue
        part = root / (remote.name + ".part")
        if not part.is_file():
            part = _fetch(remote, root, base_url, retries, quiet)
        _verify(remote, part, root)
    if any(remote.name == IMAGE_ZIP for remote in files):
        extract_images(root, keep_archive)
