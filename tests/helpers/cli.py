"""The CLI flags that make a fit take seconds (CPU, a few batches, no progress bar), and the one way the
tests run ``python -m smile`` in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent

FAST = [
    "--seed_everything", "7",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.limit_train_batches", "3",
    "--trainer.limit_val_batches", "1",
    "--data.num_workers", "0",
    "--data.batch_size", "16",
]  # fmt: skip

#: The flags that keep a run's console to its results.
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def smile_env(**extra: str) -> dict[str, str]:
    """The environment of a ``python -m smile`` subprocess: the project and the tests importable (for
    callbacks given by class path, such as ``helpers.interrupts.SignalAt``), output unbuffered."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def run_smile(args: list[str], cwd: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    """``python -m smile ARGS`` in a fresh process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "smile", *args],
        cwd=cwd,
        env=smile_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fit_in(folder: Path, data_root: Path, epochs: int) -> Path:
    """``smile fit`` of a few fast batches per epoch on ``data_root``, run in ``folder`` (its run is
    ``lightning_logs/version_0``); returns ``folder``."""
    from smile.cli import main

    previous = Path.cwd()
    os.chdir(folder)
    try:
        assert main(["fit", "--data.root", str(data_root), "--trainer.max_epochs", str(epochs), *FAST]) == 0
    finally:
        os.chdir(previous)
    return folder
