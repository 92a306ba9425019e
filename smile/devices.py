"""Check the trainer's accelerator, devices and precision against the machine before Lightning builds a
trainer, so that a GPU config on a GPU-less machine ends in one line with the fix instead of Lightning's
traceback in every process; and the one rule for bfloat16 on a CPU, which must not crawl where the CPU
would emulate it."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator

from smile.errors import SmileError


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX). Without them torch emulates
    bfloat16, and ``bf16-mixed`` training of the recipe's network ran about 10x slower than float32
    (one thread, AVX2-only AMD EPYC: 5-7 against 49-53 images/s)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


#: Why bfloat16 is slow here, in both the command line's fallback message and the Python API's warning.
NO_BFLOAT16 = "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX)"


def emulated_bfloat16(precision: Any) -> bool:
    """Whether ``precision`` (a Trainer's) asks for bfloat16 and this CPU would emulate it."""
    return str(precision).startswith("bf16") and not cpu_has_fast_bfloat16()


def slow_precision_message(precision: str, device_type: str) -> str | None:
    """A one-line warning for bfloat16 on a CPU that emulates it, else ``None``: the command line falls
    back to float32 by itself (:func:`cpu_precision`), a Trainer built in Python does not."""
    if device_type == "cpu" and emulated_bfloat16(precision):
        return (
            f"trainer.precision is {precision}, but {NO_BFLOAT16}: training runs about 10x slower than "
            "float32. Add --trainer.precision 32-true."
        )
    return None


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
    ran about 10x slower than in float32 (:func:`cpu_has_fast_bfloat16`), so such a run uses
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
