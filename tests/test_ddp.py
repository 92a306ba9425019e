"""DDP through Lightning's own strategy, 2 processes on CPU (gloo): training runs, and validation, test and
predictions count every sample of a split exactly once (compared with one process on the same checkpoint).
The default suite runs a 2-process fit (+ test) from JPEGs and one from the decoded cache; the slow test adds interruption, resume and predict."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers.cli import run_smile
from helpers.runs import last_scalars

from smile.data.datamodule import CelebADataModule
from smile.system import AttributeClassifier

SPLIT = 19  # odd: DistributedSampler would pad it to 20 by repeating a sample
COMMON = [
    "--trainer.accelerator", "cpu",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--data.num_workers", "0",
    "--data.batch_size", "4",
    "--data.subsets.val", str(SPLIT),
    "--data.subsets.test", str(SPLIT),
]  # fmt: skip
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2"]


smile = run_smile


def single_process(root: Path, checkpoint: Path, cache_dir: Path | None = None) -> tuple[dict, dict, list]:
    data = CelebADataModule(
        root=str(root),
        subsets={"val": SPLIT, "test": SPLIT},
        batch_size=4,
        num_workers=0,
        cache=cache_dir is not None,
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = AttributeClassifier(attributes=["Smiling"])
    val = trainer.validate(model, data, ckpt_path=checkpoint, weights_only=True, verbose=False)[0]
    test = trainer.test(model, data, ckpt_path=checkpoint, weights_only=True, verbose=False)[0]
    predictions = trainer.predict(model, data, ckpt_path=checkpoint, weights_only=True)
    return val, test, [float(p) for batch in predictions for p in batch[:, 0]]


@pytest.mark.parametrize("cache", [False, True], ids=["jpeg", "cache"])
def test_ddp_two_processes_count_every_sample_once(synthetic_root: Path, tmp_path: Path, cache: bool) -> None:
    cache_dir = tmp_path / "cache" if cache else None
    cached = ["--data.cache", "true", "--data.cache_dir", str(cache_dir)] if cache else []
    fit = smile(
        [
            "fit", "--data.root", str(synthetic_root), "--seed_everything", "3", *COMMON, *DDP, *cached,
            "--trainer.max_epochs", "1", "--data.subsets.train", "32", "--trainer.log_every_n_steps", "1",
            "--last_checkpoint.every_n_train_steps", "2", "--test_after_fit", "true",
        ],
        tmp_path,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-4000:]
    assert "Starting with 2 processes" in fit.stderr + fit.stdout
    run = tmp_path / "lightning_logs" / "version_0"
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
    for name in ("config.yaml", "environment.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    ddp = last_scalars(run)
    # 32 training images, 4 per batch per process: 4 steps
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 4

    val, test, _ = single_process(synthetic_root, run / "checkpoints" / "best.ckpt", cache_dir)
    print(f"\n2 processes (DDP, gloo): { {k: v for k, v in ddp.items() if k.startswith(('val', 'test'))} }")
    print(f"1 process, same checkpoint: {val | test}")
    for key in ("val/acc", "val/Smiling/acc", "test/acc", "test/Smiling/acc"):
        assert ddp[key] == (val | test)[key], key  # counts out of 19: exact
        count = ddp[key] * SPLIT
        assert abs(count - round(count)) < 1e-4, f"{key}={ddp[key]} is not a count out of {SPLIT}"
    for key in ("val/loss", "test/loss"):
        assert ddp[key] == pytest.approx((val | test)[key], rel=1e-6), key  # summed in another order


def check_ddp_predictions(checkpoint: Path, cwd: Path, expected: list[float]) -> None:
    """``predict`` with 2 processes writes one predictions.csv with each test image once."""
    predict = smile(["predict", "--split", "test", "--ckpt_path", str(checkpoint), *COMMON, *DDP], cwd)
    assert predict.returncode == 0, predict.stderr[-4000:]
    run = checkpoint.parent.parent
    with open(run / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert not list(run.glob("rank*-predictions.csv")), "one file, not one per process"
    assert len(rows) == SPLIT and len({row["image"] for row in rows}) == SPLIT
    assert [float(row["Smiling"]) for row in rows] == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_ddp_sigterm_mid_epoch_then_resume_is_exact_and_predicts_once(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """Every process gets SIGTERM mid-epoch (as under torchrun, SLURM or Ctrl-C; Lightning's launcher also
    forwards it): they agree on one step, save last.ckpt and stop; resuming with 2 processes ends exactly
    like an uninterrupted 2-process run (weights and every logged figure). Then predictions with 2
    processes: one CSV, each image once, equal to one process's."""
    from helpers.runs import scalars

    args = [
        "fit", "--data.root", str(synthetic_root), "--seed_everything", "5", *COMMON, *DDP,
        "--trainer.max_epochs", "2", "--data.subsets.train", "48", "--trainer.log_every_n_steps", "1",
        "--last_checkpoint.every_n_train_steps", "0",
    ]  # fmt: skip
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference.mkdir(), interrupted.mkdir()
    assert smile(args, reference).returncode == 0
    signal_at = '[{"class_path": "helpers.interrupts.SignalAt", "init_args": {"step": 8}}]'
    stopped = smile([*args, "--trainer.callbacks", signal_at], interrupted)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    saved = torch.load(interrupted / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
    assert saved["global_step"] == 9 and saved["CelebADataModule"]["train_position"] == {
        "epoch": 1,
        "batches": 3,
    }
    resumed = smile(["fit", "--ckpt_path", "last", "--trainer.callbacks", "[]"], interrupted)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (
        torch.load(f / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
        for f in (reference, interrupted)
    )
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert scalars(interrupted) == scalars(reference)
    checkpoint = interrupted / "lightning_logs/version_0/checkpoints/last.ckpt"
    check_ddp_predictions(checkpoint, interrupted, single_process(synthetic_root, checkpoint)[2])
