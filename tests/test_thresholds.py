"""Per-attribute decision thresholds tuned on validation (``model.threshold_criterion``): saved in the
checkpoint with the weights they belong to, and used by test, the report, predict, the Python API and
export; checkpoints from before them load with 0.5."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers.cli import FAST
from helpers.runs import last_scalars

import smile
from smile.cli import main
from smile.data.datamodule import CelebADataModule
from smile.data.synthetic import generate_dataset
from smile.evaluation.metrics import confusion
from smile.evaluation.runner import predict_split
from smile.evaluation.thresholds import tune_thresholds
from smile.system import AttributeClassifier
from smile.trained.checkpoints import checkpoint_settings
from smile.trained.export import for_export

# six attributes: the report draws per-attribute figures for Smiling alone (more than five)
ATTRIBUTES = ["Smiling", "Male", "Eyeglasses", "Young", "Bangs", "Wearing_Hat"]


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short epoch on a synthetic CelebA with a 120-image validation split (enough images of each
    class to tune), thresholds tuned for balanced accuracy, then test; returns the run folder."""
    cwd = tmp_path_factory.mktemp("tuned")
    root = generate_dataset(cwd / "celeba", 300, seed=3, split_fractions=(0.5, 0.4, 0.1))
    os.chdir(cwd)
    args = [
        "fit",
        "--data.root",
        str(root),
        "--data.attributes",
        json.dumps(ATTRIBUTES),
        "--model.threshold_criterion",
        "balanced_acc",
        "--trainer.max_epochs",
        "1",
        "--test_after_fit",
        "true",
        *FAST,
        "--trainer.limit_val_batches",
        "1.0",
    ]
    assert main(args) == 0
    return cwd / "lightning_logs" / "version_0"


def _checkpoint_model(run: Path) -> tuple[AttributeClassifier, CelebADataModule]:
    path = run / "checkpoints" / "best.ckpt"
    model = AttributeClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    data = CelebADataModule(**checkpoint_settings(torch.load(path, weights_only=True)).data)
    data.setup("test")
    return model, data


def test_the_checkpoint_holds_the_thresholds_its_weights_score_best_at_on_val(tuned_run: Path) -> None:
    model, data = _checkpoint_model(tuned_run)
    saved = model.thresholds.numpy()
    val = predict_split(model, data, "val")
    expected, tuned = tune_thresholds(val.probs, val.labels, "balanced_acc")
    assert tuned.any(), "the 120-image val split has 20 of each class for some attribute"
    assert saved == pytest.approx(expected, abs=1e-5)
    assert (saved[~tuned] == 0.5).all() and (saved[tuned] != 0.5).any()
    logged = last_scalars(tuned_run)
    assert "val/balanced_acc_tuned" in logged and "val/acc_tuned" in logged


def test_test_metrics_and_the_report_decide_at_the_saved_thresholds(tuned_run: Path) -> None:
    model, data = _checkpoint_model(tuned_run)
    thresholds = model.thresholds.tolist()
    test = predict_split(model, data, "test")
    logged = last_scalars(tuned_run)
    report = json.loads((tuned_run / "report" / "metrics.json").read_text())
    assert report["threshold"] is None and report["thresholds"] == pytest.approx(
        dict(zip(ATTRIBUTES, thresholds))
    )
    for k, name in enumerate(ATTRIBUTES):
        rates = confusion(test.probs[:, k], test.labels[:, k], thresholds[k]).rates()
        assert logged[f"test/{name}/balanced_acc"] == pytest.approx(rates["balanced_acc"], abs=1e-5), name
        row = report["per_attribute"][name]
        assert row["acc"] == pytest.approx(rates["acc"]) and row["threshold"] == pytest.approx(thresholds[k])
        if thresholds[k] != 0.5:
            at_half = confusion(test.probs[:, k], test.labels[:, k], 0.5).rates()
            assert row["at_default"]["acc"] == pytest.approx(at_half["acc"])
    markdown = (tuned_run / "report" / "report.md").read_text()
    assert "each attribute's own threshold (the model's, tuned on validation for balanced_acc)" in markdown
    assert "mean balanced accuracy at threshold 0.5" in markdown
    # the synthetic CelebA has identity_CelebA.txt: each label's agreement within a person is measured
    assert 0.0 <= report["per_attribute"]["Male"]["person_agreement"]["agreement"] <= 1.0


