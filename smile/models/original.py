"""The original notebook's network: four 3x3 convolutions (32-64-128-256) on a 64x64 input."""

from __future__ import annotations

from torch import Tensor, nn

from smile.models.layers import Dropout


class OriginalCNN(nn.Module):
    """Conv-ReLU-MaxPool blocks with dropout, global average pooling and a linear head.

    Returns logits, one per attribute; 388,673 parameters for one output.
    """

    def __init__(self, num_outputs: int = 1, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            Dropout(dropout),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            Dropout(dropout),
            nn.Conv2d(64, 128, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),  # the notebook's AvgPool2d(8) on 64x64 inputs; any size here
            nn.Flatten(),
        )
        self.head = nn.Linear(256, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
