"""Lightning checkpoints, read and written one way each: :func:`load_checkpoint` loads weights only (a
file that would run code is refused) and brings files of older versions up to date (:func:`migrate`);
:func:`save_checkpoint` writes atomically (a kill or a full disk leaves the previous file). The trainer's
own saves go through the same function (:class:`smile.training.resume.AtomicCheckpointIO`)."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from smile.errors import CheckpointError
from smile.io import write_atomically
from smile.trained.description import DEFAULT_THRESHOLD, ModelDescription


def pickle_globals(path: str | Path) -> list[str]:
    """The ``module.name`` globals a pickle (or a torch zip file's ``data.pkl``) would import, read with
    :mod:`pickletools` without running anything; tensors' own (``torch.``, ``collections.``) excepted.
    Empty for a file that is not a pickle (truncated, HTML, ...)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(name) if name else b""
        else:
            data = path.read_bytes()
        found, strings = [], []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(arg)
            elif opcode.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # not a pickle, or a damaged one: nothing to report
        return []
    return [name for name in found if not name.startswith(("torch.", "collections."))]


def refused_message(path: str | Path, what: str) -> str:
    """Why a checkpoint whose pickle imports ``what`` (a ``module.name``) was not loaded. torch's own
    message advises loading with ``weights_only=False``, which would run whatever the file holds; this
    one does not."""
    return (
        f"{path}: refused for safety: the file holds Python code or objects ({what}), not only weights, and "
        "loading it could run that code. smile loads weights only; use a checkpoint written by smile, from "
        "a source you trust"
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Any torch checkpoint with ``weights_only`` semantics (plain tensors and containers, no code), its
    failures as one-line :class:`CheckpointError` messages."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: checkpoint not found") from err
    except pickle.UnpicklingError as err:
        text = str(err)
        found = pickle_globals(path)
        if found:
            raise CheckpointError(refused_message(path, found[0])) from None
        # torch's message for other failures also advises weights_only=False: keep only the reason
        reason = re.search(r"WeightsUnpickler error: \s*(.+?)\s*(?:\n|$)", text)
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, or not a torch file): "
            f"{reason.group(1) if reason else text.splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, or not a torch file): {err}"
        ) from err


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A smile checkpoint (:func:`read_checkpoint`), brought up to date by :func:`migrate`."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    if "attributes" not in checkpoint.get("hyper_parameters", {}):
        raise CheckpointError(f"{path}: not a smile checkpoint (its hyper-parameters name no attributes)")
    return migrate(checkpoint)


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write ``checkpoint`` to ``path`` atomically: serialised first (so that a full disk is told the size
    it needed), then written beside it, fsynced and renamed over it."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_atomically(path, buffer.getvalue())
    return Path(path)


#: Data settings of checkpoints saved before version 0.1.0: the subsets' old keys, and the options that
#: moved to ``smile predict`` or were dropped.
_OLD_SUBSETS = {"train_subset": "train", "val_subset": "val", "test_subset": "test"}
_OLD_DATA_KEYS = (
    "predict_path", "aligned", "detector", "min_face", "no_face", "annotate_dir",
    "synthetic_seed", "cache_decoder", "cache_on_device",
)  # fmt: skip


def migrate(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint`` (changed in place, and returned) as this version writes it: the one step that reads
    files of versions before 0.1.0, whichever door they come in by (:func:`load_checkpoint`, or the
    Trainer's own load through the system's ``on_load_checkpoint``). Their data settings get today's
    names (``train_subset`` -> ``subsets.train``; options that moved to ``smile predict`` dropped), and a
    checkpoint saved before decision thresholds existed decides at 0.5."""
    data = checkpoint.get("datamodule_hyper_parameters")
    if data and (set(_OLD_SUBSETS) | set(_OLD_DATA_KEYS)) & set(data):
        subsets = {split: data.pop(key) for key, split in _OLD_SUBSETS.items() if key in data}
        for key in _OLD_DATA_KEYS:
            data.pop(key, None)
        subsets = {split: count for split, count in subsets.items() if count is not None}
        if subsets or "subsets" not in data:
            data["subsets"] = subsets or None
    state = checkpoint.get("state_dict")
    attributes = checkpoint.get("hyper_parameters", {}).get("attributes")
    if state and attributes and "thresholds" not in state:
        state["thresholds"] = torch.full((len(attributes),), DEFAULT_THRESHOLD)
    return checkpoint


@dataclass(frozen=True)
class CheckpointSettings:
    """The settings a checkpoint was trained with: the model's and the data module's arguments, as
    LightningCLI saved them, less its private ``_`` keys (``_instantiator``, ``_class_path``)."""

    model: dict[str, Any]
    data: dict[str, Any]
    #: whether it was trained on drawn faces (``smile synthetic``, e.g. the demo), which is all it knows
    synthetic: bool = False


def checkpoint_settings(checkpoint: dict[str, Any]) -> CheckpointSettings:
    """The :class:`CheckpointSettings` of a checkpoint from :func:`load_checkpoint` (``data`` is empty
    when it was trained without the data module, e.g. by a script)."""

    def public(hparams: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in hparams.items() if not key.startswith("_")}

    return CheckpointSettings(
        model=public(checkpoint["hyper_parameters"]),
        data=public(checkpoint.get("datamodule_hyper_parameters", {})),
        synthetic=bool(checkpoint.get("CelebADataModule", {}).get("synthetic")),
    )


def describe(checkpoint: dict[str, Any], provenance: dict[str, Any] | None = None) -> ModelDescription:
    """The :class:`~smile.trained.description.ModelDescription` of a loaded checkpoint."""
    settings = checkpoint_settings(checkpoint)
    thresholds = checkpoint["state_dict"]["thresholds"].tolist()
    return ModelDescription.from_settings(
        settings.model, settings.data, thresholds, settings.synthetic, provenance
    )


def evaluation_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights the checkpoint's model evaluates with, as ``net.*`` and ``thresholds``: its averaged
    weights where it kept an EMA (``model.ema_decay``)."""
    state = checkpoint["state_dict"]
    prefix = "ema.module." if any(key.startswith("ema.module.") for key in state) else "net."
    weights = {"net." + key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    weights["thresholds"] = state["thresholds"]
    return weights


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
