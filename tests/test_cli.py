"""The command line end to end on synthetic data: fit, test in a fresh process, resume, predict, errors."""

from __future__ import annotations

import csv
import json
import os
import re
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from helpers.cli import FAST, QUIET, fit_in, run_smile

from smile.cli import main


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where ``fit`` ran for two short epochs; returns the folder (the run is version_0)."""
    return fit_in(tmp_path_factory.mktemp("run"), synthetic_root, epochs=2)


def test_fit_writes_checkpoints_logs_and_config(trained: Path) -> None:
    run = trained / "lightning_logs" / "version_0"
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "config.yaml", "environment.yaml"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*"))
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["attributes"] == ["Smiling"]
    assert checkpoint["datamodule_hyper_parameters"]["root"]
    assert checkpoint["epoch"] == 1


def test_test_in_a_fresh_process_finds_best_ckpt(trained: Path) -> None:
    result = run_smile(
        ["test", "--ckpt_path", "best.ckpt", "--trainer.enable_progress_bar", "false"], trained
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Using checkpoint lightning_logs/version_0/checkpoints/best.ckpt" in result.stderr
    assert "test/acc" in result.stdout and "test/Smiling/acc" in result.stdout
    assert (trained / "lightning_logs" / "version_0" / "config-test.yaml").is_file()
    assert not (trained / "lightning_logs" / "version_1").exists(), "test logs into the checkpoint's run"
    for fragment in ("No seed found", "args parameter is intended", "litlogger", "LeafSpec", "Traceback"):
        assert fragment not in result.stdout + result.stderr, fragment
    # the report is the test's own predictions: the same accuracy as the test printed
    logged = float(re.search(r"test/acc\s*│?\s*([0-9.]+)", result.stdout).group(1))
    reports = sorted((trained / "lightning_logs" / "version_0").glob("report*/metrics.json"))
    summary = json.loads(reports[-1].read_text())["summary"]
    assert summary["num_images"] == 20 and abs(summary["mean_acc"] - logged) < 1e-4


def test_validate_of_a_runs_checkpoint_leaves_the_training_curves_alone(trained: Path) -> None:
    """validate logs val/acc like the fit did: into ``version_N/validate``, not onto the fit's own curve."""
    os.chdir(trained)
    run = trained / "lightning_logs" / "version_0"
    events = sorted(run.glob("events.out.tfevents.*"))
    args = [
        "validate",
        "--ckpt_path",
        "best",
        "--model.tta",
        "true",
        "--model.tta_shifts",
        "[-0.1, 0.05]",
        "--trainer.enable_progress_bar",
        "false",
    ]
    assert main([*args, "--data.num_workers", "0"]) == 0
    assert sorted(run.glob("events.out.tfevents.*")) == events
    assert (run / "validate" / "config-validate.yaml").is_file() and list((run / "validate").glob("events.*"))
    config = yaml.safe_load((run / "validate" / "config-validate.yaml").read_text())
    assert config["model"]["tta"] is True and config["model"]["tta_shifts"] == [-0.1, 0.05]
    assert not (trained / "lightning_logs" / "version_1").exists()


