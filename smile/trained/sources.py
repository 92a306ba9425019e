"""Where a trained model comes from, decided once: :func:`resolve` turns what a user typed (a shipped
model's name, ``best``/``last``, a checkpoint, an ``.onnx`` or a ``.pt2`` file) into a
:class:`ModelSource` that says what it is and where; everything that loads a model starts from one."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from smile.errors import CheckpointError
from smile.trained import shipped as shipped_models

#: The folder of the runs that ``best``/``last`` look in.
LOG_ROOT = Path("lightning_logs")
#: The newest run's files by alias (an exported file lies beside its checkpoint: ``best.onnx`` is the
#: newest run's export of ``best``).
ALIASES = {"best": "best.ckpt", "last": "last.ckpt"}
ALIASES.update(
    {name: name for name in ("best.ckpt", "last.ckpt", "best.onnx", "last.onnx", "best.pt2", "last.pt2")}
)
SUFFIX_KINDS = {".onnx": "onnx", ".pt2": "pt2"}
#: How every command and the Python API name the models they take.
CHOICES = "smiling or attributes (shipped: smile models lists them), best or last (the newest run's), or a file's path"

Kind = Literal["shipped", "checkpoint", "onnx", "pt2"]


@dataclass(frozen=True)
class ModelSource:
    """A model to load: its ``kind``, the file (``path``; a shipped model's ``.safetensors``), what the
    user gave (``given``) and, for a shipped model, its record (``shipped``)."""

    kind: Kind
    path: Path
    given: str
    shipped: shipped_models.ShippedModel | None = None

    @property
    def name(self) -> str:
        """A short name: the shipped model's, else the file's."""
        return self.shipped.name if self.shipped is not None else self.path.name

    def describe(self) -> str:
        """What it is and where, in a few words."""
        if self.shipped is not None:
            return f"the shipped model {self.shipped.name} ({self.path})"
        what = {"checkpoint": "checkpoint", "onnx": "ONNX file", "pt2": "torch.export file"}[self.kind]
        return f"{what} {self.path}"

    def note(self) -> str | None:
        """What to tell the user when ``given`` named another file than itself (an alias, a shipped
        model), else ``None``."""
        if self.shipped is not None:
            return f"Using the shipped model {self.shipped.name} (smile models {self.shipped.name} prints its card)"
        if str(self.path) == self.given:
            return None
        return f"Using {self.describe()}"

    def checkpoint_path(self) -> Path:
        """A Lightning checkpoint of this model, for the commands that run a Trainer or need training
        settings (a shipped model's is written once into the cache)."""
        if self.shipped is not None:
            return shipped_models.checkpoint_file(self.shipped)
        if self.kind != "checkpoint":
            raise CheckpointError(
                f"{self.path} is an exported file ({self.kind}): it predicts (smile predict, smile.load, "
                "smile serve) but holds no training settings; give the checkpoint it was exported from"
            )
        return self.path


def resolve(value: str | Path, log_root: str | Path = LOG_ROOT) -> ModelSource:
    """The :class:`ModelSource` of ``value``: an existing file as it is (by its suffix: ``.onnx``,
    ``.pt2``, else a checkpoint); a shipped model's name; ``best``/``last`` (and ``best.onnx``...) as the
    newest run's file of that name. A file of the same name here wins over a name or an alias."""
    given = str(value)
    path = Path(value)
    if path.is_file():
        return ModelSource(SUFFIX_KINDS.get(path.suffix, "checkpoint"), path, given)  # type: ignore[arg-type]
    if given in shipped_models.NAMES:
        model = shipped_models.shipped(given)
        return ModelSource("shipped", model.path, given, model)
    name = ALIASES.get(given)
    if name is None and (path.suffix or len(path.parts) > 1):  # a path, not a name
        raise CheckpointError(
            f"{given} does not exist: give an existing file, or {CHOICES.split(', or ')[0]}"
        )
    if name is None:
        close = difflib.get_close_matches(given, [*shipped_models.NAMES, "best", "last"], n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise CheckpointError(f"model {given!r} not found: no such file; {hint}give {CHOICES}")
    log_root = Path(log_root)
    candidates = [found for found in log_root.glob(f"*/checkpoints/{name}") if found.is_file()]
    if not candidates:
        raise CheckpointError(
            f"{given}: no file {given} here and no run under {log_root}/ has checkpoints/{name}. "
            "Train first (smile fit --config demo), or give a shipped model (smiling, "
            "attributes) or a file's path"
        )
    newest = max(candidates, key=lambda candidate: (candidate.stat().st_mtime, str(candidate)))
    return ModelSource(SUFFIX_KINDS.get(newest.suffix, "checkpoint"), newest, given)  # type: ignore[arg-type]


def required(value: str | Path | None, command: str) -> ModelSource:
    """The source of a command that evaluates a model: ``value`` resolved, or, when none was given, the
    rule every such command keeps (never a freshly initialised network): one line naming the choices."""
    if value is None or str(value) == "":
        raise CheckpointError(
            f"smile {command} needs a model: give --ckpt_path smiling, attributes (shipped), best, last (the "
            "newest run's) or a checkpoint's path"
        )
    return resolve(value)
