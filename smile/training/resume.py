"""Exact resumes: a run stopped at any moment and resumed with ``fit --ckpt_path last`` ends as if never
stopped (bit for bit on CPU).

What Lightning restores by itself from a checkpoint: weights, optimizer, LR schedulers, loop counters,
callback states. What this module adds (the data order is :mod:`smile.data.sampling`'s part):

- :class:`ResumableTraining` reseeds torch's, Python's and NumPy's global generators at the start of
  every training batch from ``(seed, epoch, batch, rank)``, so dropout and anything else random in a
  training step does not depend on what ran before in the process (a resumed process has run other
  things: checkpoint loading, a fresh data loader, sanity validation);
- it saves the partial epoch's metric states in mid-epoch checkpoints (torchmetrics states of the
  LightningModule and Lightning's running epoch means such as ``train/loss``), so a resumed epoch's
  ``train/*`` figures cover the whole epoch; under DDP the sums of all processes are saved;
- SIGTERM and Ctrl-C (SIGINT) during training: every process finishes the current batch, then they all
  stop at the same step; :class:`smile.training.callbacks.LastCheckpoint` writes ``last.ckpt`` at that point. A
  second Ctrl-C stops at once. (A signal during validation is acted on after the next training batch.);
- :class:`AtomicCheckpointIO` writes checkpoints atomically beside their final path and loads them with
  ``weights_only`` (Lightning's own write goes through a temporary file in ``/tmp`` and, across file
  systems, a non-atomic copy).
"""

from __future__ import annotations

import signal
import threading
import warnings
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerFn
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_sum

from smile.console import say
from smile.data.sampling import batch_seed, seed_everything_from
from smile.trained.checkpoints import read_checkpoint, save_checkpoint

#: Key of the partial epoch's metric states in a checkpoint.
EPOCH_STATE_KEY = "smile_epoch_state"