@pytest.mark.parametrize("fast_bfloat16", [False, True])
def test_bfloat16_falls_back_to_float32_on_a_cpu_that_would_emulate_it(
    trained: Path, fast_bfloat16: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """On a CPU without bfloat16 instructions, bf16-mixed runs in 32-true (emulation is ~10x slower), says
    so, and the run's saved config records the precision it ran in."""
    from smile import devices

    monkeypatch.setattr(devices, "cpu_has_fast_bfloat16", lambda: fast_bfloat16)
    os.chdir(trained)
    folder = trained / "lightning_logs" / "version_0" / "validate"
    before = set(folder.glob("config-validate*.yaml"))
    args = ["validate", "--ckpt_path", "best", "--trainer.precision", "bf16-mixed", *QUIET]
    assert main([*args, "--trainer.accelerator", "cpu", "--data.num_workers", "0"]) == 0
    (saved,) = set(folder.glob("config-validate*.yaml")) - before  # a new one, numbered
    config = yaml.safe_load(saved.read_text())
    said = "--trainer.precision bf16-mixed: this CPU has no bfloat16 instructions" in capsys.readouterr().err
    assert config["trainer"]["precision"] == ("bf16-mixed" if fast_bfloat16 else "32-true")
    assert said is not fast_bfloat16


def test_a_limited_test_reports_the_images_it_covered(trained: Path, capsys: pytest.CaptureFixture) -> None:
    os.chdir(trained)
    run = trained / "lightning_logs" / "version_0"
    before = set(run.glob("report*"))
    args = ["test", "--ckpt_path", "best", "--trainer.limit_test_batches", "2", "--data.batch_size", "8"]
    assert main([*args, "--trainer.enable_progress_bar", "false", "--data.num_workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "The report covers the 16 test images the test covered, not all 20" in err
    assert "Thresholds not tuned: the validation split (20 images) holds fewer than 20" in err
    (report,) = set(run.glob("report*")) - before  # a new folder: the earlier report is kept
    metrics = json.loads((report / "metrics.json").read_text())
    assert (
        metrics["summary"]["num_images"] == 16 and "limit_test_batches=2" in metrics["source"]["test_images"]
    )


def test_predict_writes_probabilities_csv(trained: Path) -> None:
    os.chdir(trained)
    assert main(["predict", "--split", "test", "--ckpt_path", "last", "--trainer.enable_progress_bar", "false"]) == 0
    with open(trained / "lightning_logs" / "version_0" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    assert rows[0]["image"].endswith("000181.jpg")
    assert all(0.0 <= float(row["Smiling"]) <= 1.0 for row in rows)
    # a second predict keeps the first file
    assert main(["predict", "--split", "test", "--ckpt_path", "last", "--trainer.enable_progress_bar", "false"]) == 0
    with open(trained / "lightning_logs" / "version_0" / "predictions-2.csv") as handle:
        assert list(csv.DictReader(handle)) == rows


def test_attribute_mismatch_with_checkpoint_is_an_error(trained: Path, capsys: pytest.CaptureFixture) -> None:
    os.chdir(trained)
    code = main(
        [
            "test",
            "--ckpt_path",
            "best",
            "--data.attributes",
            "[Male]",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    assert code == 2
    assert "trained for attributes ['Smiling']" in capsys.readouterr().err


def test_resume_from_last_continues_the_same_run(synthetic_root: Path, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    assert main(["fit", "--data.root", str(synthetic_root), "--trainer.max_epochs", "1", *FAST]) == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["fit", "--ckpt_path", "last", "--trainer.max_epochs", "2", *FAST]) == 0
    # Lightning's notice that the run's checkpoints/ holds files is noise when resuming that run
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    runs = sorted(p.name for p in (tmp_path / "lightning_logs").iterdir())
    assert runs == ["version_0"]
    configs = [
        yaml.safe_load((tmp_path / "lightning_logs/version_0" / name).read_text())
        for name in ("config.yaml", "config-resume.yaml")
    ]  # the first run's record is kept
    assert configs[0]["trainer"]["max_epochs"] == 1 and configs[1]["trainer"]["max_epochs"] == 2
    checkpoint = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 6


def test_same_seed_gives_identical_weights(synthetic_root: Path, tmp_path: Path) -> None:
    states = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        os.chdir(tmp_path / folder)
        assert main(["fit", "--data.root", str(synthetic_root), "--trainer.max_epochs", "1", *FAST]) == 0
        states.append(
            torch.load("lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)["state_dict"]
        )
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--data.root", "no/such/folder"], "CelebA was not found: no/such/folder does not exist"),
        (["fit", "--data.attributes", "[Smilng]"], "Did you mean Smiling"),
        (["test", "--ckpt_path", "best"], "no run under lightning_logs/ has checkpoints/best.ckpt"),
    ],
)
def test_bad_input_is_a_short_error(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    os.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_input_in_a_fresh_process_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_smile(["fit", "--data.root", "no/such/folder"], tmp_path)
    assert result.returncode == 2
    assert "CelebA was not found: no/such/folder does not exist" in result.stderr
    assert "Traceback" not in result.stderr
