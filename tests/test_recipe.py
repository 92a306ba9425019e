"""The stronger recipe's parts: networks, batch augmentation, recipe options in a fit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers.cli import FAST as CLI_FAST

from smile.cli import main
from smile.data.batch_transforms import BatchAugment
from smile.errors import OptionError
from smile.models import NETWORKS, build_network
from smile.models.views import flip_averaged, shifted_rows, view_averaged
from smile.system import AttributeClassifier
from smile.training.recipe import build_optimizer, build_scheduler, lr_factor, smooth_targets

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RESNET = CONFIGS.parent / "benchmarks" / "configs" / "resnet.yaml"  # the ResNet recipe the benchmarks compare
FAST = [*CLI_FAST, "--trainer.limit_test_batches", "1"]


#: Arguments a network cannot do without (an ensemble needs its members).
REQUIRED = {"ensemble": {"members": [{"net": "original"}, {"net": "mini_xception"}]}}


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("outputs", [1, 40])
def test_every_network_gives_one_logit_per_attribute(name: str, outputs: int) -> None:
    net = build_network(name, outputs, **REQUIRED.get(name, {})).eval()
    assert net(torch.rand(3, 3, 64, 64)).shape == (3, outputs)


def test_parameter_counts() -> None:
    count = {
        name: sum(p.numel() for p in build_network(name, 1, **REQUIRED.get(name, {})).parameters())
        for name in NETWORKS
    }
    assert count == {
        "original": 388_673,
        "original_bn": 389_153,
        "resnet": 1_226_657,
        "mini_xception": 56_951,
        "ensemble": 388_673 + 56_951,
    }


def test_spatial_head() -> None:
    net = build_network("resnet", 3, head="spatial", head_channels=8).eval()
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 3)
    assert net.head.in_features == 8 * 4 * 4
    assert sum(p.numel() for p in build_network("resnet", 1, head="spatial").parameters()) == 1_230_785
    with pytest.raises(ValueError, match="Unknown head"):
        build_network("resnet", 1, head="attention")


@pytest.mark.parametrize("net,kwargs", [("original", {}), ("resnet", {"head": "spatial"}), ("resnet", {})])
def test_networks_follow_the_input_size(net: str, kwargs: dict) -> None:
    """``data.image_size`` other than 64 needs no change to the network, and keeps its parameters."""
    model = build_network(net, 2, **kwargs).eval()
    params = sum(p.numel() for p in model.parameters())
    for side in (48, 64, 80, 96, 128):
        assert model(torch.rand(2, 3, side, side)).shape == (2, 2)
    assert sum(p.numel() for p in build_network(net, 2, **kwargs).parameters()) == params


def test_original_pools_the_whole_map() -> None:
    """On a 96x96 input every position counts (the notebook's fixed 8x8 pooling saw only the top left)."""
    model = build_network("original", 1, dropout=0.0).eval()
    x = torch.rand(1, 3, 96, 96)
    changed = x.clone()
    changed[..., 80:, 80:] = 0
    assert not torch.allclose(model(x), model(changed))


def test_resnet_options() -> None:
    net = build_network("resnet", 2, widths=[8, 16], blocks=[1, 2], dropout=0.1)
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 2)
    with pytest.raises(ValueError, match="blocks has 3 entries"):
        build_network("resnet", 1, widths=[8, 16], blocks=[1, 1, 1])


def test_batch_augment_keeps_shape_and_range_and_is_identity_when_off() -> None:
    x = torch.rand(16, 3, 64, 64)
    assert torch.equal(BatchAugment()(x), x)
    augment = BatchAugment(0.3, 0.3, 0.3, rotate=10, scale=0.1, translate=0.05, erase=1.0)
    y = augment(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(y, x)


def test_schedule_warms_up_then_decays() -> None:
    assert lr_factor(0, 100, 10, "onecycle") == pytest.approx(0.04)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)
    net = torch.nn.Linear(2, 1)
    optimizer = build_optimizer(net, "adamw", 1e-3, 0.05)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]  # no decay on the bias
    assert build_scheduler(optimizer, "none", 10, 0) is None
    with pytest.raises(ValueError, match="Unknown scheduler"):
        build_scheduler(optimizer, "step", 10, 0)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        build_optimizer(net, "lion", 1e-3, 0.0)


