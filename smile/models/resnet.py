"""Small networks for the 64x64 input: the original CNN with batch normalisation, and a small ResNet."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from smile.errors import OptionError
from smile.models.layers import Dropout


class OriginalBN(nn.Module):
    """The original 4-conv network (32-64-128-256) with BatchNorm after each convolution.

    The same layout as :class:`smile.models.original.OriginalCNN`, with ``dropout`` (default 0.5,
    as the original) after the first two blocks; 389,153 parameters for one output.
    """

    def __init__(self, num_outputs: int = 1, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = [3, 32, 64, 128, 256]
        for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            if i < 2 and dropout > 0:
                layers.append(Dropout(dropout))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(256, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def conv_bn(cin: int, cout: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, stride), conv_bn(cout, cout, relu=False))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu = nn.ReLU(inplace=True)
        nn.init.zeros_(self.body[1][1].weight)  # each block starts as the identity ("zero-init" BN)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet for 64x64 faces, cheap enough for a laptop CPU.

    A 3x3 stem at full resolution, a 2x2 max-pool, then one stage per width (the first at 32x32,
    each next one halving the resolution with a strided block), then the head. With widths
    32-64-128-256 and one block each it costs about as much compute per image as the original network.

    The head is either global average pooling and a linear layer (``pool``, 1,226,657 parameters for
    one output), or ``spatial``: a 1x1 convolution to ``head_channels`` channels, BatchNorm, ReLU, an
    average pooling of the map to ``grid`` x ``grid`` cells (the identity for a 64x64 input, whose map
    is 4x4), and a linear layer on the cells (1,230,785 parameters). CelebA's faces are aligned, so where
    a feature is (the mouth is always low in the middle) tells a lot, and the spatial head lets the
    network use it: it learns much faster than the pooled one (docs/recipe.md). Both heads take any
    input size (``data.image_size``) with the same parameters.

    Args:
        num_outputs: logits, one per attribute.
        widths: channels of each stage (the stem has ``widths[0]``).
        blocks: residual blocks per stage (an int for all stages, or one per stage).
        dropout: dropout before the linear layer.
        head: ``pool`` or ``spatial``.
        head_channels: channels of the spatial head.
        grid: cells per side that the spatial head pools the last map to.
    """

    def __init__(
        self,
        num_outputs: int = 1,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks: int | Sequence[int] = 1,
        dropout: float = 0.0,
        head: str = "pool",
        head_channels: int = 16,
        grid: int = 4,
    ) -> None:
        super().__init__()
        blocks = [blocks] * len(widths) if isinstance(blocks, int) else list(blocks)
        if len(blocks) != len(widths):
            raise OptionError(f"blocks has {len(blocks)} entries but widths has {len(widths)}")
        layers: list[nn.Module] = [conv_bn(3, widths[0]), nn.MaxPool2d(2)]
        cin = widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            for j in range(count):
                layers.append(BasicBlock(cin, width, stride=2 if i > 0 and j == 0 else 1))
                cin = width
        if head == "pool":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), Dropout(dropout)]
            features = cin
        elif head == "spatial":
            if grid < 1:
                raise OptionError(f"model.net_kwargs.grid is {grid}: give a positive number of cells")
            layers += [
                nn.Conv2d(cin, head_channels, 1, bias=False),
                nn.BatchNorm2d(head_channels),
                nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(grid),
                nn.Flatten(),
                Dropout(dropout),
            ]
            features = head_channels * grid * grid
        else:
            raise OptionError(f"Unknown head {head!r} ; choose pool or spatial (model.net_kwargs.head)")
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(features, num_outputs)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
