"""Trained models back from their checkpoints: the LightningModule with its weights, and the data module
of the run that trained it, for the commands and tools that evaluate a checkpoint without a Trainer
(``smile report``, ``smile thresholds``, export, the benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from smile.checkpoints import checkpoint_settings
from smile.data.datamodule import CelebADataModule
from smile.data.layouts import STAGE_SPLITS
from smile.errors import CheckpointError
from smile.system import AttributeClassifier


def classifier(checkpoint: dict[str, Any]) -> AttributeClassifier:
    """The checkpoint's :class:`AttributeClassifier` with its weights and thresholds, in eval mode, on
    the CPU (``checkpoint`` as :func:`smile.checkpoints.load_checkpoint` returns it)."""
    model = AttributeClassifier(**checkpoint_settings(checkpoint).model)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def model_and_data(
    path: Path,
    checkpoint: dict[str, Any],
    stage: Literal["validate", "test"],
    device: str = "auto",
    **data_overrides: Any,
) -> tuple[AttributeClassifier, CelebADataModule]:
    """A checkpoint's model (on ``device``: ``auto`` is a GPU when there is one) and its data module, set
    up for ``stage`` with the run's own data settings (``data_overrides`` that are not ``None`` replace
    them: ``root``, ``batch_size``, ``cache_dir``...)."""
    settings = checkpoint_settings(checkpoint)
    data_hp = settings.data
    if not data_hp:
        raise CheckpointError(
            f"{path} holds no data settings (datamodule_hyper_parameters); train it with the CLI"
        )
    data_hp["attributes"] = settings.model["attributes"]  # the model's list (the same, for CLI-trained runs)
    data_hp["synthetic_images"] = None  # evaluating never generates data at the run's (or a given) root
    data_hp.update({key: value for key, value in data_overrides.items() if value is not None})
    model = classifier(checkpoint)
    model.to(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    datamodule = CelebADataModule(**data_hp)
    datamodule.prepare_splits(STAGE_SPLITS[stage])
    datamodule.setup(stage)
    return model, datamodule