#: The signal that last stopped a fit gracefully (read by the CLI for its message and exit status).
stopped_by: int | None = None
#: Signals that stop a fit after the current batch, with last.ckpt saved.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class AtomicCheckpointIO(TorchCheckpointIO):
    """The trainer's checkpoints saved and loaded as smile's own are
    (:func:`smile.trained.checkpoints.save_checkpoint`: atomically; :func:`~smile.trained.checkpoints.read_checkpoint`:
    weights only)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_checkpoint(checkpoint, path)
        return None

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        if map_location is not None or weights_only is False or "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        return read_checkpoint(path)


def mid_epoch(trainer: pl.Trainer) -> bool:
    """Whether a checkpoint taken now falls inside a training epoch (some but not all batches done)."""
    if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
        return False
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    return 0 < done < trainer.num_training_batches


def _metric_modules(module: torch.nn.Module) -> list[tuple[str, Metric]]:
    return [(name, sub) for name, sub in module.named_modules() if isinstance(sub, Metric)]


def _logged_results(trainer: pl.Trainer) -> dict[str, Any]:
    """Lightning's running epoch aggregates of ``self.log(..., on_epoch=True)`` in training (private API,
    so looked up defensively)."""
    results = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "_results", None)
    if not isinstance(results, dict):
        return {}
    found = {}
    for key, metric in results.items():
        meta = getattr(metric, "meta", None)
        if (
            getattr(metric, "is_tensor", False)
            and meta is not None
            and meta.on_epoch
            and (meta.is_mean_reduction or meta.is_sum_reduction)
        ):
            found[key] = metric
    return found


class ResumableTraining(pl.Callback):
    """Per-batch reseeding, partial-epoch metric states in checkpoints, Ctrl-C as a graceful stop."""

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._requested: int | None = None
        self._pending: dict[str, Any] | None = None

    # --- atomic checkpoints, Ctrl-C ---------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer
        # Lightning cannot see that smile's sampler resumes mid-epoch (smile.data.sampling) and says so.
        warnings.filterwarnings(
            "ignore", message="You're resuming from a checkpoint that ended before the epoch"
        )
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        global stopped_by
        stopped_by = None
        self._requested = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning recorded the handlers it restores at the end (it does so after on_fit_start).
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, self._on_stop_signal)
        self._restore_epoch_state(trainer, pl_module)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        """Only note the request: the processes agree on the step to stop at in on_train_batch_end.

        (Lightning's own SIGTERM handler broadcasts from inside the handler and forwards the signal to
        the other processes; when they got the signal too, as under torchrun, SLURM or Ctrl-C, the extra
        collectives hang the run.)"""
        global stopped_by
        if self._requested is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # Ctrl-C twice: stop at once
            return
        self._requested = stopped_by = signum
        say(
            f"\n{signal.Signals(signum).name}: finishing this batch, saving last.ckpt and stopping"
            + (" (Ctrl-C again to stop at once)." if signum == signal.SIGINT else "."),
        )

    def _restore_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous_handlers.items():
                if handler is not None:
                    signal.signal(signum, handler)
        self._previous_handlers = {}

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        global stopped_by
        if stopped_by is None and trainer.received_sigterm:
            stopped_by = signal.SIGTERM
        self._restore_handlers()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handlers()

    # --- random streams --------------------------------------------------------------------------

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        seed_everything_from(batch_seed(trainer, batch_idx))

    # --- partial epoch metric states -------------------------------------------------------------

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if not mid_epoch(trainer):
            return
        strategy = trainer.strategy
        distributed = trainer.world_size > 1

        def total(value: torch.Tensor) -> torch.Tensor:
            return strategy.reduce(value.clone(), reduce_op="sum") if distributed else value

        metrics = {}
        for name, metric in _metric_modules(pl_module):
            states = {}
            for attr, reduction in metric._reductions.items():
                value = getattr(metric, attr)
                if isinstance(value, torch.Tensor) and reduction is dim_zero_sum:
                    states[attr] = total(value).detach().cpu()
                elif not distributed:
                    states[attr] = (
                        [v.detach().cpu() for v in value] if isinstance(value, list) else value.detach().cpu()
                    )
            metrics[name] = {"states": states, "update_count": int(metric._update_count)}
        logged = {}
        for key, result in _logged_results(trainer).items():
            synced = distributed and result.meta.sync.should
            if distributed and not synced:
                continue
            entry = {"value": (total(result.value) if synced else result.value).detach().cpu()}
            if result.meta.is_mean_reduction:
                size = result.cumulated_batch_size
                entry["cumulated_batch_size"] = (total(size) if synced else size).detach().cpu()
            logged[key] = entry
        checkpoint[EPOCH_STATE_KEY] = {"metrics": metrics, "logged": logged, "world_size": trainer.world_size}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._pending = checkpoint.get(EPOCH_STATE_KEY) if trainer.state.fn == TrainerFn.FITTING else None

    def _restore_epoch_state(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Put the saved partial-epoch metric states back (on rank 0 only: they are all ranks' sums)."""
        if not self._pending or not mid_epoch(trainer):
            self._pending = None
            return
        saved = self._pending.get("metrics", {})
        for name, metric in _metric_modules(pl_module):
            if name not in saved:
                continue
            if trainer.global_rank == 0:
                for attr, value in saved[name]["states"].items():
                    current = getattr(metric, attr)
                    if isinstance(value, list):
                        setattr(metric, attr, [v.to(metric.device) for v in value])
                    elif isinstance(current, torch.Tensor) and current.shape == value.shape:
                        setattr(metric, attr, value.to(current.device, current.dtype))
                metric._update_count = saved[name]["update_count"]
            metric._computed = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._agree_on_stop(trainer)
        self._add_saved_results(trainer)

    def _agree_on_stop(self, trainer: pl.Trainer) -> None:
        """If any process was asked to stop, all stop after this batch (Lightning then raises its
        ``SIGTERMException`` everywhere, and :class:`smile.training.callbacks.LastCheckpoint` saves)."""
        global stopped_by
        requested = self._requested is not None
        if trainer.world_size > 1:
            flag = torch.tensor(float(requested), device=trainer.strategy.root_device)
            requested = bool(trainer.strategy.reduce(flag, reduce_op="max").item())
        connector = getattr(trainer, "_signal_connector", None)
        if requested and connector is not None and hasattr(connector, "received_sigterm"):
            stopped_by = stopped_by or signal.SIGTERM
            connector.received_sigterm = True

    def _add_saved_results(self, trainer: pl.Trainer) -> None:
        """Add the saved running epoch aggregates to Lightning's (created by the first ``self.log``)."""
        if not self._pending:
            return
        logged = self._pending.get("logged", {})
        if trainer.global_rank == 0:
            results = _logged_results(trainer)
            for key in [key for key in logged if key in results]:
                entry, result = logged.pop(key), results[key]
                result.value = result.value + entry["value"].to(result.value.device, result.value.dtype)
                if "cumulated_batch_size" in entry and result.meta.is_mean_reduction:
                    size = entry["cumulated_batch_size"].to(result.cumulated_batch_size.device)
                    result.cumulated_batch_size = result.cumulated_batch_size + size
        if not logged or trainer.global_rank != 0:
            self._pending = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pending = None