def test_label_smoothing_and_flip_averaging() -> None:
    assert torch.allclose(smooth_targets(torch.tensor([0.0, 1.0]), 0.1), torch.tensor([0.05, 0.95]))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 1))
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(flip_averaged(net, x), (net(x) + net(x.flip(-1))) / 2)


def test_shifted_views_are_windows_of_the_edge_padded_image() -> None:
    x = torch.rand(2, 3, 10, 6)
    tall = F.pad(x, (0, 0, 3, 3), mode="replicate")  # 3 edge rows above and below
    for rows in (-3, -1, 0, 2, 3):
        assert torch.equal(shifted_rows(x, rows), tall[:, :, 3 + rows : 13 + rows])
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 10 * 6, 2))
    views = [x, shifted_rows(x, -2), shifted_rows(x, 1)]  # round(-0.2 * 10), round(0.1 * 10)
    expected = torch.stack([net(v) for v in views + [v.flip(-1) for v in views]]).mean(0)
    assert torch.allclose(view_averaged(net, x, mirror=True, shifts=[-0.2, 0.1]), expected, atol=1e-6)
    assert torch.allclose(
        view_averaged(net, x, mirror=False, shifts=[-0.2, 0.1]), torch.stack([net(v) for v in views]).mean(0)
    )
    assert torch.equal(view_averaged(net, x, mirror=False), net(x))


def test_system_averages_its_test_time_views_in_evaluation_only() -> None:
    torch.manual_seed(0)  # the same weights and input whatever ran before
    system = AttributeClassifier(net="original_bn", tta=True, tta_shifts=[-0.1, 0.1])
    x = torch.rand(2, 3, 64, 64)
    system.train()
    torch.manual_seed(0)  # the same dropout masks
    trained = system(x)
    torch.manual_seed(0)
    assert torch.equal(trained, system.net(x))
    system.eval()
    assert torch.allclose(system(x), view_averaged(system.net, x, True, [-0.1, 0.1]), atol=1e-6)
    assert not torch.allclose(system(x), flip_averaged(system.net, x), atol=1e-4)
    for bad in ([0.5], [0.0], [-0.7]):
        with pytest.raises(OptionError, match=r"model.tta_shifts has .*between -0.5 and 0.5"):
            AttributeClassifier(tta_shifts=bad)


def test_system_evaluates_with_the_averaged_weights() -> None:
    system = AttributeClassifier(net="original_bn", ema_decay=0.9, tta=True, channels_last=True)
    with torch.no_grad():
        for p in system.net.parameters():
            p.add_(1.0)  # the trained weights move; the average has not been updated yet
    system.eval()
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(system(x), flip_averaged(system.ema.module.eval(), x), atol=1e-5)
    system.ema.update_parameters(system.net)  # the first update copies the weights
    assert torch.allclose(system(x), flip_averaged(system.net.eval(), x), atol=1e-5)


def test_defaults_are_the_original_recipe() -> None:
    system = AttributeClassifier()
    assert system.hparams.net == "original" and system.ema is None
    assert (system.hparams.optimizer, system.hparams.scheduler, system.hparams.tta) == ("adam", "none", False)
    assert system.hparams.label_smoothing == 0.0
    config = yaml.safe_load((CONFIGS / "notebook.yaml").read_text())
    assert config["model"] == {"net": "original", "lr": 0.001}
    assert "cache" not in config["data"] and "augment" not in config["data"]


