"""Find and open checkpoints: ``best``/``last`` aliases, the run folder a checkpoint belongs to."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from smile.errors import CheckpointError

LOG_ROOT = Path("lightning_logs")
ALIASES = {"best": "best.ckpt", "best.ckpt": "best.ckpt", "last": "last.ckpt", "last.ckpt": "last.ckpt"}


def resolve_checkpoint(value: str | Path, log_root: str | Path = LOG_ROOT) -> Path:
    """An existing file as is; ``best``/``best.ckpt``/``last``/``last.ckpt`` as the newest run's file of that name."""
    path = Path(value)
    if path.is_file():
        return path
    name = ALIASES.get(str(value))
    if name is None:
        raise CheckpointError(f"Checkpoint {value} does not exist (give a file path, or best / last)")
    log_root = Path(log_root)
    candidates = [path for path in log_root.glob(f"*/checkpoints/{name}") if path.is_file()]
    if not candidates:
        raise CheckpointError(
            f"--ckpt_path {value}: no file {value} here and no run under {log_root}/ has checkpoints/{name}. "
            "Train first (python -m smile fit --config configs/demo.yaml) or give the checkpoint's path."
        )
    return max(candidates, key=lambda candidate: (candidate.stat().st_mtime, str(candidate)))


def refused_message(path: str | Path, err: BaseException) -> str:
    """Why a checkpoint that holds more than tensors was not loaded. torch's own message advises loading
    with ``weights_only=False``, which would run whatever the file holds; this one does not."""
    found = re.search(r"(?:unsupported )?GLOBAL ([\w.]+)", str(err))
    what = f" ({found.group(1)})" if found else ""
    return (
        f"{path}: refused for safety: the file holds Python code or objects{what}, not only weights, and "
        "loading it could run that code. smile loads weights only; use a checkpoint written by smile, from "
        "a source you trust"
    )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only`` semantics (plain tensors and containers, no code)."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: checkpoint not found") from err
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            raise CheckpointError(refused_message(path, err)) from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, or not a torch file): {err}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, or not a torch file): {err}"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    if "attributes" not in checkpoint.get("hyper_parameters", {}):
        raise CheckpointError(f"{path}: not a smile checkpoint (its hyper-parameters name no attributes)")
    return checkpoint


@dataclass(frozen=True)
class RunFolder:
    """A run's TensorBoard folder ``save_dir/name/version``."""

    save_dir: Path
    name: str
    version: str

    @property
    def path(self) -> Path:
        return self.save_dir / self.name / self.version


def run_folder(checkpoint: str | Path) -> RunFolder | None:
    """The run a checkpoint was saved by (``.../lightning_logs/version_N/checkpoints/x.ckpt``), if any."""
    parent = Path(checkpoint).resolve().parent
    if parent.name != "checkpoints":
        return None
    version = parent.parent
    save_dir = version.parent.parent
    if save_dir.is_relative_to(Path.cwd()):  # as the trainer wrote it, so resumed callbacks match their paths
        save_dir = Path(os.path.relpath(save_dir))
    return RunFolder(save_dir=save_dir, name=version.parent.name, version=version.name)
