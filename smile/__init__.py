"""smile: face-attribute classifiers on CelebA with PyTorch Lightning.

``smile.load(path)`` gives a :class:`smile.api.Predictor` for a checkpoint or an exported ONNX file.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load", "Predictor", "FaceRecord"]


def __getattr__(name: str) -> Any:  # torch is imported on first use, not by ``import smile``
    if name in __all__:
        from smile import api

        return getattr(api, name)
    raise AttributeError(f"module 'smile' has no attribute {name!r}")