def test_recipe_config_fits_tests_and_checkpoints_the_average(synthetic_root: Path, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    args = ["fit", "--config", str(RESNET), "--data.root", str(synthetic_root)]
    args += ["--trainer.max_epochs", "2", "--trainer.precision", "32", "--test_after_fit", "true", *FAST]
    args += ["--model.ema_decay", "0.995"]  # the config leaves the average off; check it is checkpointed
    assert main(args) == 0
    checkpoint = torch.load("lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["net"] == "resnet"
    assert any(key.startswith("ema.module.") for key in checkpoint["state_dict"])
    assert checkpoint["state_dict"]["ema.n_averaged"] == 2 * 3  # every step: 2 epochs of FAST's 3 batches
    assert checkpoint["lr_schedulers"], "the one-cycle schedule is saved for resuming"


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle"])
def test_options_in_a_fast_dev_run(synthetic_root: Path, tmp_path: Path, scheduler: str) -> None:
    os.chdir(tmp_path)
    args = ["fit", "--data.root", str(synthetic_root), "--trainer.fast_dev_run", "true", *FAST]
    args += ["--model.net", "original_bn", "--model.optimizer", "adamw", "--model.scheduler", scheduler]
    args += ["--model.warmup_epochs", "0.5", "--model.label_smoothing", "0.1", "--model.ema_decay", "0.99"]
    args += [
        "--model.tta",
        "true",
        "--data.num_workers",
        "0",
        "--data.augment",
        '{"brightness": 0.2, "erase": 0.5}',
    ]
    assert main(args) == 0


def resolved(capsys: pytest.CaptureFixture, *names: str) -> dict:
    """``configs/<names>`` given in turn, as the CLI merges them (``fit --print_config``)."""
    args = [arg for name in names for arg in ("--config", str(CONFIGS / name))]
    with pytest.raises(SystemExit):
        main(["fit", *args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


def test_full_config_is_an_overlay_on_the_recipe(capsys: pytest.CaptureFixture) -> None:
    """configs/full.yaml holds only what full CelebA changes; everything else comes from the recipe."""
    merged, recipe = resolved(capsys, "smile.yaml", "full.yaml"), resolved(capsys, "smile.yaml")
    overlay = yaml.safe_load((CONFIGS / "full.yaml").read_text())
    assert "model" not in overlay and merged["model"] == recipe["model"]
    assert merged["trainer"]["max_epochs"] == overlay["trainer"]["max_epochs"]
    assert merged["data"]["batch_size"] == overlay["data"]["batch_size"]
    assert merged["data"]["cache"] is True


def test_bfloat16_on_a_cpu_without_it_is_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    from smile import devices

    monkeypatch.setattr(devices, "cpu_has_fast_bfloat16", lambda: False)
    message = devices.slow_precision_message("bf16-mixed", "cpu")
    assert message and "--trainer.precision 32-true" in message
    assert devices.slow_precision_message("32-true", "cpu") is None
    assert devices.slow_precision_message("bf16-mixed", "cuda") is None
    assert devices.cpu_precision("cpu", "bf16-mixed")[0] == "32-true"
    assert devices.cpu_precision("cpu", "32-true") == ("32-true", None)
    monkeypatch.setattr(devices, "has_gpu", lambda: True)
    assert devices.cpu_precision("auto", "bf16-mixed") == ("bf16-mixed", None)  # the GPU has bfloat16
    assert devices.cpu_precision("cpu", "bf16-mixed")[0] == "32-true"
    monkeypatch.setattr(devices, "cpu_has_fast_bfloat16", lambda: True)
    assert devices.slow_precision_message("bf16-mixed", "cpu") is None
    assert devices.cpu_precision("cpu", "bf16-mixed") == ("bf16-mixed", None)


#: Where configs/smile.yaml and configs/attributes.yaml differ, by design; every other setting they both
#: give must agree, so that the two recipes cannot drift apart.
RECIPE_DIFFERENCES = {
    "model.net", "model.net_kwargs", "model.warmup_epochs", "model.tta_shifts", "model.threshold_criterion",
    "data.attributes", "data.image_size", "data.crop_size",
    "trainer.max_epochs", "trainer.precision", "trainer.check_val_every_n_epoch",
}  # fmt: skip


def _settings(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and key in ("trainer", "model", "data"):
            flat.update(_settings(value, f"{key}."))
        else:
            flat[prefix + key] = value
    return flat


def test_smiling_and_attribute_recipes_share_their_settings(capsys: pytest.CaptureFixture) -> None:
    smiling, attributes = resolved(capsys, "smile.yaml"), resolved(capsys, "attributes.yaml")
    a, b = _settings(smiling), _settings(attributes)
    drifted = {key: (a[key], b[key]) for key in a.keys() & b.keys() - RECIPE_DIFFERENCES if a[key] != b[key]}
    assert not drifted, f"set apart in one recipe only: {drifted}"
    for name in ("smile.yaml", "attributes.yaml"):  # each file stands alone and says what it shares
        given = _settings(yaml.safe_load((CONFIGS / name).read_text()))
        for key in (
            "model.optimizer",
            "model.lr",
            "model.weight_decay",
            "model.scheduler",
            "data.batch_size",
        ):
            assert key in given, (name, key)
    assert smiling["model"]["net"] == "mini_xception" and smiling["model"]["net_kwargs"] == {
        "pretrained": "fer"
    }
    assert smiling["model"]["warmup_epochs"] == 0.1 and smiling["model"]["tta"] is True
    assert not smiling["model"]["tta_shifts"]  # the mirror alone: 2 passes, not 10
    assert (smiling["data"]["crop_size"], smiling["data"]["image_size"]) == (138, 64)
    assert attributes["model"]["net_kwargs"]["head_channels"] == 64
    assert attributes["model"]["threshold_criterion"] == "f1" and attributes["data"]["attributes"] == "all"
    assert attributes["model"]["tta_shifts"] == [-0.1, -0.05, 0.05, 0.1]
    assert (attributes["data"]["image_size"], attributes["trainer"]["precision"]) == (112, "bf16-mixed")
    # validation (10 views) every 4 epochs, and so after the last one, whose thresholds the checkpoint ships
    every = attributes["trainer"]["check_val_every_n_epoch"]
    assert every == 4 and attributes["trainer"]["max_epochs"] % every == 0


def test_every_config_runs_alone_in_a_fast_dev_run(synthetic_root: Path, tmp_path: Path) -> None:
    """Each config with one --config (and the data and speed flags of a smoke test)."""
    os.chdir(tmp_path)
    for name in ("smile.yaml", "notebook.yaml", "attributes.yaml", "demo.yaml"):
        args = ["fit", "--config", str(CONFIGS / name), "--data.root", str(synthetic_root)]
        args += ["--trainer.fast_dev_run", "true", "--trainer.precision", "32-true", *FAST]
        assert main([*args, "--data.synthetic_images", "null"]) == 0, name


def test_configs_comment_only_what_would_surprise() -> None:
    """At most 40 comment lines across the configs: the reasons live in docs/recipe.md."""
    comments = sum(
        1 for path in CONFIGS.glob("*.yaml") for line in path.read_text().splitlines() if "#" in line
    )
    assert comments <= 40, comments


def test_recipes_go_by_name_from_any_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from smile import recipes

    assert recipes.names() == sorted(path.stem for path in CONFIGS.glob("*.yaml"))
    demo = yaml.safe_load((CONFIGS / "demo.yaml").read_text())
    for folder, name in ((tmp_path, "demo"), (tmp_path, "demo.yaml"), (CONFIGS.parent, "demo")):
        os.chdir(folder)  # the clone's root holds a folder named smile: a name is still the recipe
        with pytest.raises(SystemExit):
            main(["fit", f"--config={name}", "--print_config"])
        assert yaml.safe_load(capsys.readouterr().out)["data"]["root"] == demo["data"]["root"]
    os.chdir(tmp_path)
    (tmp_path / "demo").write_text("data:\n  root: mine\n")  # a file of that name is the user's own
    with pytest.raises(SystemExit):
        main(["fit", "--config", "demo", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["data"]["root"] == "mine"


def test_a_config_path_that_is_not_there_names_the_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    os.chdir(tmp_path)
    assert main(["fit", "--config", "configs/smile.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --config configs/smile.yaml: no such file in ")
    assert "--config smile, from any folder" in err[0]
    assert main(["check-data", "--config", "mine.yml"]) == 2
    assert "--config mine.yml: no such file" in capsys.readouterr().err


def test_the_installed_package_carries_the_recipes() -> None:
    """configs/ is installed as smile/configs (package data), and the package list names every package."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from setuptools import find_packages

    settings = tomllib.loads((CONFIGS.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert settings["package-dir"] == {"smile.configs": "configs"}
    assert settings["package-data"]["smile.configs"] == ["*.yaml"]
    assert sorted(settings["packages"]) == sorted(
        [*find_packages(str(CONFIGS.parent), include=["smile*"]), "smile.configs"]
    )
