"""Callbacks the interruption tests add to a run (importable by class path in a subprocess)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl


class SignalAt(pl.Callback):
    """Send this process ``signum`` when a training batch starts at global step ``step`` (once)."""

    def __init__(self, step: int, signum: int = 15) -> None:
        self.step, self.signum, self.fired = step, signum, False

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx
    ) -> None:
        if trainer.global_step == self.step and not self.fired:
            self.fired = True
            os.kill(os.getpid(), self.signum)


class Throttle(pl.Callback):
    """Write the global step to ``marker`` at each training batch and sleep ``delay`` seconds, so that a
    test can kill the run at a moment of its choosing. Uses no random numbers."""

    def __init__(self, marker: str, delay: float = 0.2) -> None:
        self.marker, self.delay = Path(marker), delay

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx
    ) -> None:
        self.marker.write_text(f"{trainer.current_epoch} {batch_idx} {trainer.global_step}\n")
        time.sleep(self.delay)
