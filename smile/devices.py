"""Check the trainer's accelerator, devices and precision against the machine before Lightning builds a
trainer, so that a GPU config on a GPU-less machine ends in one line with the fix instead of Lightning's
traceback in every process, and a bfloat16 config does not crawl on a CPU that emulates bfloat16."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator

from smile.errors import SmileError
from smile.recipe import NO_BFLOAT16, emulated_bfloat16

CPU_FIX = "--trainer.accelerator cpu --trainer.devices N (N processes; with --trainer.strategy ddp they share the work)"


def has_gpu() -> bool:
    """Whether Lightning finds a GPU it can use (CUDA or Apple MPS)."""
    return CUDAAccelerator.is_available() or MPSAccelerator.is_available()


def runs_on_cpu(accelerator: Any) -> bool:
    """Whether ``accelerator`` (a Trainer's) puts the run on the CPU of this machine."""
    if not isinstance(accelerator, str):
        return False  # an Accelerator object is the user's own
    return accelerator.lower() == "cpu" or (accelerator.lower() == "auto" and not has_gpu())


def cpu_precision(accelerator: Any, precision: Any) -> tuple[Any, str | None]:
    """The precision to run ``precision`` in, and why it changed (``None``: it did not). bfloat16 on a CPU
    without bfloat16 instructions (AVX512-BF16 or AMX; most laptops) is emulated, and the recipe's fit
    ran about 10x slower than in float32 (:func:`smile.recipe.cpu_has_fast_bfloat16`), so such a run uses
    ``32-true``, as Lightning itself swaps ``16-mixed`` for ``bf16-mixed`` on a CPU."""
    if not (runs_on_cpu(accelerator) and emulated_bfloat16(precision)):
        return precision, None
    return "32-true", (
        f"--trainer.precision {precision}: {NO_BFLOAT16} and would emulate them, about 10x slower than "
        "float32; running in 32-true instead"
    )


def check_devices(accelerator: Any, devices: Any) -> None:
    """Raise :class:`SmileError` when ``accelerator``/``devices`` ask for GPUs that this machine lacks."""
    if not isinstance(accelerator, str):
        return  # an Accelerator object is the user's own
    accelerator = accelerator.lower()
    if accelerator in ("gpu", "cuda", "mps") and not has_gpu():
        raise SmileError(
            f"--trainer.accelerator {accelerator}: this machine has no GPU; on its CPU give {CPU_FIX}"
        )
    if str(devices) == "-1" and runs_on_cpu(accelerator):
        raise SmileError(f"--trainer.devices -1 means every GPU, and this run has none; give {CPU_FIX}")
