"""``smile ensemble``: trained checkpoints joined into one that answers with their mean logit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers.benchmarks import benchmark
from helpers.cli import FAST

from smile.cli import main
from smile.errors import CheckpointError
from smile.models import build_network
from smile.system import AttributeClassifier
from smile.trained.ensemble import join


@pytest.fixture(scope="module")
def members(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two short fits of different networks on the synthetic CelebA: their last checkpoints."""
    paths = []
    for net in ("original", "mini_xception"):
        folder = tmp_path_factory.mktemp(net)
        os.chdir(folder)
        assert main(["fit", "--data.root", str(synthetic_root), "--trainer.max_epochs", "1", "--model.net", net,
                     *FAST]) == 0  # fmt: skip
        paths.append(folder / "lightning_logs/version_0/checkpoints/last.ckpt")
    return paths


def test_ensemble_predicts_the_mean_logit_and_tests_like_any_checkpoint(
    members: list[Path], tmp_path: Path
) -> None:
    os.chdir(tmp_path)
    assert main(["ensemble", *map(str, members), "--out", "both.ckpt"]) == 0
    joined = AttributeClassifier.load_from_checkpoint(tmp_path / "both.ckpt", weights_only=True).eval()
    alone = [AttributeClassifier.load_from_checkpoint(path, weights_only=True).eval() for path in members]
    images = torch.rand(5, 3, 64, 64)
    with torch.no_grad():
        expected = (alone[0](images) + alone[1](images)) / 2
        assert torch.allclose(joined(images), expected, atol=1e-6)
        assert not torch.allclose(alone[0](images), alone[1](images), atol=1e-3)
    assert main(["test", "--ckpt_path", "both.ckpt", "--trainer.enable_progress_bar", "false"]) == 0
    assert main(["ensemble", *map(str, members), "--out", "both.ckpt"]) == 0  # never over the first
    assert (tmp_path / "both-2.ckpt").is_file()


def test_members_with_other_attributes_are_refused_by_name(
    members: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = torch.load(members[1], weights_only=True)
    other["hyper_parameters"]["attributes"] = ["Eyeglasses"]
    torch.save(other, tmp_path / "glasses.ckpt")
    assert (
        main(["ensemble", str(members[0]), str(tmp_path / "glasses.ckpt"), "--out", str(tmp_path / "x.ckpt")])
        == 2
    )
    assert "glasses.ckpt: predicts ['Eyeglasses'], but" in capsys.readouterr().err
    assert not (tmp_path / "x.ckpt").exists()
    other["hyper_parameters"]["attributes"] = ["Smiling"]
    other["datamodule_hyper_parameters"]["image_size"] = 80
    torch.save(other, tmp_path / "larger.ckpt")
    with pytest.raises(CheckpointError, match=r"larger.ckpt: data.image_size is 80, but .* has 64"):
        join([members[0], tmp_path / "larger.ckpt"])
    # a tighter face window is another input too; a checkpoint saved before data.crop_size had 178
    other["datamodule_hyper_parameters"]["image_size"] = 64
    other["datamodule_hyper_parameters"]["crop_size"] = 138
    torch.save(other, tmp_path / "tighter.ckpt")
    with pytest.raises(CheckpointError, match=r"tighter.ckpt: data.crop_size is 138, but .* has 178"):
        join([members[0], tmp_path / "tighter.ckpt"])
    other["datamodule_hyper_parameters"]["crop_size"] = 178
    torch.save(other, tmp_path / "same.ckpt")
    join([members[0], tmp_path / "same.ckpt"])


def test_an_ensemble_needs_two_members() -> None:
    with pytest.raises(Exception, match="at least 2 members"):
        build_network("ensemble", 1, members=[{"net": "original"}])


def test_the_speed_benchmark_times_a_joined_checkpoint_as_test_runs_it(
    members: list[Path], tmp_path: Path
) -> None:
    """``benchmarks/speed.py --ckpt``: the whole model a checkpoint holds (both members), at its input size."""
    os.chdir(tmp_path)
    assert main(["ensemble", *map(str, members), "--out", "both.ckpt"]) == 0
    with benchmark("speed") as speed:
        result = speed.measure_checkpoint("both.ckpt", batch=4, bf16=False, seconds=0.0)
    alone = [AttributeClassifier.load_from_checkpoint(path, weights_only=True) for path in members]
    assert result["params"] == sum(p.numel() for model in alone for p in model.parameters())
    assert result["image_size"] == 64 and result["images_per_s"] > 0
