"""Files written by ``smile export``, read back: their :class:`~smile.trained.description.ModelDescription`
(JSON under :data:`METADATA_KEY` in an ONNX model's ``metadata_props``, the extra file
:data:`EXTRA_FILE` in a ``.pt2`` archive) and the runtimes that run them: :func:`onnx_session`, the one
builder of onnxruntime sessions, and :func:`pt2_module`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from smile.errors import CheckpointError
from smile.install import install_hint
from smile.trained.description import ModelDescription

METADATA_KEY = "smile"
EXTRA_FILE = "smile.json"
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of an exported file, as written."""
    path = Path(path)
    try:
        if path.suffix == ".onnx":
            import onnx

            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            return json.loads(props[METADATA_KEY])
        import torch

        extra = {EXTRA_FILE: ""}
        torch.export.load(str(path), extra_files=extra)
        return json.loads(extra[EXTRA_FILE])
    except ImportError as err:
        raise CheckpointError(
            f"{path}: reading an ONNX file needs {err.name}: {install_hint('export')}"
        ) from err
    except (KeyError, ValueError, RuntimeError, OSError) as err:
        raise CheckpointError(f"{path}: not a file written by smile export ({err!r})") from err


def read_description(path: str | Path) -> ModelDescription:
    """The :class:`ModelDescription` an exported file carries."""
    return ModelDescription.from_json(read_metadata(path), where=str(path))


def onnx_session(path: str | Path, device: Any = "cpu") -> Any:
    """An onnxruntime session for the ONNX file at ``path``, on the GPU when ``device`` is a CUDA device
    and onnxruntime has the CUDA provider, else on the CPU. Its ``run`` is thread-safe."""
    try:
        import onnxruntime
    except ImportError as err:
        raise CheckpointError(f"running an ONNX file needs onnxruntime: {install_hint('export')}") from err
    providers: list[Any] = ["CPUExecutionProvider"]
    device_type, _, index = str(device).partition(":")
    if device_type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index or 0)}))
    return onnxruntime.InferenceSession(str(path), providers=providers)


def pt2_module(path: str | Path) -> Any:
    """The module of a ``torch.export`` archive (images -> probabilities)."""
    import torch

    return torch.export.load(str(path)).module()
