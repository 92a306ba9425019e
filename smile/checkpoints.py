"""Find and open checkpoints: ``best``/``last`` aliases, loading weights only (a checkpoint that would run
code is refused), the settings a checkpoint was trained with, the run folder it belongs to."""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from smile.data.celeba import CROP_SIZE
from smile.errors import CheckpointError

LOG_ROOT = Path("lightning_logs")
ALIASES = {"best": "best.ckpt", "best.ckpt": "best.ckpt", "last": "last.ckpt", "last.ckpt": "last.ckpt"}
# an exported file lies beside its checkpoint (smile export): best.onnx is the newest run's export of best
ALIASES.update({name: name for name in ("best.onnx", "last.onnx", "best.pt2", "last.pt2")})


def resolve_checkpoint(value: str | Path, log_root: str | Path = LOG_ROOT) -> Path:
    """An existing file as is; ``best``/``best.ckpt``/``last``/``last.ckpt`` as the newest run's file of
    that name; a shipped model's name (``smiling``, ``attributes``: :mod:`smile.shipped`) as a checkpoint
    written from it. A file of the same name here wins over an alias or a shipped model."""
    path = Path(value)
    if path.is_file():
        return path
    from smile.shipped import checkpoint_file, shipped

    model = shipped(str(value))
    if model is not None:
        return checkpoint_file(model)
    name = ALIASES.get(str(value))
    if name is None:
        raise CheckpointError(
            f"Checkpoint {value} does not exist (give a file path, best / last, or a shipped model: "
            "smile models lists them)"
        )
    log_root = Path(log_root)
    candidates = [path for path in log_root.glob(f"*/checkpoints/{name}") if path.is_file()]
    if not candidates:
        raise CheckpointError(
            f"--ckpt_path {value}: no file {value} here and no run under {log_root}/ has checkpoints/{name}. "
            "Train first (python -m smile fit --config configs/demo.yaml) or give the checkpoint's path."
        )
    return max(candidates, key=lambda candidate: (candidate.stat().st_mtime, str(candidate)))


def which_checkpoint(value: str | Path, path: Path) -> str | None:
    """What to tell the user when ``value`` named another file than itself (an alias, a shipped model),
    else ``None``."""
    if str(path) == str(value):
        return None
    from smile.shipped import NAMES

    if str(value) in NAMES and not Path(value).is_file():
        return f"Using the shipped model {value} (smile models {value} prints its card)"
    return f"Using checkpoint {path}"


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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only`` semantics (plain tensors and containers, no code)."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
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
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    if "attributes" not in checkpoint.get("hyper_parameters", {}):
        raise CheckpointError(f"{path}: not a smile checkpoint (its hyper-parameters name no attributes)")
    return checkpoint


@dataclass(frozen=True)
class CheckpointSettings:
    """The settings a checkpoint was trained with: the model's and the data module's arguments, as
    LightningCLI saved them, less its private ``_`` keys (``_instantiator``, ``_class_path``)."""

    model: dict[str, Any]
    data: dict[str, Any]
    #: whether it was trained on drawn faces (``smile synthetic``, e.g. the demo), which is all it knows
    synthetic: bool = False

    @property
    def image_size(self) -> int:
        """The network's input side (64 when the checkpoint does not say)."""
        return int(self.data.get("image_size", 64))

    @property
    def crop_size(self) -> int:
        """The side of the face window the network sees (178, the whole width, in checkpoints saved
        before ``data.crop_size``)."""
        return int(self.data.get("crop_size", CROP_SIZE))


#: Data settings of checkpoints saved before version 0.1.0: the subsets' old keys, and the options that
#: moved to ``smile predict`` or were dropped.
_OLD_SUBSETS = {"train_subset": "train", "val_subset": "val", "test_subset": "test"}
_OLD_DATA_KEYS = (
    "predict_path", "aligned", "detector", "min_face", "no_face", "annotate_dir",
    "synthetic_seed", "cache_decoder", "cache_on_device",
)  # fmt: skip


def _data_settings(hparams: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's data settings under today's names (see :data:`_OLD_SUBSETS`)."""
    data = {key: value for key, value in hparams.items() if key not in _OLD_DATA_KEYS}
    subsets = {split: data.pop(key) for key, split in _OLD_SUBSETS.items() if key in data}
    subsets = {split: count for split, count in subsets.items() if count is not None}
    if subsets or set(_OLD_SUBSETS) & set(hparams):
        data["subsets"] = subsets or None
    return data


def checkpoint_settings(checkpoint: dict[str, Any]) -> CheckpointSettings:
    """The :class:`CheckpointSettings` of a checkpoint from :func:`load_checkpoint` (``data`` is empty
    when it was trained without the data module, e.g. by a script)."""

    def public(hparams: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in hparams.items() if not key.startswith("_")}

    return CheckpointSettings(
        model=public(checkpoint["hyper_parameters"]),
        data=_data_settings(public(checkpoint.get("datamodule_hyper_parameters", {}))),
        synthetic=bool(checkpoint.get("CelebADataModule", {}).get("synthetic")),
    )


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


def trained_weights(source: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The weights a trained model predicts with, as ``net.*`` and ``thresholds``, and its model
    hyper-parameters: a shipped model's (by name), or a checkpoint's (its averaged weights where it kept an
    EMA). What ``model.init`` starts a fit from."""
    from smile.shipped import read_weights, shipped

    model = shipped(str(source))
    if model is not None:
        state, settings = read_weights(model)
        return state, settings["hyper_parameters"]
    checkpoint = load_checkpoint(resolve_checkpoint(source))
    state = checkpoint["state_dict"]
    prefix = "ema.module." if any(key.startswith("ema.module.") for key in state) else "net."
    weights = {"net." + key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    if "thresholds" in state:
        weights["thresholds"] = state["thresholds"]
    return weights, checkpoint_settings(checkpoint).model
