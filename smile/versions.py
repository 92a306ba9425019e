"""Whether the installed torch and torchvision belong together. Each torchvision release is built for one
torch release (0.19 for 2.4, ..., 0.29 for 2.14), and for one build of it (CPU, or a CUDA version); a
mismatched pair fails deep inside ``import torchvision`` ("operator torchvision::nms does not exist").
The command line checks the pair once, from the installed packages' metadata and without importing
either, and says the fix in one line."""

from __future__ import annotations

import re
from importlib import metadata

from smile.errors import SmileError

#: torchvision 0.(N + OFFSET) is built for torch 2.N.
OFFSET = 15
FIX = (
    "reinstall both from one index, e.g. pip install --force-reinstall torch torchvision --index-url "
    "https://download.pytorch.org/whl/cpu (or the index of your CUDA version)"
)


class MismatchedTorch(SmileError, RuntimeError):
    """torch and torchvision from different releases or builds."""


def _release(version: str) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", version)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _build(version: str) -> str | None:
    """The local build tag (``cpu``, ``cu121``, ...), ``None`` without one."""
    return version.split("+", 1)[1] if "+" in version else None


def installed() -> tuple[str, str] | None:
    """The installed versions of torch and torchvision, ``None`` when either is missing."""
    try:
        return metadata.version("torch"), metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return None


def mismatch(torch: str, vision: str) -> str | None:
    """Why ``torch`` and ``torchvision`` (versions) do not belong together, ``None`` when they do (or when
    the versions follow no rule known here)."""
    release, vision_release = _release(torch), _release(vision)
    if release is None or vision_release is None or release[0] != 2 or vision_release[0] != 0:
        return None
    if vision_release[1] - OFFSET != release[1]:
        return f"torchvision {vision} is built for torch 2.{vision_release[1] - OFFSET}, and torch is {torch}"
    builds = _build(torch), _build(vision)
    if None not in builds and builds[0] != builds[1]:
        return f"torch {torch} is the {builds[0]} build, torchvision {vision} the {builds[1]} one"
    return None


def message(reason: str | None = None) -> str:
    """The one line for a mismatched pair, with ``reason`` (else the installed versions)."""
    if reason is None:
        versions = installed()
        reason = f"torch {versions[0]}, torchvision {versions[1]}" if versions else "torch and torchvision"
    return f"torch and torchvision do not belong together ({reason}): {FIX}"


_checked = False


def check_torch_pair() -> None:
    """Raise :class:`MismatchedTorch` when the installed pair does not belong together (once a process)."""
    global _checked
    if _checked:
        return
    _checked = True
    versions = installed()
    reason = versions and mismatch(*versions)
    if reason:
        raise MismatchedTorch(message(reason))


def is_mismatch_error(err: BaseException) -> bool:
    """Whether ``err`` is how a mismatched pair fails at ``import torchvision``."""
    return (
        isinstance(err, RuntimeError) and re.search(r"torchvision::\w+ does not exist", str(err)) is not None
    )
