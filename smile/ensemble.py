"""Ensembles: one checkpoint that answers with the mean of the given models' logits (:class:`smile.models.ensemble.Ensemble`).

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

from smile.checkpoints import checkpoint_settings, load_checkpoint
from smile.errors import CheckpointError
from smile.evaluation.thresholds import DEFAULT_THRESHOLD
from smile.restore import classifier

#: Data settings that must agree (:class:`~smile.checkpoints.CheckpointSettings` properties): they
#: decide what the networks see.
SAME_INPUT = ("image_size", "crop_size")


def member_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights of the network the checkpoint's model evaluates with (the EMA's when it kept one)."""
    return classifier(checkpoint).evaluation_net.state_dict()


def join(paths: list[Path]) -> dict[str, Any]:
    """The ensemble checkpoint of the checkpoints at ``paths``."""
    if len(paths) < 2:
        raise CheckpointError(f"an ensemble needs at least 2 checkpoints, got {len(paths)}")
    checkpoints = [load_checkpoint(path) for path in paths]
    first, first_path = checkpoints[0], paths[0]
    attributes = list(first["hyper_parameters"]["attributes"])
    data, settings = first.get("datamodule_hyper_parameters", {}), checkpoint_settings(first)
    for path, checkpoint in zip(paths[1:], checkpoints[1:]):
        theirs = list(checkpoint["hyper_parameters"]["attributes"])
        if theirs != attributes:
            raise CheckpointError(f"{path}: predicts {theirs}, but {first_path} predicts {attributes}")
        other_settings = checkpoint_settings(checkpoint)
        for key in SAME_INPUT:
            mine, other = getattr(settings, key), getattr(other_settings, key)
            if mine != other:
                raise CheckpointError(f"{path}: data.{key} is {other}, but {first_path} has {mine}")
    members = [
        {
            "net": c["hyper_parameters"]["net"],
            "net_kwargs": dict(c["hyper_parameters"].get("net_kwargs") or {}),
        }
        for c in checkpoints
    ]
    hyper = {
        **first["hyper_parameters"],
        "net": "ensemble",
        "net_kwargs": {"members": members},
        "ema_decay": None,
        "threshold_criterion": None,
        "channels_last": all(c["hyper_parameters"].get("channels_last", False) for c in checkpoints),
    }
    state = {"thresholds": torch.full((len(attributes),), DEFAULT_THRESHOLD)}
    for i, checkpoint in enumerate(checkpoints):
        state.update({f"net.members.{i}.{key}": value for key, value in member_weights(checkpoint).items()})
    return {
        "state_dict": state,
        "hyper_parameters": hyper,
        "datamodule_hyper_parameters": data,
        "pytorch-lightning_version": first.get("pytorch-lightning_version"),
        "epoch": first.get("epoch", 0),
        "global_step": first.get("global_step", 0),
        "ensemble_of": [str(path) for path in paths],
    }
