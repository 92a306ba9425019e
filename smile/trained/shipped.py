"""The trained models that ship inside the package, by name: ``smiling`` and ``attributes``.

Each is ``smile/models/weights/NAME.safetensors`` (weights only, no pickle: the ecosystem's format for
shipped weights) with everything the model needs in its header (the model's and the data's settings:
attributes, thresholds, input size, crop window, test-time views), and ``NAME.card.json``, its model
card: what it is for, how it was made, what it scored, and the SHA-256 of the weights file, which is
checked before the weights are used.

A name works wherever a checkpoint is taken (``smile.load("smiling")``, ``--ckpt_path attributes``,
:mod:`smile.trained.sources`): the inference model is built straight from the file; the Lightning
commands get a checkpoint written once from it into the cache (:func:`checkpoint_file`).
"""

from __future__ import annotations

import importlib.resources
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from smile.errors import CheckpointError
from smile.io import digest_mismatch
from smile.trained.description import ModelDescription

#: The names of the shipped models; ``smiling`` is the default of ``smile.load()`` and ``smile predict``.
NAMES = ("smiling", "attributes")
DEFAULT = "smiling"
#: The key of the safetensors header entry that holds the model's settings (JSON).
METADATA_KEY = "smile"
FORMAT_VERSION = 1


def weights_folder() -> Path:
    """Where the shipped files are (inside the installed package)."""
    return Path(str(importlib.resources.files("smile.models") / "weights"))


@dataclass(frozen=True)
class ShippedModel:
    """A shipped model: its weights file and its model card (``card``, the parsed ``NAME.card.json``)."""

    name: str
    path: Path
    card: dict[str, Any]

    @property
    def summary(self) -> str:
        """One line: what it predicts, and how well."""
        return str(self.card.get("summary", ""))


@cache
def shipped_models() -> dict[str, ShippedModel]:
    """The shipped models whose files are installed, by name."""
    folder = weights_folder()
    models = {}
    for name in NAMES:
        path, card = folder / f"{name}.safetensors", folder / f"{name}.card.json"
        if path.is_file() and card.is_file():
            models[name] = ShippedModel(name, path, json.loads(card.read_text()))
    return models


def shipped(name: str | os.PathLike) -> ShippedModel | None:
    """The shipped model called ``name``, or ``None`` (not a name, or a file of that name exists here)."""
    if not isinstance(name, str) or name not in NAMES or Path(name).is_file():
        return None
    model = shipped_models().get(name)
    if model is None:
        raise CheckpointError(
            f"the shipped model {name!r} is not installed with this copy of smile ({weights_folder()} has "
            f"no {name}.safetensors); reinstall smile"
        )
    return model


