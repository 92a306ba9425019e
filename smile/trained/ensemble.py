"""Ensembles: one checkpoint that answers with the mean of the given models' logits
(:class:`smile.models.ensemble.Ensemble`).

The members must predict the same attributes from the same input (``data.image_size``); each keeps its
trained weights (the averaged ones where it kept an EMA). The new checkpoint takes the first member's
data settings and its flip averaging (``model.tta``, applied to the mean), decides at 0.5 (``smile
thresholds`` tunes it like any other) and works wherever a checkpoint does: test, predict, the Python
API, serving and export. Its prediction cost is the sum of its members'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from smile.errors import CheckpointError
from smile.trained.checkpoints import describe, evaluation_weights, load_checkpoint
from smile.trained.description import DEFAULT_THRESHOLD

#: Description fields that must agree: they decide what the networks see.
SAME_INPUT = ("image_size", "crop_size")


def join(paths: list[Path]) -> dict[str, Any]:
    """The ensemble checkpoint of the checkpoints at ``paths``."""
    if len(paths) < 2:
        raise CheckpointError(f"an ensemble needs at least 2 checkpoints, got {len(paths)}")
    checkpoints = [load_checkpoint(path) for path in paths]
    descriptions = [describe(checkpoint) for checkpoint in checkpoints]
    first, first_path = descriptions[0], paths[0]
    for path, other in zip(paths[1:], descriptions[1:]):
        if other.attributes != first.attributes:
            raise CheckpointError(
                f"{path}: predicts {list(other.attributes)}, but {first_path} predicts {list(first.attributes)}"
            )
        for key in SAME_INPUT:
            mine, theirs = getattr(first, key), getattr(other, key)
            if mine != theirs:
                raise CheckpointError(f"{path}: data.{key} is {theirs}, but {first_path} has {mine}")
    hyper = {
        **checkpoints[0]["hyper_parameters"],
        "net": "ensemble",
        "net_kwargs": {"members": [dict(description.network) for description in descriptions]},
        "ema_decay": None,
        "threshold_criterion": None,
        "channels_last": all(c["hyper_parameters"].get("channels_last", False) for c in checkpoints),
    }
    state = {"thresholds": torch.full((len(first.attributes),), DEFAULT_THRESHOLD)}
    for i, checkpoint in enumerate(checkpoints):
        weights = evaluation_weights(checkpoint)
        state.update(
            {f"net.members.{i}.{key[4:]}": value for key, value in weights.items() if key.startswith("net.")}
        )
    return {
        "state_dict": state,
        "hyper_parameters": hyper,
        "datamodule_hyper_parameters": checkpoints[0].get("datamodule_hyper_parameters", {}),
        "pytorch-lightning_version": checkpoints[0].get("pytorch-lightning_version"),
        "epoch": checkpoints[0].get("epoch", 0),
        "global_step": checkpoints[0].get("global_step", 0),
        "ensemble_of": [str(path) for path in paths],
    }
