"""File writes that lose nothing: atomic writes (a kill mid-write leaves the previous file, never a
truncated one; a full disk is a one-line error that says how much space was needed and how much is
free) and fresh output paths (a new output never replaces an earlier one)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from smile.errors import SmileError


class DiskFull(SmileError, OSError):
    """No space was left to write a file; the previous file, if any, is intact. The command line exits
    with status 1 (the work could not be saved), not 2 (a mistake in the input)."""


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"


def disk_full(path: Path, needed: int) -> DiskFull:
    """The error for ``path`` that did not fit: ``needed`` bytes (at least), and what the disk has free."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = 0
    return DiskFull(
        f"no space left on the device to write {path}: it needs {_megabytes(needed)}, "
        f"{_megabytes(free)} are free; free some space and run again (nothing was overwritten)"
    )


def digest_mismatch(data: bytes, sha256: str, size: int) -> str | None:
    """How ``data`` differs from the file a record describes (its SHA-256 and size), or ``None`` when it
    is that file: shipped weights are checked with this before they are loaded."""
    actual = hashlib.sha256(data).hexdigest()
    if actual == sha256:
        return None
    return f"{len(data)} bytes of SHA-256 {actual}, expected {size} bytes of SHA-256 {sha256}"


def check_space(path: str | Path, needed: int) -> None:
    """Raise :class:`DiskFull` before writing ``needed`` bytes at ``path`` where they would not fit (for
    files written through memory maps, where a full disk would otherwise kill the process)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(path.parent).free < needed:
        raise disk_full(path, needed)


def umask() -> int:
    """The process's file-creation mask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", needed: int | None = None, **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``. On a full
    disk, :class:`DiskFull` says how much was ``needed`` (default: what was written before it failed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # as open() would create it; mkstemp makes it private (0600)
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if err.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(err, DiskFull):
            raise disk_full(path, needed or written) from err
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with :func:`atomic_write`, its size known to the full-disk error."""
    with atomic_write(path, "wb", needed=len(data)) as handle:
        handle.write(data)


def fresh_path(path: str | Path) -> Path:
    """``path`` when nothing is there yet, else the first free ``name-2``, ``name-3``... beside it (before
    the suffix): a new output never replaces an earlier one."""
    path = Path(path)
    number = 1
    candidate = path
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate
