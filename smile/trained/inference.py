"""One inference model from any source: :func:`load_model` gives an :class:`InferenceModel` (batches of
aligned face images in, probabilities out) for a shipped model, a checkpoint, an ``.onnx`` file (run by
onnxruntime) or a ``.pt2`` archive. ``smile.load``, ``smile predict``, ``smile serve``, export's check
and the ensembles all predict through it.

A shipped model or a checkpoint is rebuilt from :mod:`smile.models` alone (the network by its registry
name, the weights it evaluates with, its test-time views): no Lightning, so a photo is predicted soon
after ``import torch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from smile.errors import SmileError
from smile.trained import checkpoints, exported, shipped
from smile.trained.description import ModelDescription
from smile.trained.sources import ModelSource, resolve


def probability_module(description: ModelDescription, weights: dict[str, Tensor]) -> nn.Module:
    """The network of ``description`` with ``weights`` (``net.*`` keys) as images -> probabilities, its
    test-time views included (:class:`~smile.models.views.ProbabilityModel`), in eval mode."""
    from smile.models import build_network
    from smile.models.views import ProbabilityModel

    network = dict(description.network)
    net = build_network(network["net"], len(description.attributes), **(network.get("net_kwargs") or {}))
    net.load_state_dict({key[4:]: value for key, value in weights.items() if key.startswith("net.")})
    uint8 = description.input_dtype == "uint8"
    return ProbabilityModel(net, [], uint8, description.mirror, description.shifts).eval()


def torch_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device (``None`` or ``"auto"``: a GPU when there is one)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SmileError(f"device={str(device)!r}: CUDA is not available here; use device='cpu'")
    return device


class InferenceModel:
    """A trained model ready to predict: :attr:`description` (what it predicts and takes in),
    :attr:`source` (where it came from), :attr:`device`, and either :attr:`module` (a torch module,
    images -> probabilities) or an onnxruntime session (:attr:`runtime` says which)."""

    def __init__(
        self,
        description: ModelDescription,
        source: ModelSource,
        device: torch.device,
        module: nn.Module | None = None,
        session: Any = None,
    ) -> None:
        if (module is None) == (session is None):
            raise ValueError("an InferenceModel runs a torch module or an onnxruntime session")
        self.description, self.source, self.device = description, source, device
        if module is not None and str(device) != "cpu":
            module = module.to(device)
        self.module = module  # built in eval mode (a torch.export module has no train mode to leave)
        self._session = session

    @property
    def runtime(self) -> str:
        return "torch" if self.module is not None else "onnxruntime"

    def __repr__(self) -> str:
        return f"InferenceModel({self.source.describe()}, runtime={self.runtime!r})"

    def __call__(self, batch: Tensor) -> Tensor:
        """``(N, K)`` probabilities of a prepared batch ``(N, 3, S, S)``, as a CPU tensor."""
        if self.module is None:
            return torch.from_numpy(self._session.run(None, {exported.INPUT_NAME: batch.cpu().numpy()})[0])
        with torch.inference_mode():
            return self.module(batch.to(self.device)).float().cpu()

    def probabilities(self, batch: Tensor) -> np.ndarray:
        """``(N, K)`` probabilities as a numpy array (an empty batch gives ``(0, K)``)."""
        if len(batch) == 0:
            return np.zeros((0, len(self.description.attributes)), dtype=np.float32)
        return self(batch).numpy()


def checkpoint_of(source: str | Path | ModelSource) -> dict[str, Any]:
    """The checkpoint dictionary of a shipped model or a checkpoint file (an exported file has none)."""
    found = source if isinstance(source, ModelSource) else resolve(source)
    if found.shipped is not None:
        return shipped.checkpoint_dict(*shipped.read_weights(found.shipped))
    return checkpoints.load_checkpoint(found.checkpoint_path())


def load_model(source: str | Path | ModelSource, device: str | torch.device | None = "cpu") -> InferenceModel:
    """The :class:`InferenceModel` of ``source`` (anything :func:`smile.trained.sources.resolve` takes,
    or a source it gave) on ``device``."""
    found = source if isinstance(source, ModelSource) else resolve(source)
    where = torch_device(device)
    provenance = {"source": found.name, "kind": found.kind}
    if found.kind == "onnx":
        return InferenceModel(
            exported.read_description(found.path),
            found,
            where,
            session=exported.onnx_session(found.path, where),
        )
    if found.kind == "pt2":
        return InferenceModel(
            exported.read_description(found.path), found, where, exported.pt2_module(found.path)
        )
    checkpoint = checkpoint_of(found)
    provenance.update(epoch=checkpoint.get("epoch"), global_step=checkpoint.get("global_step"))
    description = checkpoints.describe(checkpoint, provenance)
    module = probability_module(description, checkpoints.evaluation_weights(checkpoint))
    return InferenceModel(description, found, where, module)
