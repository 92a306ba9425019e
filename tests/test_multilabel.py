"""All 40 attributes end to end on synthetic data: fit, test with the report, the report command, and
attribute-list mismatches."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from helpers.cli import FAST
from helpers.runs import last_scalars
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from smile.cli import main
from smile.data.celeba import CELEBA_ATTRIBUTES
from smile.data.datamodule import CelebADataModule
from smile.errors import CheckpointError
from smile.evaluation.curves import read_curves
from smile.evaluation.runner import make_report
from smile.system import AttributeClassifier


@pytest.fixture(scope="module")
def all40(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``fit --data.attributes all --test_after_fit true`` for two short epochs; returns the run folder."""
    cwd = tmp_path_factory.mktemp("all40")
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        args = [
            "fit",
            "--data.root",
            str(synthetic_root),
            "--data.attributes",
            "all",
            "--trainer.max_epochs",
            "2",
        ]
        assert main([*args, "--test_after_fit", "true", *FAST]) == 0
    finally:
        os.chdir(previous)
    return cwd / "lightning_logs" / "version_0"


def test_all_attributes_train_test_and_report(all40: Path) -> None:
    checkpoint = torch.load(all40 / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["attributes"] == list(CELEBA_ATTRIBUTES)
    assert checkpoint["datamodule_hyper_parameters"]["attributes"] == list(CELEBA_ATTRIBUTES)
    assert checkpoint["state_dict"]["net.head.weight"].shape[0] == 40

    logged = last_scalars(all40)
    for metric in ("acc", "balanced_acc", "f1", "auroc"):
        assert f"val/Smiling/{metric}" in logged and f"test/Young/{metric}" in logged
    assert "test/acc" in logged and "val/auroc" in logged

    report = json.loads((all40 / "report" / "metrics.json").read_text())
    assert report["attributes"] == list(CELEBA_ATTRIBUTES) and report["summary"]["num_images"] == 20
    # the report (numpy, float64) and the logged test metrics (torchmetrics) agree
    assert report["summary"]["mean_acc"] == pytest.approx(logged["test/acc"], abs=1e-5)
    for name in CELEBA_ATTRIBUTES:
        row = report["per_attribute"][name]
        assert row["acc"] == pytest.approx(logged[f"test/{name}/acc"], abs=1e-5), name
        auroc = logged[f"test/{name}/auroc"]
        assert (row["auroc"] is None and math.isnan(auroc)) or row["auroc"] == pytest.approx(auroc, abs=1e-4)
    assert set(report["fairness"]) == {"Male", "Young"} and "Male" not in report["fairness"]["Male"]
    assert report["plot_attributes"] == ["Smiling"]  # 40 attributes: per-attribute figures for Smiling only
    pngs = {path.name for path in (all40 / "report").glob("*.png")}
    assert {"summary.png", "fairness_gaps.png", "training_curves.png", "errors_Smiling.png"} <= pngs
    assert {"confusion_Smiling.png", "roc_Smiling.png", "reliability_Smiling.png"} <= pngs
    assert len(pngs) == 8
    assert (all40 / "report" / "report.md").read_text().startswith("# Evaluation report: ")

    accumulator = EventAccumulator(str(all40), size_guidance={"images": 0})
    accumulator.Reload()
    assert {f"report/{Path(png).stem}" for png in pngs} <= set(accumulator.Tags()["images"])
    assert [epoch for epoch, _ in read_curves(all40)["val/acc"]] == [1, 2]


def test_report_command_on_its_own(all40: Path, capsys: pytest.CaptureFixture) -> None:
    os.chdir(all40.parent.parent)
    out = all40 / "custom"
    args = [
        "report",
        "--ckpt_path",
        "best",
        "--attributes",
        "Smiling",
        "Male",
        "--groups",
        "Young",
        "--out",
        str(out),
    ]
    options = [
        "--tune_thresholds",
        "false",
        "--plot_attributes",
        "Male",
        "--errors",
        "4",
        "--tensorboard",
        "false",
    ]
    assert main([*args, *options, "--num_workers", "0"]) == 0
    assert "Using checkpoint lightning_logs/version_0/checkpoints/best.ckpt" in capsys.readouterr().err
    report = json.loads((out / "metrics.json").read_text())
    assert report["attributes"] == ["Smiling", "Male"] and list(report["fairness"]) == ["Young"]
    assert report["threshold_criterion"] is None and "tuned" not in report["per_attribute"]["Smiling"]
    assert report["plot_attributes"] == ["Male"] and len(report["confident_errors"]["Male"]) <= 4
    assert (out / "roc_Male.png").is_file() and not (out / "roc_Smiling.png").exists()
    assert (out / "training_curves.png").is_file()
    default = json.loads((all40 / "report" / "metrics.json").read_text())
    assert report["per_attribute"]["Smiling"]["acc"] == default["per_attribute"]["Smiling"]["acc"]


def test_predicting_with_another_attribute_list_is_an_error(
    all40: Path, capsys: pytest.CaptureFixture
) -> None:
    os.chdir(all40.parent.parent)
    code = main(["predict", "--split", "test", "--ckpt_path", "best", "--data.attributes", "[Smiling, Male]", *FAST])
    assert code == 2
    err = capsys.readouterr().err
    assert "trained for attributes ['5_o_Clock_Shadow'" in err and "['Smiling', 'Male']" in err


def test_report_on_attributes_the_model_lacks_is_an_error(synthetic_root: Path, tmp_path: Path) -> None:
    model = AttributeClassifier(attributes=["Smiling", "Male"])
    data = CelebADataModule(root=str(synthetic_root), attributes=["Smiling", "Male"], num_workers=0)
    data.setup("test")
    with pytest.raises(
        CheckpointError, match=r"predicts \['Smiling', 'Male'\]; it cannot report on \['Young'\]"
    ):
        make_report(model, data, tmp_path, attributes=["Young"], tensorboard=False)
    assert main(["report", "--ckpt_path", "no/such.ckpt"]) == 2
