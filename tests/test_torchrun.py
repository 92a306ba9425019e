"""The distributed commands as users start them: under ``torchrun``, 2 CPU processes (gloo), synthetic data.

Each must exit 0 with no abort or traceback, print its results once and leave one set of outputs. A
process that leaves its gloo group to interpreter shutdown aborts at exit in some runs only, so the short
``test`` run is repeated; it and the GPU-less error run by default, fit, validate and predict with -m slow."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SPLIT = 19
FLAGS = [
    "--trainer.accelerator", "cpu",
    "--trainer.strategy", "ddp",
    "--trainer.devices", "2",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip
# A 1-in-5 failure passes all runs in 0.8**3 = 51% of default suites (each run costs ~12 s of the 5-minute
# budget) and in 0.8**20 = 1% of `pytest -m slow` runs.
REPEATS, SLOW_REPEATS = 3, 20


def torchrun(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 -m smile ARGS`` (stdout and stderr together)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    with subprocess.Popen(
        [*command, "-m", "smile", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # on a timeout the workers go too, not only torchrun
    ) as process:
        try:
            out, _ = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, out)


def check_clean(result: subprocess.CompletedProcess) -> str:
    """The run exited 0, without an abort or a traceback; its output."""
    out = result.stdout
    assert result.returncode == 0, out[-4000:]
    assert "terminate called" not in out, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    return out


def once(pattern: str, out: str) -> None:
    """``pattern`` (a line's start) is printed exactly once, by one process."""
    found = re.findall(rf"^\s*{pattern}", out, flags=re.MULTILINE)
    assert len(found) == 1, f"{pattern!r} printed {len(found)} times:\n{out[-4000:]}"


def run_folders(cwd: Path) -> list[str]:
    return sorted(path.name for path in (cwd / "lightning_logs").iterdir())


@pytest.fixture
def checkpoint_run(smiling_checkpoint: Path, tmp_path: Path) -> Path:
    """A folder holding a run ``lightning_logs/version_0`` with the Smiling checkpoint as its best."""
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(smiling_checkpoint, checkpoints / "best.ckpt")
    return tmp_path


@pytest.mark.parametrize(
    "repeats", [REPEATS, pytest.param(SLOW_REPEATS, marks=pytest.mark.slow)], ids=["default", "slow"]
)
def test_test_under_torchrun_ends_cleanly_every_time(
    checkpoint_run: Path, synthetic_root: Path, repeats: int
) -> None:
    """The abort at exit came in about 1 run in 5: every run in a row must end cleanly."""
    data = ["--data.root", str(synthetic_root), "--data.subsets.test", str(SPLIT), "--data.num_workers", "1"]
    for _ in range(repeats):
        out = check_clean(torchrun(["test", "--ckpt_path", "best", *FLAGS, *data], checkpoint_run))
        once("Using checkpoint lightning_logs/version_0/checkpoints/best.ckpt", out)
        once("test/acc", out)  # the metrics table, from rank 0
        once("The report is not written under 2 processes; write it with python -m smile report", out)
    assert run_folders(checkpoint_run) == ["version_0"], "test logs into the checkpoint's run"
    assert (checkpoint_run / "lightning_logs/version_0/config-test.yaml").is_file()


@pytest.fixture(scope="module")
def fitted(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder where a 2-process ``fit --test_after_fit true`` ran under torchrun, and its output."""
    cwd = tmp_path_factory.mktemp("torchrun")
    result = torchrun(
        [
            "fit", "--data.root", str(synthetic_root), "--seed_everything", "3", *FLAGS,
            "--trainer.max_epochs", "1", "--data.subsets.train", "32", "--data.subsets.val", str(SPLIT),
            "--data.subsets.test", str(SPLIT), "--data.batch_size", "4", "--data.num_workers", "1",
            "--test_after_fit", "true",
        ],
        cwd,
    )  # fmt: skip
    return cwd, check_clean(result)


@pytest.mark.slow
def test_fit_with_test_after_fit_ends_cleanly_with_one_run(fitted: tuple[Path, str]) -> None:
    cwd, out = fitted
    assert run_folders(cwd) == ["version_0"]
    run = cwd / "lightning_logs" / "version_0"
    for name in ("config.yaml", "environment.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.tmp")), "no half-written file left"
    once("test/acc", out)  # the metrics table, from rank 0
    once("The report is not written under 2 processes; write it with python -m smile report", out)


@pytest.mark.slow
def test_validate_under_torchrun_ends_cleanly(fitted: tuple[Path, str]) -> None:
    cwd, _ = fitted
    out = check_clean(torchrun(["validate", "--ckpt_path", "best", *FLAGS], cwd))
    once("val/acc", out)
    assert run_folders(cwd) == ["version_0"]
    assert (cwd / "lightning_logs/version_0/validate/config-validate.yaml").is_file()


@pytest.mark.slow
def test_predict_under_torchrun_writes_one_csv(fitted: tuple[Path, str]) -> None:
    cwd, _ = fitted
    out = check_clean(torchrun(["predict", "--ckpt_path", "best", *FLAGS], cwd))
    run = cwd / "lightning_logs" / "version_0"
    once(f"Wrote {SPLIT} predictions to {run.relative_to(cwd)}/predictions.csv", out)
    with open(run / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == SPLIT and len({row["image"] for row in rows}) == SPLIT
    assert not list(run.glob("rank*-predictions.csv")), "one file, not one per process"
    assert run_folders(cwd) == ["version_0"]


def test_gpu_config_without_gpu_is_one_line_once(synthetic_root: Path, tmp_path: Path) -> None:
    """configs/ddp.yaml asks for every GPU; on a machine without one (CUDA hidden here) every process
    meets the same problem, and the user reads it once, with the fix."""
    configs = Path(__file__).resolve().parents[1] / "configs"
    result = torchrun(
        [
            "fit", "--config", str(configs / "smile.yaml"), "--config", str(configs / "ddp.yaml"),
            "--data.root", str(synthetic_root),
        ],
        tmp_path,
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert errors == [
        "error: --trainer.accelerator gpu: this machine has no GPU; on its CPU give --trainer.accelerator cpu "
        "--trainer.devices N (N processes; with --trainer.strategy ddp they share the work)"
    ], result.stdout[-3000:]
    assert "No supported gpu backend" not in result.stdout
    assert "terminate called" not in result.stdout
    assert not (tmp_path / "lightning_logs").exists()


def test_main_closes_the_process_group(
    smiling_checkpoint: Path, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root of the abort: a gloo group left open to interpreter shutdown. ``main`` closes it at the end
    of a run, and after an error too (here a 1-process DDP run, in this process)."""
    import socket

    import torch.distributed as dist

    from smile.cli import main

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.chdir(tmp_path)
    args = [
        "validate", "--ckpt_path", str(smiling_checkpoint), "--data.root", str(synthetic_root),
        "--data.subsets.val", "8", "--data.num_workers", "0", "--trainer.logger", "false",
        "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    assert main(args) == 0
    assert not dist.is_initialized()
    dist.init_process_group("gloo", rank=0, world_size=1)  # an error after the group started
    assert main(["test", "--ckpt_path", "no-such.ckpt"]) == 2
    assert not dist.is_initialized()
