"""Networks, chosen by name in the config (``model.net``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

from torch import nn

from smile.errors import OptionError
from smile.models.ensemble import Ensemble
from smile.models.mini_xception import MiniXception
from smile.models.original import OriginalCNN
from smile.models.resnet import OriginalBN, SmallResNet

#: The names ``model.net`` accepts: a Literal so that the parser checks them and ``--help`` lists them.
NetworkName = Literal["original", "original_bn", "resnet", "mini_xception", "ensemble"]



def ensemble(num_outputs: int = 1, members: Sequence[Mapping[str, Any]] = ()) -> Ensemble:
    """An :class:`~smile.models.ensemble.Ensemble` of the networks ``members`` name: each
    ``{"net": name, "net_kwargs": {...}}``, as its checkpoint saved them."""
    return Ensemble(
        [build_network(member["net"], num_outputs, **(member.get("net_kwargs") or {})) for member in members]
    )


NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "original": OriginalCNN,
    "original_bn": OriginalBN,
    "resnet": SmallResNet,
    "mini_xception": MiniXception,
    "ensemble": ensemble,
}
assert set(get_args(NetworkName)) == set(NETWORKS), "NetworkName must list the NETWORKS"


def network_options(name: str) -> list[str]:
    """The keyword arguments network ``name`` takes in ``model.net_kwargs`` (its outputs are set apart)."""
    parameters = inspect.signature(NETWORKS[name]).parameters
    return [key for key in parameters if key not in ("self", "num_outputs")]


def build_network(name: str, num_outputs: int, **kwargs: Any) -> nn.Module:
    """Instantiate the network registered as ``name`` with ``num_outputs`` logits."""
    if name not in NETWORKS:
        raise OptionError(f"model.net {name!r} is not a network; choose one of: {', '.join(NETWORKS)}")
    accepted = network_options(name)
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        raise OptionError(
            f"model.net_kwargs: {name} takes no {', '.join(map(repr, unknown))}; it accepts: "
            f"{', '.join(accepted) or 'nothing'}"
        )
    return NETWORKS[name](num_outputs=num_outputs, **kwargs)
