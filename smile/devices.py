"""Check the trainer's accelerator and devices against the machine before Lightning builds a trainer,
so that a GPU config on a GPU-less machine ends in one line with the fix instead of Lightning's
traceback in every process."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator

from smile.errors import SmileError

CPU_FIX = "--trainer.accelerator cpu --trainer.devices N (N processes; with --trainer.strategy ddp they share the work)"


def has_gpu() -> bool:
    """Whether Lightning finds a GPU it can use (CUDA or Apple MPS)."""
    return CUDAAccelerator.is_available() or MPSAccelerator.is_available()


def check_devices(accelerator: Any, devices: Any) -> None:
    """Raise :class:`SmileError` when ``accelerator``/``devices`` ask for GPUs that this machine lacks."""
    if not isinstance(accelerator, str):
        return  # an Accelerator object is the user's own
    accelerator = accelerator.lower()
    if accelerator in ("gpu", "cuda", "mps") and not has_gpu():
        raise SmileError(
            f"--trainer.accelerator {accelerator}: this machine has no GPU; on its CPU give {CPU_FIX}"
        )
    if str(devices) == "-1" and (accelerator == "cpu" or (accelerator == "auto" and not has_gpu())):
        raise SmileError(f"--trainer.devices -1 means every GPU, and this run has none; give {CPU_FIX}")
