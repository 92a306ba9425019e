"""One home for a trained model (:mod:`smile.trained`): a source resolved once and said, one description
of a model in and out of JSON, one inference model that answers as the system does, one migrate step for
files of older versions, and no command that answers without a model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from smile.cli import main
from smile.errors import CheckpointError
from smile.system import AttributeClassifier
from smile.trained.checkpoints import describe, load_checkpoint
from smile.trained.description import ModelDescription
from smile.trained.inference import load_model
from smile.trained.sources import resolve

MODEL_CHOICES = (
    "give --ckpt_path smiling, attributes (shipped), best, last (the newest run's) or a checkpoint's path"
)


@pytest.mark.parametrize(
    "command",
    [
        ["test"],
        ["validate"],
        ["predict", "--split", "test"],
        ["report"],
        ["thresholds", "--criterion", "acc"],
        ["export"],
    ],
)
def test_no_command_answers_without_a_model(
    command: list[str], synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Outside fit, a freshly initialised network is never evaluated: one line naming the choices, exit 2."""
    os.chdir(tmp_path)
    assert (
        main(
            [*command, "--data.root", str(synthetic_root)]
            if command[0] in ("test", "validate", "predict")
            else command
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: smile {command[0]} needs a model: {MODEL_CHOICES}"]
    assert not (tmp_path / "lightning_logs").exists()


def test_an_unknown_option_beside_a_photo_is_named_with_a_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not read: the options are checked first")
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(photo), "--treshold", "0.3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "--treshold 0.3 (did you mean --threshold?)" in last and "photo.jpg" not in last
    with pytest.raises(SystemExit):
        main(["predict", str(photo), "--annotate-dir", "out"])  # a hyphen for the underscore
    assert "(did you mean --annotate_dir?)" in capsys.readouterr().err


def test_predict_needs_photos_or_a_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    os.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["predict"])
    assert stop.value.code == 2
    assert "give photos (files or folders), or --split test --ckpt_path MODEL" in capsys.readouterr().err
    assert not (tmp_path / "predictions.csv").exists()


def test_a_misspelt_model_name_gets_a_did_you_mean(tmp_path: Path) -> None:
    os.chdir(tmp_path)
    with pytest.raises(
        CheckpointError, match=r"model 'smilling' not found: no such file; did you mean smiling\?"
    ):
        resolve("smilling")


def test_a_source_says_what_it_is_and_where(smiling_checkpoint: Path, tmp_path: Path) -> None:
    shipped = resolve("attributes")
    assert shipped.kind == "shipped" and shipped.path.name == "attributes.safetensors"
    assert shipped.note() == "Using the shipped model attributes (smile models attributes prints its card)"
    given = resolve(str(smiling_checkpoint))
    assert given.kind == "checkpoint" and given.note() is None
    run = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(smiling_checkpoint.read_bytes())
    os.chdir(tmp_path)
    best = resolve("best")
    assert best.kind == "checkpoint" and best.note() == f"Using checkpoint {best.path}"
    (tmp_path / "model.onnx").write_bytes(b"")
    onnx = resolve("model.onnx")
    assert onnx.kind == "onnx"
    with pytest.raises(CheckpointError, match="exported file .* holds no training settings"):
        onnx.checkpoint_path()


def test_the_description_round_trips_through_json_with_each_default_once() -> None:
    described = ModelDescription(
        attributes=("Smiling", "Male"), thresholds=(0.4, 0.6), mirror=True, shifts=(-0.1,)
    )
    assert ModelDescription.from_json(json.loads(json.dumps(described.to_json()))) == described
    bare = ModelDescription.from_json({"attributes": ["Smiling"]})
    assert (bare.image_size, bare.crop_size, bare.thresholds, bare.input_dtype) == (
        64,
        178,
        (0.5,),
        "float32",
    )
    with pytest.raises(CheckpointError, match="one threshold each"):
        ModelDescription(attributes=("Smiling",), thresholds=(0.5, 0.5))
    with pytest.raises(CheckpointError, match="x.onnx: not a smile model description"):
        ModelDescription.from_json({"input": {}}, where="x.onnx")


def test_the_inference_model_answers_as_the_system_does(smiling_checkpoint: Path) -> None:
    """Built without Lightning, from the registry and the evaluation weights: the system's predict_step."""
    model = load_model(smiling_checkpoint)
    system = AttributeClassifier.from_checkpoint(load_checkpoint(smiling_checkpoint))
    images = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = system.predict_step(images, 0)
    assert model.runtime == "torch" and model.description == describe(
        load_checkpoint(smiling_checkpoint), model.description.provenance
    )
    assert (model(images) - expected).abs().max() <= 1e-6


def test_a_checkpoint_of_an_older_version_is_migrated_once_at_load(
    smiling_checkpoint: Path, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Pre-0.1.0 files: subsets under their old keys, options that moved to predict, no thresholds."""
    old = torch.load(smiling_checkpoint, map_location="cpu", weights_only=True)
    data = old["datamodule_hyper_parameters"]
    data.pop("subsets", None)
    data.update(train_subset=40, val_subset=None, test_subset=20, detector="haar", aligned=False)
    del old["state_dict"]["thresholds"]
    path = tmp_path / "old.ckpt"
    torch.save(old, path)

    checkpoint = load_checkpoint(path)
    migrated = checkpoint["datamodule_hyper_parameters"]
    assert migrated["subsets"] == {"train": 40, "test": 20}
    assert not {"train_subset", "val_subset", "test_subset", "detector", "aligned"} & set(migrated)
    assert checkpoint["state_dict"]["thresholds"].tolist() == [0.5]
    assert load_model(path).description.thresholds == (0.5,)
    # the Trainer's own load goes through the same step (the system's on_load_checkpoint)
    os.chdir(tmp_path)
    quiet = [
        "--trainer.enable_progress_bar",
        "false",
        "--report",
        "false",
        "--data.root",
        str(synthetic_root),
    ]
    assert main(["test", "--ckpt_path", str(path), *quiet]) == 0
    assert "test/acc" in capsys.readouterr().out


def test_the_report_records_its_settings_under_their_names(
    smiling_checkpoint: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    os.chdir(tmp_path)
    out = tmp_path / "report"
    args = [
        "report",
        "--ckpt_path",
        str(smiling_checkpoint),
        "--data.root",
        str(synthetic_root),
        "--out",
        str(out),
    ]
    assert main([*args, "--tensorboard", "false", "--tune_thresholds", "false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    source = metrics["source"]
    assert "data.val_subset" not in source and source["data.subsets"] == dict(
        load_checkpoint(smiling_checkpoint)["datamodule_hyper_parameters"].get("subsets") or {}
    )
