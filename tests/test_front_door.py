"""No silent surprises: a checkpoint never writes data at a path given now, predict with nothing readable
fails, a full disk is one line and loses nothing, help prints without torch, the progress bar shows loss
and accuracy, the model summary has real FLOPs, and best.onnx names the newest export."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import FAST, QUIET, fit_in, run_smile, smile_env

import smile
from smile import io as smile_io
from smile.cli import main


@pytest.fixture(scope="module")
def run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where a short fit ran (version_0, with best.ckpt and last.ckpt)."""
    return fit_in(tmp_path_factory.mktemp("run"), synthetic_root, epochs=1)


@pytest.mark.parametrize(
    "command",
    [
        ["test", "--trainer.enable_progress_bar", "false"],
        ["validate", "--trainer.enable_progress_bar", "false"],
        ["predict", "--split", "test", "--trainer.enable_progress_bar", "false"],
        ["report"],
    ],
)
def test_a_checkpoints_synthetic_setting_never_writes_at_a_given_path(
    smiling_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, command: list[str]
) -> None:
    """The checkpoint records data.synthetic_images (a demo's), yet a mistyped root stays a mistake."""
    os.chdir(tmp_path)
    missing = tmp_path / "no" / "such" / "folder"
    assert (
        main([command[0], "--ckpt_path", str(smiling_checkpoint), "--data.root", str(missing), *command[1:]])
        == 2
    )
    assert f"CelebA was not found: {missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_predict_with_no_readable_input_is_a_short_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "notes.txt").write_text("not a photo")
    assert main(["predict", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: none of the 1 files given could be read as an image (")
    assert not (tmp_path / "predictions.csv").exists()


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_last_one(
    run: Path, synthetic_root: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.chdir(run)
    last = run / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real_fsync = os.fsync

    def full(fd: int) -> None:  # the disk fills up as a checkpoint is written
        if ".ckpt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(smile_io.os, "fsync", full)
    args = ["fit", "--ckpt_path", "last", "--trainer.max_epochs", "2", *QUIET]
    assert main(args) == 1
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert (
        "no space left on the device to write" in line and ".ckpt: it needs" in line and "MB are free" in line
    )
    assert "Traceback" not in err and last.read_bytes() == before
    assert not list(last.parent.glob(".*.tmp"))


def test_a_cache_that_would_not_fit_is_refused_before_it_is_written(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections import namedtuple

    from smile.data.datamodule import CelebADataModule

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(smile_io.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    data = CelebADataModule(root=str(synthetic_root), cache=True, cache_dir=str(tmp_path), num_workers=0)
    data.setup("fit")
    with pytest.raises(smile_io.DiskFull, match=r"train-\d+-64px.npy: it needs [\d.]+ MB, 0.0 MB are free"):
        data.split_cache("train")


@pytest.mark.parametrize("command", [[], ["fit"], ["test"], ["report"], ["predict"], ["serve"], ["export"]])
def test_help_prints_without_importing_torch(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "smile", *command, "--help"],
        env=smile_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: smile"), result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "pytorch_lightning" not in imported
    if command in (["fit"], ["test"]):
        assert (
            f"all of them: smile {command[0]} --help_all" in result.stdout and "--data.root" in result.stdout
        )


def test_progress_bar_shows_loss_and_accuracy_and_the_summary_counts_flops(
    synthetic_root: Path, tmp_path: Path
) -> None:
    shown = ("--trainer.enable_progress_bar", "--trainer.enable_model_summary")
    flags = [
        item
        for option, value in zip(FAST[::2], FAST[1::2])
        if option not in shown
        for item in (option, value)
    ]
    result = run_smile(
        ["fit", "--data.root", str(synthetic_root), "--trainer.max_epochs", "1", *flags], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    assert "loss=" in text and "val_acc=" in text
    (net,) = [line for line in text.splitlines() if "| net " in line]
    (total,) = [line for line in text.splitlines() if "Total Flops" in line]
    assert net.split("|")[5].strip() not in ("0", "") and not total.strip().startswith("0 "), (net, total)


def test_best_onnx_names_the_newest_runs_export(run: Path) -> None:
    pytest.importorskip("onnxruntime")
    os.chdir(run)
    assert main(["export", "--ckpt_path", "best"]) == 0
    assert (run / "lightning_logs" / "version_0" / "checkpoints" / "best.onnx").is_file()
    model = smile.load("best.onnx")
    assert model.backend == "onnx" and model.attributes == ["Smiling"]


@pytest.mark.parametrize(
    ("torch_version", "vision", "reason"),
    [
        ("2.5.1", "0.21.0", "torchvision 0.21.0 is built for torch 2.6, and torch is 2.5.1"),
        ("2.6.0+cpu", "0.21.0+cu124", "torch 2.6.0+cpu is the cpu build, torchvision 0.21.0+cu124 the cu124 one"),
    ],
)  # fmt: skip
def test_a_mismatched_torch_and_torchvision_is_one_line_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    torch_version: str,
    vision: str,
    reason: str,
) -> None:
    from smile import versions

    installed = {"torch": torch_version, "torchvision": vision}
    monkeypatch.setattr(versions.metadata, "version", lambda name: installed[name])
    monkeypatch.setattr(versions, "_checked", False)
    assert main(["models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: torch and torchvision do not belong together ({reason}): {versions.FIX}"]
    assert "reinstall both from one index" in versions.FIX
    assert (
        versions.mismatch("2.14.1", "0.29.1") is None
        and versions.mismatch("2.4.0+cu121", "0.19.0+cu121") is None
    )


def test_torchvisions_failing_import_is_one_line_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The pair's versions look right, yet torchvision's operators do not load (another build of torch)."""
    from smile.commands import models

    def broken(argv: list[str]) -> int:
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(models, "main", broken)
    assert main(["models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: torch and torchvision do not belong together (torch ")
    assert "reinstall both from one index" in err[0]