def read_weights(model: ShippedModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """The weights (a state_dict of :class:`~smile.system.AttributeClassifier`) and the settings of a
    shipped model, after checking the file against its card: a damaged, truncated or replaced file is
    refused with the reason."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = model.path.read_bytes()
    mismatch = digest_mismatch(data, model.card["weights"]["sha256"], model.card["weights"]["bytes"])
    if mismatch:
        raise CheckpointError(
            f"{model.path}: damaged or replaced: {mismatch} ({model.name}.card.json); reinstall smile"
        )
    try:
        state = load(data)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        settings = json.loads(header["__metadata__"][METADATA_KEY])
    except (SafetensorError, KeyError, ValueError) as err:
        raise CheckpointError(f"{model.path}: not a shipped smile model ({err})") from err
    return state, settings


def checkpoint_dict(state: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A shipped model as the checkpoint dictionary the rest of smile reads (weights, the model's and the
    data's hyper-parameters)."""
    return {
        "state_dict": state,
        "hyper_parameters": settings["hyper_parameters"],
        "datamodule_hyper_parameters": settings["datamodule_hyper_parameters"],
        "epoch": settings.get("epoch", 0),
        "global_step": settings.get("global_step", 0),
        "pytorch-lightning_version": settings.get("pytorch-lightning_version", "2.6.0"),
        "shipped": settings["name"],
    }


def cache_folder() -> Path:
    """Where checkpoints written from shipped models are kept: ``models/`` in smile's user cache
    (:func:`smile.data.cache.user_cache_home`)."""
    from smile.data.cache import user_cache_home

    return user_cache_home() / "models"


def checkpoint_file(model: ShippedModel) -> Path:
    """A Lightning checkpoint of a shipped model, for the commands that run a Trainer: written once
    (atomically) into :func:`cache_folder`, named by the weights' hash, so a new version of smile writes
    its own."""
    from smile.trained.checkpoints import save_checkpoint

    digest = model.card["weights"]["sha256"]
    path = cache_folder() / f"{model.name}-{digest[:12]}.ckpt"
    if not path.is_file():
        save_checkpoint(checkpoint_dict(*read_weights(model)), path)
    return path


def _table(rows: list[list[Any]]) -> list[str]:
    head, *body = rows
    lines = ["| " + " | ".join(map(str, head)) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in body]


def description_table(description: ModelDescription) -> list[str]:
    """The model's :class:`~smile.trained.description.ModelDescription` as a Markdown table."""
    views = ["the image"] + (["its mirror image"] if description.mirror else [])
    if description.shifts:
        views.append(f"shifts of {', '.join(f'{s:+g}' for s in description.shifts)} of the height")
    rows = [
        ["attributes", ", ".join(description.attributes)],
        ["network", f"{description.network.get('net')}"],
        [
            "input",
            f"{description.channels} {description.image_size}x{description.image_size}, {description.input_dtype}",
        ],
        [
            "face window",
            f"the central {description.crop_size}x{description.crop_size} of the 178x218 aligned face",
        ],
        ["test-time views", " and ".join(views)],
        ["thresholds", description.threshold_criterion or "0.5 for every attribute"],
    ]
    return _table([["", ""], *rows])


def card_markdown(card: dict[str, Any], description: ModelDescription | None = None) -> str:
    """A model card as Markdown: what ``smile models NAME`` prints and ``docs/models/NAME.md`` holds;
    with the model's ``description``, its inputs and outputs too."""
    lines = [f"# Model card: `{card['name']}`", "", card["summary"], ""]
    lines += ["## What it is", "", "\n\n".join(card["what"]), ""]
    if description is not None:
        lines += ["## Input and output", "", *description_table(description), ""]
    lines += ["## Intended use", "", *(f"- {item}" for item in card["intended_use"]), ""]
    lines += ["Not for:", "", *(f"- {item}" for item in card["not_for"]), ""]
    training = card["training"]
    lines += ["## Training data and licence", "", "\n\n".join(training["data"]), ""]
    lines += [
        "## How it was made",
        "",
        "```bash",
        training["command"],
        "```",
        "",
        f"- commit `{training['commit']}`; {training['machine']}; fit {training['fit']}",
        *(f"- {note}" for note in training.get("notes", [])),
        "",
    ]
    lines += [
        "## Figures",
        "",
        "\n\n".join(card["figures"]["intro"]),
        "",
        *_table(card["figures"]["table"]),
        "",
    ]
    lines += [*(f"- {note}" for note in card["figures"].get("notes", [])), ""]
    slices = card["slices"]
    lines += ["## Slices", "", "\n\n".join(slices["intro"]), "", *_table(slices["table"]), ""]
    lines += ["## Known limits", "", *(f"- {item}" for item in card["limits"]), ""]
    weights = card["weights"]
    lines += [
        "## Files",
        "",
        *_table(
            [["file", "bytes", "SHA-256"]]
            + [
                [f"`{f['file']}`", f"{f['bytes']:,}", f"`{f['sha256']}`"]
                for f in [weights, *card.get("files", [])]
            ]
        ),
        "",
    ]
    return "\n".join(lines).rstrip() + "\n"