def test_predict_csv_api_and_export_use_the_saved_thresholds(tuned_run: Path) -> None:
    checkpoint = tuned_run / "checkpoints" / "best.ckpt"
    thresholds = torch.load(checkpoint, weights_only=True)["state_dict"]["thresholds"].numpy()
    os.chdir(tuned_run.parent.parent)
    assert main(["predict", "--split", "test", "--ckpt_path", str(checkpoint), *FAST]) == 0
    with open(tuned_run / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    for row in rows:
        present = [name for name, t in zip(ATTRIBUTES, thresholds) if float(row[name]) > t]
        assert row["predicted"].split() == present

    predictor = smile.load(checkpoint)
    assert predictor.thresholds == pytest.approx(thresholds)
    probs = np.array([thresholds - 1e-3, thresholds + 1e-3])
    assert not predictor.decide(probs)[0].any() and predictor.decide(probs)[1].all()
    assert (smile.load(checkpoint, threshold=0.5).thresholds == 0.5).all()

    _, metadata = for_export(checkpoint)
    assert list(metadata["thresholds"]) == ATTRIBUTES
    assert list(metadata["thresholds"].values()) == pytest.approx(thresholds.tolist())
    assert metadata["threshold_criterion"] == "balanced_acc"


def test_a_checkpoint_saved_before_thresholds_loads_with_one_half(tuned_run: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(tuned_run / "checkpoints" / "best.ckpt", weights_only=True)
    del checkpoint["state_dict"]["thresholds"]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    model = AttributeClassifier.load_from_checkpoint(old, map_location="cpu", weights_only=True)
    assert model.thresholds.tolist() == [0.5] * len(ATTRIBUTES)
    assert (smile.load(old).thresholds == 0.5).all()


def test_an_unknown_criterion_is_refused() -> None:
    with pytest.raises(ValueError, match="model.threshold_criterion is 'recall'; choose one of acc"):
        AttributeClassifier(ATTRIBUTES, threshold_criterion="recall")  # type: ignore[arg-type]


def test_positive_weights_come_from_the_training_split_and_are_not_saved(synthetic_root: Path) -> None:
    model = AttributeClassifier(ATTRIBUTES, positive_weight="balanced")
    data = CelebADataModule(root=str(synthetic_root), attributes=ATTRIBUTES, num_workers=0, batch_size=16)
    trainer = pl.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, data)
    rates = torch.as_tensor(data.positive_rates("train", ATTRIBUTES), dtype=torch.float32)
    assert model.positive_weights.tolist() == pytest.approx(((1 - rates) / rates).tolist())
    assert "positive_weights" not in model.state_dict()


def test_the_thresholds_command_saves_a_new_checkpoint_with_thresholds_for_a_criterion(
    tuned_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    checkpoint = torch.load(tuned_run / "checkpoints" / "best.ckpt", weights_only=True)
    del checkpoint["state_dict"]["thresholds"]  # as trained before thresholds existed
    del checkpoint["hyper_parameters"]["threshold_criterion"]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    original = old.read_bytes()
    assert main(["thresholds", "--ckpt_path", str(old), "--criterion", "acc", "--num_workers", "0"]) == 0
    assert "Wrote " + str(tmp_path / "old-acc.ckpt") in capsys.readouterr().err
    assert old.read_bytes() == original
    model, data = _checkpoint_model(tuned_run)
    val = predict_split(model, data, "val")
    expected, _ = tune_thresholds(val.probs, val.labels, "acc")
    tuned = AttributeClassifier.load_from_checkpoint(
        tmp_path / "old-acc.ckpt", map_location="cpu", weights_only=True
    )
    assert tuned.thresholds.numpy() == pytest.approx(expected, abs=1e-5)
    assert tuned.hparams.threshold_criterion == "acc"
    assert main(["thresholds", "--ckpt_path", str(old), "--criterion", "acc", "--num_workers", "0"]) == 0
    assert (tmp_path / "old-acc-2.ckpt").is_file(), "a second run never replaces the first one's file"
    with pytest.raises(SystemExit, match="2"):  # argparse names the choices
        main(["thresholds", "--ckpt_path", str(old), "--criterion", "recall"])
    assert "invalid choice: 'recall' (choose from 'acc', 'balanced_acc', 'f1')" in capsys.readouterr().err
