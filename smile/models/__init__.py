"""Networks, chosen by name in the config (``model.net``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from smile.models.original import OriginalCNN
from smile.models.resnet import OriginalBN, SmallResNet

NETWORKS: dict[str, type[nn.Module]] = {
    "original": OriginalCNN,
    "original_bn": OriginalBN,
    "resnet": SmallResNet,
}


def build_network(name: str, num_outputs: int, **kwargs: Any) -> nn.Module:
    """Instantiate the network registered as ``name`` with ``num_outputs`` logits."""
    if name not in NETWORKS:
        raise ValueError(f"Unknown network {name!r} (model.net); choose one of: {', '.join(NETWORKS)}")
    return NETWORKS[name](num_outputs=num_outputs, **kwargs)
